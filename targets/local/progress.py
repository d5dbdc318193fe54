"""Progress lines of a local run and the run records under `.mlc/runs/`."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlc.compiler.ir import Step

if TYPE_CHECKING:
    from mlc.targets.local.options import RunOptions
    from mlc.targets.local.results import StepOutcome

RUNS_DIR = "runs"


class Progress:
    """One line per step; rich colours on a terminal, plain text elsewhere (logs, pipes)."""

    def __init__(self, options: RunOptions) -> None:
        self.quiet = options.quiet
        self.stream = options.out or sys.stderr
        self.console: Any = None
        if not self.quiet and self.stream.isatty():
            from rich.console import Console

            self.console = Console(file=self.stream, highlight=False)

    def step(self, outcome: StepOutcome, index: int, total: int) -> None:
        if self.quiet:
            return
        marks = {"ran": "✓", "cached": "=", "recomputed": "✓", "skipped": "-", "failed": "✗"}
        note = {
            "cached": "cache hit",
            "recomputed": "recomputed (corrupt cache entry)",
            "skipped": outcome.message,
            "failed": "failed",
        }.get(outcome.status, "ran")
        line = (
            f"[{index:>{len(str(total))}}/{total}] {marks.get(outcome.status, '?')} "
            f"{outcome.step_id:<22} {outcome.kind:<12} {outcome.seconds:8.2f}s  {note}"
        )
        if self.console is not None:
            style = {
                "ran": "green",
                "recomputed": "yellow",
                "cached": "cyan",
                "skipped": "dim",
                "failed": "bold red",
            }.get(outcome.status, "")
            self.console.print(line, style=style, markup=False)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    @contextlib.contextmanager
    def running(self, step: Step) -> Iterator[None]:
        if self.console is None:
            yield
            return
        with self.console.status(f"running {step.id} ({step.kind.value}) …"):
            yield

    def note(self, text: str) -> None:
        if not self.quiet:
            self.stream.write(text + "\n")
            self.stream.flush()


def list_runs(state_dir: str | Path) -> list[dict[str, Any]]:
    """Run records under `.mlc/runs/`, newest first; a killed run shows as `interrupted`."""
    out = []
    for path in sorted((Path(state_dir) / RUNS_DIR).glob("*.json"), reverse=True):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("status") == "running" and not _alive(int(record.get("pid", 0))):
            record["status"] = "interrupted"
        out.append(record)
    return out


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
