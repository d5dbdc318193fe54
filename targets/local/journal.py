"""What a local run leaves behind besides cache entries: its lock, run record and lineage events.

- `.mlc/run.lock`: one run per project at a time (an `flock`, released by the kernel even on
  `kill -9`).
- `.mlc/runs/<run id>.json`: the run record, written atomically when the run starts and when it
  ends (a record still saying `running` whose process is gone is shown as `interrupted`, and the
  next run, holding the lock, rewrites it so: `close_interrupted`).
- `.mlc/lineage/events/<run id>.jsonl`: OpenLineage events, appended through one handle held for
  the whole run. A step's `START` is flushed together with its `COMPLETE` or `FAIL` (one write
  per step), so a `kill -9` keeps the events of every step that finished; only the `START` of
  the step it interrupted is lost, and the run record shows that run as `interrupted`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from mlc.targets.base import write_file
from mlc.targets.local.options import RunError, RunOptions
from mlc.targets.local.progress import RUNS_DIR
from mlc.targets.local.progress import _alive as alive
from mlc.targets.local.results import RunResult


def new_run_id() -> str:
    """A run id that sorts by start time: UTC time to the millisecond, then a random suffix.

    Milliseconds, because "the newest runs" (`mlc runs`, `mlc cache gc --keep-runs`) are found
    by sorting ids, and runs of a small pipeline start within the same second.
    """
    now = time.time()
    millis = int(now * 1000) % 1000
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now))}-{millis:03d}{secrets.token_hex(2)}"


@contextlib.contextmanager
def run_lock(state: Path) -> Iterator[None]:
    """Hold the project's run lock, or raise `RunError` when another run holds it."""
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "run.lock", "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(f"another 'mlc run' is using {state}; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class EventLog:
    """The run's OpenLineage event file, opened on the first event and closed by `close`."""

    def __init__(self, state: Path, run_id: str) -> None:
        self.state = state
        self.run_id = run_id
        self._fh: IO[str] | None = None

    def write(self, line: str, flush: bool = True) -> None:
        """Append one serialised event line (`mlc.runtime.lineage.RunEventLines`); `flush=False`
        leaves it buffered until the next flushed one."""
        if self._fh is None:
            from mlc.runtime.lineage import events_path

            path = events_path(self.state, self.run_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._fh.write(line)
        if flush:
            # No fsync: the page cache survives a killed process, which is what matters here.
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def spent(result: RunResult) -> dict[str, Any]:
    """What the run used, by step kind (the budget section of the run record)."""
    by_kind: dict[str, float] = {}
    for s in result.steps:
        by_kind[s.kind] = by_kind.get(s.kind, 0.0) + s.seconds
    return {
        "wall_seconds": round(result.seconds, 3),
        "step_seconds": {k: round(v, 3) for k, v in sorted(by_kind.items())},
        "cpu_seconds": round(sum(s.cpu_seconds for s in result.steps), 3),
        "training_seconds": round(by_kind.get("train", 0.0), 3),
        "tuning_seconds": round(by_kind.get("tune", 0.0), 3),
        # Local runs use the machine at hand: no cloud spend to count against the caps.
        "usd": 0.0,
    }


_RUNNING = b'"status": "running"'


def close_interrupted(state: Path, current: str) -> list[str]:
    """Rewrite the records of killed runs (still `running`) as `interrupted`; return their ids.

    Call it holding the run lock: then no other run of the project is alive, so every record
    but `current`'s that still says `running` belongs to a process that died mid-run.
    """
    found = []
    for path in sorted((state / RUNS_DIR).glob("*.json")):
        if path.stem == current:
            continue
        try:
            raw = path.read_bytes()
            # Most records are finished: skip parsing them.
            if _RUNNING not in raw:
                continue
            body = json.loads(raw)
        except (OSError, ValueError):
            continue
        if body.get("status") != "running":
            continue
        body["status"] = "interrupted"
        body["error"] = body.get("error") or (
            "interrupted: the process ended before the run finished (killed or crashed); "
            "the next run reuses every step it completed"
        )
        write_file(path, _readable(body))
        found.append(path.stem)
    return found


def has_ended(state: Path, current: str) -> Callable[[str], bool]:
    """mlc run id -> True when its record exists and says it is over (any other status than
    `running`, or `running` from a process that is gone)."""

    def ended(run_id: str) -> bool:
        if run_id == current:
            return False
        try:
            body = json.loads((state / RUNS_DIR / f"{run_id}.json").read_bytes())
        except (OSError, ValueError):
            return False
        return body.get("status") != "running" or not alive(int(body.get("pid") or 0))

    return ended


def write_record(
    state: Path,
    result: RunResult,
    *,
    options: RunOptions,
    started: float,
    spec_hash: str,
    commit: str | None,
    tracking_uri: str,
    budgets: dict[str, Any],
    pid: int,
) -> Path:
    """Write (or replace) the run record `.mlc/runs/<run id>.json` atomically; return its path."""
    path = state / RUNS_DIR / f"{result.run_id}.json"
    body = {
        "run_id": result.run_id,
        "name": result.name,
        "status": result.status,
        "pid": pid,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "project_dir": str(options.project_dir),
        "spec_hash": spec_hash,
        "git_commit": commit,
        "tracking_uri": tracking_uri,
        "options": {
            "use_cache": options.use_cache,
            "from": options.from_step,
            "only": options.only,
        },
        "steps": [s.as_dict() for s in result.steps],
        "verdicts": result.verdicts,
        "error": result.error,
        "budgets": {"caps": budgets, "spent": spent(result)},
    }
    if options.reason is not None:
        body["reason"] = options.reason
    write_file(path, _readable(body))
    return path


def _readable(body: dict[str, Any]) -> str:
    """JSON with one line per top-level key and per step.

    `indent=` would switch `json` to its pure-Python encoder, which at hundreds of steps costs
    more than the run's own bookkeeping; this layout keeps the C encoder and stays diffable.
    """

    def dump(value: Any) -> str:
        return json.dumps(value, sort_keys=True, default=str)

    lines = []
    for key in sorted(body):
        value = body[key]
        if key == "steps" and value:
            inner = ",\n".join(f"    {dump(step)}" for step in value)
            lines.append(f'  "{key}": [\n{inner}\n  ]')
        else:
            lines.append(f"  {dump(key)}: {dump(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"
