"""`mlc loop`: one pass of the closed loop — monitor, decide, retrain on new data, gate, canary.

A pass, under a lock on the project (`.mlc/loop/lock`, an `flock` the kernel drops when the
process dies, so a killed pass never blocks the next one):

1. the monitor reads the serving prediction log over `monitoring.window`, with the labels that
   arrived (`feedback.retrain.labels`), against the served version's reference profile;
2. the decision: no retrain (nothing fired, or too few rows to judge), or retrain — unless the
   cooldown, the month's run cap or its USD cap (`feedback.retrain`) says wait;
3. a retrain trains on the spec's first source plus the labelled production rows of
   `feedback.retrain.window`, deduplicated (the newest row of a unique key wins); with no
   labelled production row it does not run (it would train on the same data again);
4. the run gates the new model against the champion on the same fresh holdout; a version that
   passes is registered as `challenger` (with a canary or blue-green strategy the rollout,
   not the registration, moves `champion`), with the decision and its evidence as its reason
   (`mlc lineage`, the MLflow run's `reason/retrain.json`, the audit chain);
5. a running `mlc serve` following the aliases picks the challenger up and runs the canary;
   with `serve_url` the pass waits for the rollout's outcome and records it.

Every pass appends its outcome to `.mlc/loop/history.jsonl` (what cooldowns and caps count);
retrain decisions, refusals, failures and rollout outcomes also go to the audit chain. A pass
killed midway leaves `.mlc/loop/state.json` naming its phase; the next pass records it as
interrupted and starts afresh, so cron may run the loop at any interval.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlc.compiler.api._check import UsageError, check

if TYPE_CHECKING:
    import pandas as pd

    from mlc.compiler.api._check import CheckResult

LOOP_DIR = "loop"
HISTORY = "history.jsonl"
STATE = "state.json"
LOG_KEYS = ("request_id", "row")


class LoopBusy(UsageError):
    """Another pass holds the project's loop lock."""


@dataclass
class LoopResult:
    """What one pass did: `outcome` is one of `no_retrain`, `insufficient_data`, `waiting`
    (cooldown or a cap), `no_new_rows`, `registered`, `gate_failed`, `failed`."""

    attempt: str
    outcome: str
    summary: str
    decision: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    version: str | None = None
    rollout: dict[str, Any] | None = None
    exit_code: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "outcome": self.outcome,
            "summary": self.summary,
            "decision": self.decision,
            "evidence": self.evidence,
            "version": self.version,
            "rollout": self.rollout,
        }


