"""What a local run is asked to do: its options, the step function contract, its user error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

StepFunction = Callable[[dict[str, Any], dict[str, str], dict[str, str], Any], Any]
"""`fn(params, inputs, outputs, ctx) -> summary`: the runtime step contract."""


class RunError(Exception):
    """The run cannot start or go on for a reason the user can fix (message says which)."""


@dataclass
class RunOptions:
    """How to run: where the project lives, what to reuse, what to select."""

    project_dir: Path
    state_dir: Path | None = None
    """The project's `.mlc/` (default: `project_dir/.mlc`)."""
    tracking_uri: str | None = None
    use_cache: bool = True
    from_step: str | None = None
    """Re-execute this step and everything downstream; reuse the cache above it."""
    only: str | None = None
    """Execute only this step; its inputs must be in the cache."""
    run_id: str | None = None
    out: IO[str] | None = None
    """Where progress lines go (default stderr); None with `quiet` prints nothing."""
    quiet: bool = False
    reason: dict[str, Any] | None = None
    """Why this run trains (`mlc loop`'s retrain decision and evidence): stored with the run
    and the version it registers."""

    def __post_init__(self) -> None:
        self.project_dir = Path(self.project_dir).resolve()
        if self.state_dir is None:
            self.state_dir = self.project_dir / ".mlc"
        self.state_dir = Path(self.state_dir).resolve()
