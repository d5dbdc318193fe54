"""`StepContext`: what a step may know about the run besides its params and artifacts."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class StepError(Exception):
    """A step failed for a reason the user can act on; the message names the cause."""

    def __init__(self, step: str, message: str, hint: str = "") -> None:
        super().__init__(f"step '{step}': {message}" + (f"\n  hint: {hint}" if hint else ""))
        self.step = step
        self.hint = hint


class BudgetExceeded(StepError):
    """A time or cost cap was reached; the step stopped cleanly and recorded what it spent."""


@dataclass
class StepContext:
    """Run-wide facts handed to every step. No globals: steps read only this and their params."""

    project_dir: Path = field(default_factory=Path.cwd)
    """Folder relative data paths in params are resolved against (the spec's folder)."""
    state_dir: Path | None = None
    """The project's `.mlc/` folder (MLflow store, Optuna studies, audit log); default below
    `project_dir`."""
    tracking_uri: str | None = None
    """MLflow tracking URI; default a sqlite file in `state_dir`."""
    run_id: str = "adhoc"
    step_id: str = ""
    deadline: float | None = None
    """`time.monotonic()` value after which a step must stop cleanly (budgets)."""
    secrets: dict[str, str] = field(default_factory=dict)
    """Resolved secret values by env var name (never written into artifacts)."""
    extra: dict[str, Any] = field(default_factory=dict)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("mlc.runtime"))

    def __post_init__(self) -> None:
        # Built once per step by the executor, which already passes Paths: skip re-parsing them.
        if not isinstance(self.project_dir, Path):
            self.project_dir = Path(self.project_dir)
        if self.state_dir is None:
            self.state_dir = self.project_dir / ".mlc"
        elif not isinstance(self.state_dir, Path):
            self.state_dir = Path(self.state_dir)

    @property
    def state(self) -> Path:
        assert self.state_dir is not None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return self.state_dir

    def resolve(self, path: str) -> str:
        """A data path from params: URLs unchanged, relative paths against the project dir."""
        if "://" in path or Path(path).is_absolute():
            return path
        return str(self.project_dir / path)

    def seconds_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def effective_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{(self.state / 'mlflow.db').resolve()}"