def _now(now: str | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    try:
        when = dt.datetime.fromisoformat(now)
    except ValueError as exc:
        raise UsageError(f"--now '{now}' is not an ISO-8601 time: {exc}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise LoopBusy(f"another mlc loop is running on this project (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def _write_json(path: Path, doc: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(doc, sort_keys=True, default=str))
    os.replace(tmp, path)


def history(state_dir: str | Path) -> list[dict[str, Any]]:
    """Every pass recorded, oldest first (a torn last line is ignored)."""
    path = Path(state_dir) / LOOP_DIR / HISTORY
    if not path.is_file():
        return []
    found = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            found.append(json.loads(line))
    return found


class _Pass:
    """One pass's bookkeeping: phase file, history line, audit records."""

    def __init__(self, state_dir: Path, now: dt.datetime, spec_hash: str | None) -> None:
        self.state_dir = state_dir
        self.folder = state_dir / LOOP_DIR
        self.now = now
        self.spec_hash = spec_hash
        self.attempt = now.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]

    def recover(self) -> dict[str, Any] | None:
        """A previous pass killed midway: recorded as interrupted (history and audit)."""
        path = self.folder / STATE
        if not path.is_file():
            return None
        try:
            left = json.loads(path.read_text())
        except ValueError:
            left = {"attempt": "unknown", "phase": "unreadable state"}
        path.unlink()
        record = {
            "attempt": left.get("attempt"),
            "outcome": "interrupted",
            "summary": f"killed during {left.get('phase')}",
            "started": left.get("started"),
            "retrain_started": left.get("retrain_started"),
        }
        self._history(record)
        self.audit("loop.interrupted", record)
        return record

    def phase(self, name: str, **extra: Any) -> None:
        doc = {"attempt": self.attempt, "phase": name, "started": self.now.isoformat(), **extra}
        _write_json(self.folder / STATE, doc)

    def _history(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        with open(self.folder / HISTORY, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def audit(self, event: str, details: dict[str, Any]) -> None:
        from mlc.runtime import audit

        audit.append(self.state_dir, event, spec_hash=self.spec_hash, details=details)

    def finish(self, result: LoopResult, retrained: bool) -> LoopResult:
        record = {**result.to_json(), "when": self.now.isoformat(), "retrained": retrained}
        self._history(record)
        with contextlib.suppress(FileNotFoundError):
            (self.folder / STATE).unlink()
        return result


def _labels_file(project: Path, where: str, folder: Path) -> Path | None:
    """The arrived labels as one Parquet file (a folder's CSV/Parquet files concatenated)."""
    import pandas as pd

    path = Path(where) if Path(where).is_absolute() else project / where
    files = (
        sorted(p for p in path.iterdir() if p.suffix in (".csv", ".parquet"))
        if path.is_dir()
        else [path]
        if path.is_file()
        else []
    )
    if not files:
        return None
    frames = [pd.read_csv(p) if p.suffix == ".csv" else pd.read_parquet(p) for p in files]
    joined = pd.concat(frames, ignore_index=True)
    out = folder / "labels.parquet"
    joined.to_parquet(out, index=False)
    return out


def _month_runs(records: list[dict[str, Any]], now: dt.datetime) -> int:
    month = now.strftime("%Y-%m")
    return sum(
        1 for r in records if r.get("retrained") and str(r.get("when", "")).startswith(month)
    )


def _last_retrain(records: list[dict[str, Any]]) -> dt.datetime | None:
    for r in reversed(records):
        started = r.get("retrain_started") if r.get("outcome") == "interrupted" else None
        if r.get("retrained") or started:
            with contextlib.suppress(ValueError, TypeError):
                return dt.datetime.fromisoformat(str(started or r.get("when")))
    return None


def _hold(
    spec_path: str | Path,
    overrides: Sequence[str],
    result: CheckResult,
    records: list[dict[str, Any]],
    now: dt.datetime,
) -> tuple[str | None, dict[str, Any]]:
    """Why a retrain must wait (cooldown, the month's run or USD cap), else None."""
    retrain = result.spec.feedback.retrain
    last = _last_retrain(records)
    facts: dict[str, Any] = {"cooldown_s": float(retrain.cooldown)}
    if last is not None:
        since = (now - last).total_seconds()
        facts["since_last_retrain_s"] = round(since, 1)
        if since < float(retrain.cooldown):
            until = last + dt.timedelta(seconds=float(retrain.cooldown))
            return f"cooling down until {until.isoformat(timespec='seconds')}", facts
    runs = _month_runs(records, now)
    facts.update({"runs_this_month": runs, "max_runs_per_month": retrain.max_runs_per_month})
    if runs >= retrain.max_runs_per_month:
        return f"{runs} retrain(s) this month, the cap is {retrain.max_runs_per_month}", facts
    if retrain.max_usd_per_month is not None:
        from mlc.compiler.cost.report import cost_report

        per_run = cost_report(spec_path, overrides, targets=["local"]).estimate.per_run_usd
        spent = per_run * runs
        facts.update({"usd_per_run": round(per_run, 4), "usd_this_month": round(spent, 4)})
        if spent + per_run > retrain.max_usd_per_month:
            return (
                f"this month's retrains would cost ${spent + per_run:.2f}, over the "
                f"${retrain.max_usd_per_month:g} cap",
                facts,
            )
    return None, facts


def _production_rows(
    log_dir: Path,
    labels: Path | None,
    columns: dict[str, Any],
    target: str,
    window_s: float,
    now: dt.datetime,
) -> pd.DataFrame:
    """Served rows of the log inside the window with their arrived labels, one per logged row."""
    import pandas as pd

    from mlc.runtime.serving.predlog import read_log

    logged = read_log(log_dir)
    if logged.empty or labels is None:
        return pd.DataFrame(columns=list(columns))
    if "shadow" in logged.columns:
        logged = logged[~logged["shadow"].astype(bool)]
    stamps = logged["time"].astype(float)
    end = now.timestamp()
    logged = logged[(stamps > end - window_s) & (stamps <= end)]
    arrived = pd.read_parquet(labels)
    if "request_id" not in arrived.columns or target not in arrived.columns:
        raise UsageError(f"labels in {labels} need columns 'request_id' and '{target}'")
    keys = [k for k in LOG_KEYS if k in arrived.columns]
    arrived = arrived[[*keys, target]].drop_duplicates(keys, keep="last")
    arrived["request_id"] = arrived["request_id"].astype(str)
    logged = logged.assign(request_id=logged["request_id"].astype(str))
    joined = logged.merge(arrived, on=keys, how="inner")
    joined = joined.drop_duplicates(list(LOG_KEYS), keep="last")
    keep = [c for c in columns if c in joined.columns]
    return joined[keep].reset_index(drop=True)


def _training_data(
    result: CheckResult, production: pd.DataFrame, folder: Path
) -> tuple[list[str], dict[str, Any]]:
    """Overrides pointing the first source at its rows plus `production`, and counts."""
    import pandas as pd

    spec = result.spec
    source = spec.data.sources[0]
    if source.format not in ("csv", "parquet"):
        raise UsageError(
            f"feedback.retrain.production_rows needs a csv or parquet first source; "
            f"'{source.name}' is {source.format}"
        )
    if len(spec.data.sources) > 1:
        raise UsageError(
            "feedback.retrain.production_rows needs a single source (logged rows are the "
            "joined columns, which the other sources would be joined onto again)"
        )
    project = Path(result.loaded.project_dir)
    path = Path(source.path) if Path(source.path).is_absolute() else project / source.path
    base = (
        pd.read_csv(path, sep=getattr(source, "delimiter", ","))
        if source.format == "csv"
        else pd.read_parquet(path)
    )
    columns = list(base.columns)
    extra = production[[c for c in columns if c in production.columns]].copy()
    for name in extra.columns:
        # JSON and the log widen ints to floats where a value was missing: back to the
        # source's types, so the file reads as the source does
        with contextlib.suppress(TypeError, ValueError):
            extra[name] = extra[name].astype(base[name].dtype)
    combined = pd.concat([base, extra], ignore_index=True)
    unique = [n for n, c in spec.data.contract.columns.items() if c.unique and n in columns]
    before = len(combined)
    combined = combined.drop_duplicates(unique or columns, keep="last").reset_index(drop=True)
    body = (
        combined.to_csv(index=False).encode()
        if source.format == "csv"
        else combined.to_parquet(index=False)
    )
    digest = hashlib.sha256(body).hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{source.name}-{digest[:16]}.{source.format}"
    if not out.exists():
        tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(body)
        os.replace(tmp, out)
    counts = {
        "source_rows": len(base),
        "production_rows": len(extra),
        "duplicates_dropped": before - len(combined),
        "training_rows": len(combined),
        "data_file": str(out),
        "data_sha256": digest,
        "deduplicated_on": unique or "all columns",
    }
    overrides = [f"data.sources.0.path={out}"]
    return overrides, counts


def _wait_rollout(
    url: str, token: str | None, version: str, wait_s: float, poll_s: float = 0.5
) -> dict[str, Any]:
    """The live server's rollout of `version` until promoted or rolled back (or the wait ends)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + wait_s
    last: dict[str, Any] = {}
    while True:
        request = urllib.request.Request(url.rstrip("/") + "/admin/rollout")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                last = json.loads(reply.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = {"error": f"{url}: {exc}"}
        decision = last.get("last_decision") or {}
        candidate = (decision.get("evidence") or {}).get("candidate") or {}
        if candidate.get("version") == version and decision.get("decision") in (
            "promote",
            "rollback",
        ):
            return {"outcome": decision["decision"], "decision": decision}
        champion = ((last.get("tracks") or {}).get("stable") or {}).get("version")
        if champion == version and last.get("state") in ("idle", "promoted"):
            return {"outcome": "promote", "status": last}
        if time.monotonic() >= deadline:
            return {"outcome": "pending", "status": last}
        time.sleep(poll_s)


def loop(
    spec_path: str | Path,
    overrides: Sequence[str] = (),
    *,
    log_dir: str | Path | None = None,
    labels: str | Path | None = None,
    now: str | None = None,
    serve_url: str | None = None,
    wait_s: float = 0.0,
    quiet: bool = True,
    pushgateway: str | None = None,
) -> LoopResult:
    """One pass of the loop (see the module docstring).

    `pushgateway` (a Pushgateway URL) receives the pass's drift and performance gauges, as
    `mlc monitor --pushgateway` pushes them (job `mlc-monitor`, instance the model name). A
    Pushgateway that cannot be reached does not stop the pass: the evidence says so.

    Raises:
        DiagnosticError: the spec has errors.
        LoopBusy: another pass holds the project.
        UsageError: bad input (no prediction log, a source the loop cannot extend).
    """
    from mlc.compiler.api._monitor import MonitorError, export_gauges, monitor
    from mlc.compiler.api._run import run
    from mlc.compiler.diagnostics import DiagnosticError
    from mlc.targets.local import LocalOptions

    result = check(spec_path, overrides, targets=["local"])
    if not result.ok:
        raise DiagnosticError(result.diagnostics)
    options = result.options["local"]
    assert isinstance(options, LocalOptions)
    project = Path(result.loaded.project_dir)
    state_dir = project / options.state_dir
    clock = _now(now)
    spec = result.spec
    retrain = spec.feedback.retrain
    log = Path(log_dir) if log_dir is not None else state_dir / "predictions"
    with _locked(state_dir / LOOP_DIR):
        this = _Pass(state_dir, clock, str(result.ir.metadata.get("spec_hash", "")))
        this.recover()
        records = history(state_dir)
        this.phase("monitor")
        work = state_dir / LOOP_DIR / this.attempt
        work.mkdir(parents=True, exist_ok=True)
        arrived = _labels_file(project, str(labels or retrain.labels), work)
        try:
            watched = monitor(
                spec_path,
                None,
                overrides,
                from_log=log,
                labels=arrived,
                now=clock.isoformat(),
                out_dir=work / "monitor",
            )
        except (MonitorError, UsageError) as exc:
            failed = LoopResult(this.attempt, "failed", f"monitor: {exc}", exit_code=2)
            this.audit("loop.failed", failed.to_json())
            return this.finish(failed, retrained=False)
        decision = dict(watched.decision)
        report_files = sorted((work / "monitor").rglob("*.json"))
        evidence: dict[str, Any] = {
            "window": watched.report.get("window"),
            "rows": watched.report.get("rows"),
            "monitored_version": watched.model.version,
            "drift_report_sha256": hashlib.sha256(
                b"".join(p.read_bytes() for p in report_files)
            ).hexdigest(),
            "drifted": [r["feature"] for r in watched.report.get("drift", []) if r.get("drifted")],
            "reasons": list(decision.get("reasons") or []),
        }
        if pushgateway:
            try:
                export_gauges(watched, pushgateway=pushgateway)
            except MonitorError as exc:
                # the decision stands without the gauges; the rollout's drift query goes stale
                evidence["push_error"] = str(exc)
                print(f"mlc loop: warning: {exc}", file=sys.stderr)
        verdict = str(watched.report.get("verdict") or "")
        if verdict == "insufficient data" or decision.get("insufficient"):
            done = LoopResult(
                this.attempt,
                "insufficient_data",
                "too few logged rows in the window to judge drift; no retrain",
                decision,
                evidence,
            )
            return this.finish(done, retrained=False)
        if not decision.get("retrain"):
            done = LoopResult(this.attempt, "no_retrain", "no trigger fired", decision, evidence)
            return this.finish(done, retrained=False)
        held, facts = _hold(spec_path, overrides, result, records, clock)
        evidence["limits"] = facts
        if held is not None:
            waiting = LoopResult(this.attempt, "waiting", held, decision, evidence)
            this.audit("loop.refused", waiting.to_json())
            return this.finish(waiting, retrained=False)
        target = spec.features.target
        columns = dict(spec.data.contract.columns)
        production = (
            _production_rows(log, arrived, columns, target, float(retrain.window), clock)
            if retrain.production_rows
            else None
        )
        if production is None or production.empty:
            idle = LoopResult(
                this.attempt,
                "no_new_rows",
                "retraining recommended, but no labelled production row has arrived: a "
                "retrain now would see the training data again",
                decision,
                evidence,
            )
            this.audit("loop.refused", idle.to_json())
            return this.finish(idle, retrained=False)
        run_overrides, counts = _training_data(result, production, state_dir / LOOP_DIR / "data")
        evidence["data"] = counts
        summary = (
            f"retrained on {counts['production_rows']} labelled production row(s) + "
            f"{counts['source_rows']} source row(s): " + "; ".join(evidence["reasons"])
        )
        reason = {
            "decision": "retrain",
            "summary": summary,
            "attempt": this.attempt,
            "when": clock.isoformat(),
            **evidence,
        }
        this.audit("loop.retrain", reason)
        this.phase("retrain", retrain_started=clock.isoformat())
        try:
            ran = run(spec_path, [*overrides, *run_overrides], quiet=quiet, reason=reason)
        except UsageError as exc:
            failed = LoopResult(
                this.attempt, "failed", f"retrain: {exc}", decision, evidence, exit_code=4
            )
            this.audit("loop.failed", failed.to_json())
            return this.finish(failed, retrained=True)
        outcome = ran.outcome
        if outcome is None or outcome.status not in ("succeeded", "gate_failed"):
            error = getattr(outcome, "error", None) if outcome is not None else "spec errors"
            failed = LoopResult(
                this.attempt, "failed", f"retrain failed: {error}", decision, evidence, exit_code=4
            )
            this.audit("loop.failed", failed.to_json())
            return this.finish(failed, retrained=True)
        registered = _registered_version(outcome)
        if registered is None:
            failed_checks = [
                f"{c.get('name')}: {c.get('reason') or c.get('value')}"
                for verdict in (outcome.verdicts or {}).values()
                for c in verdict.get("checks", [])
                if not c.get("passed")
            ]
            evidence["failed_checks"] = failed_checks
            gated = LoopResult(
                this.attempt,
                "gate_failed",
                "the retrained model did not pass its gates (champion kept): "
                + "; ".join(failed_checks),
                decision,
                evidence,
                exit_code=3,
            )
            this.audit("loop.outcome", gated.to_json())
            return this.finish(gated, retrained=True)
        done = LoopResult(
            this.attempt,
            "registered",
            summary + f" -> version {registered['version']} ({', '.join(registered['aliases'])})",
            decision,
            evidence,
            version=str(registered["version"]),
        )
        if serve_url and "challenger" in registered["aliases"] and registered.get("new"):
            this.phase("rollout", retrain_started=clock.isoformat())
            token = os.environ.get("MLC_SERVE_ADMIN_TOKEN")
            done.rollout = _wait_rollout(serve_url, token, str(registered["version"]), wait_s)
        this.audit("loop.outcome", done.to_json())
        return this.finish(done, retrained=True)


def _registered_version(outcome: Any) -> dict[str, Any] | None:
    for step in outcome.steps:
        if step.kind == "register" and step.status in ("ran", "recomputed", "cached"):
            summary = step.summary or {}
            if summary.get("version") is not None:
                return {
                    "version": summary["version"],
                    "aliases": list(summary.get("aliases") or []),
                    "new": bool(summary.get("new")),
                }
    return None
