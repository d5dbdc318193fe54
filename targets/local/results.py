"""What a local run reports: one outcome per step and the run's result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any


@dataclass
class StepOutcome:
    step_id: str
    kind: str
    status: str
    """`ran`, `cached`, `recomputed` (corrupt entry), `skipped`, `failed` or `not_run`."""
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    key: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    """Output name -> artifact folder."""
    hashes: dict[str, str] = field(default_factory=dict)
    """Output name -> content hash of the artifact folder."""
    summary: Any = None
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        """A shallow dict of the fields (the run record serialises it; no deep copy needed)."""
        out = {f.name: getattr(self, f.name) for f in _OUTCOME_FIELDS}
        if is_dataclass(self.summary) and not isinstance(self.summary, type):
            out["summary"] = asdict(self.summary)
        return out


_OUTCOME_FIELDS = fields(StepOutcome)


@dataclass
class RunResult:
    run_id: str
    name: str
    status: str
    """`succeeded`, `gate_failed`, `failed` or `interrupted`."""
    steps: list[StepOutcome]
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Gate step id -> its verdict document."""
    error: str = ""
    record_path: Path | None = None
    seconds: float = 0.0

    @property
    def cache_hits(self) -> int:
        return sum(1 for s in self.steps if s.status == "cached")

    @property
    def executed(self) -> int:
        return sum(1 for s in self.steps if s.status in ("ran", "recomputed"))
