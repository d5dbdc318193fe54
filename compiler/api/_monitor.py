"""`monitor`: score current data against a registered model and its reference, and decide
whether to retrain (the library behind `mlc monitor`).

The reference is the profile `register` stored with the version (`runtime.profile`): a monitor
run reads only the current data, never the training data again. A version without one (an
older registration, or an unregistered candidate) is scored against its run's train split
artifact, and the report's `reference.note` says so.

The model scored is the `champion`; without one, the newest version whose gate passed (a manual
promotion policy leaves passed versions without the alias). A model whose gate failed (a run
that failed it registers nothing) is scored only when asked for by version or run id:
monitoring a model nobody approved would report on something that is not, and should not be,
serving.

The params of the `monitor` and `retrain_trigger` steps are the IR's. A spec with feedback
triggers but no `monitoring` section has no monitor step; it is scored with the one the IR
builder makes for `monitoring: {}`, so every default stays in the spec models.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlc.compiler.api._check import CheckResult, UsageError, check
from mlc.compiler.diagnostics import DiagnosticError

if TYPE_CHECKING:
    import pandas as pd

    from mlc.compiler.ir import IRGraph, Step
    from mlc.specs import Spec


class MonitorError(UsageError):
    """A problem with what `monitor` was given; `model` is the model scored when it got that
    far (the current data reached the model and it could not score it)."""

    def __init__(self, message: str, model: ScoredModel | None = None) -> None:
        super().__init__(message)
        self.model = model


@dataclass(frozen=True)
class ScoredModel:
    """The model a monitor run scored: its version (None: a run's unregistered candidate),
    alias, gate verdict and why it was chosen."""

    name: str
    version: str | None
    passed: bool
    run_id: str | None
    alias: str | None
    why: str

    def describe(self) -> str:
        """One line naming the model, e.g. `model: credit-risk v1 (alias champion, ...)`."""
        verdict = "gate passed" if self.passed else "gate FAILED"
        if self.version is None:
            what = f"{self.name}, the candidate of run {self.run_id} (not registered, "
        else:
            alias = f"alias {self.alias}" if self.alias else "no alias"
            what = f"{self.name} v{self.version} ({alias}, run {self.run_id}, "
        return f"model: {what}{verdict}): {self.why}"


@dataclass
class MonitorResult:
    """What `monitor` found: the model scored, the signal report (drift rows, performance) and
    the retrain decision, both also written under `folder`."""

    check: CheckResult
    model: ScoredModel
    report: dict[str, Any]
    decision: dict[str, Any]
    folder: Path

    @property
    def retrain(self) -> bool:
        """Whether the feedback triggers recommend retraining."""
        return bool(self.decision.get("retrain"))


def monitor(
    spec_path: str | Path,
    current: str | Path | None,
    overrides: Sequence[str] = (),
    *,
    from_log: str | Path | None = None,
    labels: str | Path | None = None,
    labels_column: str | None = None,
    now: str | None = None,
    out_dir: str | Path | None = None,
    model_version: str | None = None,
    textfile: str | Path | None = None,
    pushgateway: str | None = None,
    push_job: str | None = None,
    push_instance: str | None = None,
) -> MonitorResult:
    """Score `current` for drift and performance against a run's model; evaluate the triggers.

    Args:
        spec_path: the spec (its `targets.local` settings say where the runs are).
        current: current (production) data, CSV or Parquet (None with `from_log`).
        from_log: a prediction log folder of `mlc serve` to read as current data instead (the
            served rows of its closed segments; shadow copies left out).
        labels: with `from_log`, a CSV or Parquet of labels that arrived later, joined on
            `request_id` (the column named by `labels_column`, default the spec's target).
        overrides: Hydra overrides, as for a run.
        labels_column: column of `current` holding arrived labels (default: the spec's target).
        now: evaluation time, ISO-8601 (default: the clock); schedule triggers read it.
        out_dir: folder for the signal and decision (default: `<state_dir>/monitor`).
        model_version: a registered version, or a run id for that run's candidate model
            (default with `from_log`: the version that served the window's rows).
        textfile: write the gauges here too (node-exporter textfile format; written aside and
            renamed into place).
        pushgateway: push the gauges to this Prometheus Pushgateway URL, grouped by job
            (`push_job`, default `mlc-monitor`) and instance (`push_instance`, default the
            model name).

    With `from_log`, only the rows logged in the last `monitoring.window` before `now` are
    current data. The reference is the profile stored with the scored version
    (`runtime.profile`); a version registered without one falls back to the training split
    artifact, and the report says so. Fewer current rows than `monitoring.min_rows`: the
    verdict is "insufficient data" and the decision never retrains.

    Raises:
        DiagnosticError: the spec has errors.
        MonitorError: bad input: a missing file, columns that do not match the data contract,
            a spec with nothing to monitor, no run, no version that passed its gate, artifacts
            gone from the cache, or current data the model cannot score.
    """
    from mlc.compiler.ir import StepKind
    from mlc.targets.local import LocalOptions

    result = check(spec_path, overrides, targets=["local"])
    if not result.ok:
        raise DiagnosticError(result.diagnostics)
    ir = result.ir
    mon_step = ir.first(StepKind.MONITOR)
    trig_step = ir.first(StepKind.RETRAIN_TRIGGER)
    split = ir.first(StepKind.SPLIT)
    if (mon_step is None and trig_step is None) or split is None:
        raise MonitorError(f"{spec_path} has no 'monitoring' or 'feedback' section to evaluate")
    options = result.options["local"]
    assert isinstance(options, LocalOptions)
    project = Path(result.loaded.project_dir)
    state_dir = project / options.state_dir
    target: str | None = split.params.get("target")
    validate = ir.first(StepKind.VALIDATE)
    columns = dict((validate.params.get("contract") or {}).get("columns", {})) if validate else {}
    if (current is None) == (from_log is None):
        raise MonitorError("give the current data or a prediction log to read, not both")
    mon_params = monitor_params(result.spec, ir, trig_step)
    clock = _now(now)
    window_note: str | None = None
    why_version = "asked for with --model-version"
    if from_log is not None:
        source = Path(from_log)
        frame, served, window_note = _from_log(
            source,
            columns,
            labels,
            labels_column or target,
            target,
            window=float(mon_params.get("window") or 0),
            now=clock,
        )
        if model_version is None and served is not None:
            model_version, why_version = served
    else:
        source = Path(current)  # type: ignore[arg-type]
        frame = _labelled(_read_current(source), labels_column, target, source)
    frame = _contract_check(frame, columns, target, source)
    try:
        record, got, champion = pick_model(
            ir, state_dir, ir.name, options.tracking_uri, model_version, why_version
        )
    except MonitorError:
        if why_version == "asked for with --model-version":
            raise
        # the version that served has no run here (registered elsewhere): the default choice
        record, got, champion = pick_model(ir, state_dir, ir.name, options.tracking_uri)
    scored = ScoredModel(**got)
    register = ir.first(StepKind.REGISTER)
    model_id = register.inputs.get("model") if register else None
    model = _artifact_folder(ir, record, model_id) if model_id else None
    profile_path, reference_note = _profile_of(ir, record, scored, options.tracking_uri, state_dir)
    reference: str | None = None
    if profile_path is None:
        reference_id = mon_step.inputs["reference"] if mon_step else f"{split.id}.train"
        reference = _artifact_folder(ir, record, reference_id)
    if (profile_path is None and reference is None) or model is None:
        raise MonitorError(
            f"the artifacts of run {record.get('run_id')} are gone from the cache: "
            "run `mlc run SPEC` again"
        )
    mon_params["reference_note"] = reference_note
    if window_note:
        mon_params["window_note"] = window_note
    trig_params: dict[str, Any] = (
        dict(trig_step.params)
        if trig_step
        else {"triggers": [], "active_learning": None, "model_name": ir.name, "target": target}
    )
    trig_params["state"] = {
        "champion_metrics": (champion or {}).get("metrics", {}),
        "last_trained": record.get("started"),
        "now": now or clock.isoformat(timespec="seconds"),
        "new_rows": len(frame),
    }
    from mlc.runtime.context import StepContext, StepError

    ctx = StepContext(project_dir=project, state_dir=state_dir, tracking_uri=options.tracking_uri)
    inputs = {"model": model}
    if profile_path is not None:
        inputs["profile"] = profile_path
    else:
        assert reference is not None
        inputs["reference"] = reference
    try:
        report, decision, folder = _evaluate(
            mon_params,
            trig_params,
            frame,
            inputs,
            Path(out_dir) if out_dir is not None else state_dir / "monitor",
            ctx,
        )
    except StepError as exc:
        # the current data reached the model but it could not score it (e.g. unseen values)
        raise MonitorError(str(exc), scored) from exc
    _export(report, scored, textfile, pushgateway, push_job, push_instance)
    return MonitorResult(result, scored, report, decision, folder)


def _now(now: str | None) -> dt.datetime:
    """The evaluation time: `now` (ISO-8601; naive means UTC) or the clock."""
    if now is None:
        return dt.datetime.now(dt.UTC)
    try:
        when = dt.datetime.fromisoformat(now)
    except ValueError as exc:
        raise MonitorError(f"--now '{now}' is not an ISO-8601 time: {exc}") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _profile_of(
    ir: IRGraph,
    record: dict[str, Any],
    scored: ScoredModel,
    tracking_uri: str | None,
    state_dir: Path,
) -> tuple[str | None, str]:
    """The reference profile of the scored version (a file) and a note on the reference used.

    The register step's local `model_version` artifact keeps the profile; a record without it
    is looked up among the artifacts of the version's MLflow run. None: the version has no
    profile (registered before profiles existed, or an unregistered candidate), so the caller
    uses the training split.
    """
    from mlc.compiler.ir import StepKind
    from mlc.runtime import profile as ref_profile

    register = ir.first(StepKind.REGISTER)
    what = f"v{scored.version}" if scored.version is not None else f"run {scored.run_id}"
    fallback = (
        f"the training split artifact of run {scored.run_id}: {what} has no reference profile "
        "(registered before profiles were stored, or not registered)"
    )
    if register is None or scored.version is None:
        return None, fallback
    mlflow_run = None
    for step in record.get("steps", []):
        if step.get("step_id") != register.id:
            continue
        folder = (step.get("outputs") or {}).get("model_version")
        if folder and Path(folder, ref_profile.FILE).is_file():
            return str(Path(folder, ref_profile.FILE)), (
                f"the reference profile stored with {what} (local copy)"
            )
        mlflow_run = (step.get("summary") or {}).get("mlflow_run_id")
        if folder and Path(folder, "model_version.json").is_file():
            import json

            doc = json.loads(Path(folder, "model_version.json").read_text())
            mlflow_run = doc.get("mlflow_run_id") or mlflow_run
    uri = tracking_uri or record.get("tracking_uri")
    if mlflow_run and uri:
        got = _download_profile(str(uri), str(mlflow_run), state_dir)
        if got is not None:
            return got, f"the reference profile stored with {what} ({ref_profile.MLFLOW_PATH})"
    return None, fallback


def _download_profile(uri: str, run_id: str, state_dir: Path) -> str | None:
    """`reference/profile.json` of MLflow run `run_id`, downloaded; None when it has none."""
    from mlc.runtime import profile as ref_profile

    try:
        from mlflow import MlflowClient

        folder = state_dir / "monitor-profiles" / run_id
        folder.mkdir(parents=True, exist_ok=True)
        path = MlflowClient(tracking_uri=uri).download_artifacts(
            run_id, ref_profile.MLFLOW_PATH, str(folder)
        )
    except Exception:  # no such artifact, or a store that cannot be read: use the split
        return None
    return str(path) if Path(path).is_file() else None


def _export(
    report: dict[str, Any],
    scored: ScoredModel,
    textfile: str | Path | None,
    pushgateway: str | None,
    job: str | None,
    instance: str | None,
) -> None:
    """The report's gauges to a textfile and/or a Pushgateway."""
    if textfile is None and pushgateway is None:
        return
    import time

    from mlc.runtime import drift as gauges
    from mlc.runtime.steps.monitor import prometheus

    text = prometheus(report, timestamp=time.time())
    if textfile is not None:
        try:
            gauges.write_textfile(textfile, text)
        except OSError as exc:
            raise MonitorError(f"cannot write the textfile {textfile}: {exc}", scored) from exc
    if pushgateway is not None:
        try:
            gauges.push(pushgateway, text, job or "mlc-monitor", instance or scored.name)
        except gauges.PushError as exc:
            raise MonitorError(str(exc), scored) from exc


def export_gauges(
    watched: MonitorResult,
    *,
    textfile: str | Path | None = None,
    pushgateway: str | None = None,
    job: str | None = None,
    instance: str | None = None,
) -> None:
    """A finished monitor's gauges to a textfile and/or a Pushgateway (as `monitor` exports
    them when given `textfile`/`pushgateway`).

    Raises:
        MonitorError: the textfile cannot be written or the Pushgateway refused the push.
    """
    _export(watched.report, watched.model, textfile, pushgateway, job, instance)


def monitor_params(spec: Spec, ir: IRGraph, trig_step: Step | None) -> dict[str, Any]:
    """The `monitor` step's params for scoring labelled current data here.

    The IR's monitor step; without one (feedback triggers but no `monitoring` section), the
    step the IR builder makes for `monitoring: {}`: no drift (a drift trigger needs
    `monitoring.drift`, MLC380) and no performance floor. Labelled rows are scored with the
    performance triggers' metrics and, without `monitoring.performance`, with the evaluation
    metrics as the test split was.
    """
    from mlc.compiler.ir import StepKind, build_ir
    from mlc.specs.monitoring import Monitoring

    mon_step = ir.first(StepKind.MONITOR)
    if mon_step is None:
        implied = spec.model_copy(update={"monitoring": Monitoring()})
        mon_step = build_ir(implied).first(StepKind.MONITOR)
        assert mon_step is not None
    params = dict(mon_step.params)
    triggers: list[dict[str, Any]] = list(trig_step.params["triggers"]) if trig_step else []
    metrics = {t["metric"] for t in triggers if t["kind"] == "performance_drop"}
    evaluate = ir.first(StepKind.EVALUATE)
    if not params.get("performance") and evaluate is not None:
        metrics.update(evaluate.params.get("metrics") or [])
    params["metrics"] = sorted(metrics)
    return params


def _read_current(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise MonitorError(f"current data '{path}' does not exist")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise MonitorError(f"cannot read current data '{path}': {exc}") from exc


def _from_log(
    folder: Path,
    columns: dict[str, Any],
    labels: str | Path | None,
    label_column: str | None,
    target: str | None,
    *,
    window: float = 0.0,
    now: dt.datetime | None = None,
) -> tuple[pd.DataFrame, tuple[str, str] | None, str | None]:
    """The served rows of a prediction log as current data, with later labels joined on
    `request_id`; the version that served them (and why it is the one) and a note on the
    window read.

    With `window` (seconds) and `now`, only rows logged in `(now - window, now]` are read (the
    log's `time` column). Segments that are not closed Parquet files of this log (torn by a
    kill, or foreign files) are left out.
    """
    if not folder.is_dir():
        raise MonitorError(f"prediction log '{folder}' does not exist (mlc serve writes it)")
    logged, skipped = _read_segments(folder)
    logged = logged[~logged["shadow"].astype(bool)] if "shadow" in logged else logged
    if logged.empty:
        raise MonitorError(
            f"prediction log '{folder}' has no closed segment with served rows"
            + (f" ({'; '.join(skipped)})" if skipped else "")
        )
    note = "; ".join(skipped) if skipped else None
    if window > 0 and now is not None and "time" in logged.columns:
        end = now.timestamp()
        stamps = logged["time"].astype(float)
        inside = (stamps > end - window) & (stamps <= end)
        note = "; ".join(
            [
                f"{int(inside.sum())} of {len(logged)} logged row(s) in the window "
                f"({window:g} s up to {now.isoformat(timespec='seconds')})",
                *skipped,
            ]
        )
        logged = logged[inside]
    served = _served_version(logged)
    keep = [c for c in columns if c in logged.columns and c != target]
    frame = logged[["request_id", "row", *keep]].reset_index(drop=True)
    if labels is None:
        return frame.drop(columns=["request_id", "row"]), served, note
    path = Path(labels)
    arrived = _read_current(path)
    for needed in ("request_id", label_column):
        if needed not in arrived.columns:
            raise MonitorError(f"{path}: labels need columns 'request_id' and '{label_column}'")
    keys = ["request_id", "row"] if "row" in arrived.columns else ["request_id"]
    if keys == ["request_id"] and frame["request_id"].duplicated().any():
        raise MonitorError(
            f"{path}: some logged requests scored several rows; give each label its 'row' "
            "(the row's index in its request) beside 'request_id'"
        )
    arrived = arrived[[*keys, str(label_column)]].drop_duplicates(keys, keep="last")
    joined = frame.merge(arrived, on=keys, how="left")
    if target and label_column != target:
        joined = joined.rename(columns={label_column: target})
    return joined.drop(columns=["request_id", "row"]), served, note


def _read_segments(folder: Path) -> tuple[pd.DataFrame, list[str]]:
    """The rows of the log's closed segments, and notes on the files left out: open or torn
    segments (`.tmp`), files that are not segments, and segments that cannot be read or lack
    the log's columns (foreign files under a segment's name)."""
    import pandas as pd
    import pyarrow.parquet as pq

    from mlc.runtime.serving.predlog import BASE_COLUMNS, SEGMENT, segments

    closed = segments(folder)
    names = {p.name for p in closed}
    torn = sorted(p.name for p in folder.iterdir() if p.name.endswith(".parquet.tmp"))
    other = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file() and p.name not in names and p.name not in torn and not SEGMENT.match(p.name)
    )
    notes = []
    if torn:
        notes.append(f"skipped {len(torn)} open or torn segment(s): {', '.join(torn[:3])}")
    if other:
        notes.append(f"skipped {len(other)} file(s) that are not log segments")
    frames = []
    bad = []
    for path in closed:
        try:
            table = pq.read_table(path)
        except Exception:  # pyarrow raises many types for a file that is not Parquet
            bad.append(path.name)
            continue
        if not set(BASE_COLUMNS) <= set(table.column_names):
            bad.append(path.name)
            continue
        frames.append(table.to_pandas())
    if bad:
        notes.append(
            f"skipped {len(bad)} segment(s) that are not this log's Parquet: {', '.join(bad[:3])}"
        )
    if not frames:
        return pd.DataFrame(columns=list(BASE_COLUMNS)), notes
    return pd.concat(frames, ignore_index=True), notes


def _served_version(logged: pd.DataFrame) -> tuple[str, str] | None:
    """The registered version that served most of the logged rows, with why; None when the
    log names none (rows of an unregistered model, or no rows)."""
    if "model_version" not in logged.columns or logged.empty:
        return None
    counts = logged["model_version"].dropna().astype(str).value_counts()
    counts = counts[counts.index.str.fullmatch(r"\d+")]
    if counts.empty:
        return None
    top = str(counts.index[0])
    why = (
        f"it served the window's rows ({int(counts.iloc[0])} of {int(counts.sum())})"
        if len(counts) == 1
        else f"it served most of the window's rows ({int(counts.iloc[0])} of "
        f"{int(counts.sum())}; also served: " + ", ".join(f"v{v}" for v in counts.index[1:]) + ")"
    )
    return top, why


def _labelled(
    frame: pd.DataFrame, labels_column: str | None, target: str | None, path: Path
) -> pd.DataFrame:
    """`frame` with the arrived labels under the target's name."""
    if labels_column is None:
        return frame
    if labels_column not in frame.columns:
        raise MonitorError(f"{path}: labels column '{labels_column}' is not in the data")
    if target and labels_column != target:
        frame = frame.drop(columns=[target], errors="ignore")
        frame = frame.rename(columns={labels_column: target})
    return frame


def _contract_check(
    current: pd.DataFrame, columns: dict[str, Any], target: str | None, path: Path
) -> pd.DataFrame:
    """`current` cast to the contract's dtypes; missing or non-numeric columns are errors."""
    from mlc.runtime.steps._data import cast_to_contract

    want = [c for c in columns if c != target]
    missing = [c for c in want if c not in current.columns]
    if missing:
        raise MonitorError(
            f"{path}: missing contract column(s): {', '.join(missing)} "
            f"(the contract has: {', '.join(sorted(columns))})"
        )
    cast = cast_to_contract(current, columns)
    wrong = [
        c
        for c in want
        if columns[c].get("dtype") in ("int", "float")
        and not (current[c].isna().all() or str(cast[c].dtype).startswith(("int", "float")))
    ]
    if wrong:
        raise MonitorError(
            f"{path}: column(s) not numeric as the contract says: {', '.join(wrong)}"
        )
    return cast


def _artifact_folder(ir: IRGraph, record: dict[str, Any], artifact_id: str) -> str | None:
    """Where the run left `artifact_id`; None when the cache lost it.

    Raises:
        MonitorError: the run has no output of that name (it ran another version of the spec).
    """
    art = ir.artifact(artifact_id)
    for step in record.get("steps", []):
        if step.get("step_id") == art.producer and art.name in (step.get("outputs") or {}):
            folder = step["outputs"][art.name]
            return str(folder) if folder and Path(folder, "_meta.json").is_file() else None
    raise MonitorError(
        f"run {record.get('run_id')} has no '{artifact_id}': it ran the spec with other "
        "settings; monitor with the overrides of that run, or run the pipeline again"
    )


def _registered(ir: IRGraph, rec: dict[str, Any]) -> dict[str, Any] | None:
    """The version a run registered, with that run's verdict; None when it registered none."""
    from mlc.compiler.ir import StepKind

    for step in rec.get("steps", []):
        summary = step.get("summary") or {}
        if (
            step.get("kind") == StepKind.REGISTER.value
            and isinstance(summary, dict)
            and summary.get("version") is not None
        ):
            return {
                "name": str(summary.get("model") or ir.name),
                "version": str(summary["version"]),
                "passed": rec.get("status") == "succeeded",
                "run_id": rec.get("run_id"),
            }
    return None


def pick_model(
    ir: IRGraph,
    state_dir: Path,
    model_name: str,
    tracking_uri: str | None,
    wanted: str | None = None,
    why_wanted: str = "asked for with --model-version",
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """The run whose model is scored, that model (`ScoredModel`'s fields) and the champion
    (for the triggers' comparison).

    `wanted` is a registered version, or a run id for that run's candidate model (registered or
    not: a failed gate registers nothing); else the champion, else the newest version whose gate
    passed.

    Raises:
        MonitorError: no finished run, or no such version: nothing approved exists to be
            monitored.
    """
    from mlc.runtime.steps.register import champion_info
    from mlc.targets.local.executor import list_runs

    runs = [r for r in list_runs(state_dir) if r.get("status") in ("succeeded", "gate_failed")]
    if not runs:
        raise MonitorError(f"no finished run under {state_dir / 'runs'}: run `mlc run SPEC` first")
    uri = tracking_uri or runs[0].get("tracking_uri")
    champion = champion_info(model_name, uri) if uri else None
    versions = [(rec, got) for rec in runs if (got := _registered(ir, rec)) is not None]

    def chosen(rec: dict[str, Any], got: dict[str, Any], why: str) -> tuple[Any, Any, Any]:
        is_champion = champion is not None and champion["version"] == got["version"]
        return rec, {**got, "alias": "champion" if is_champion else None, "why": why}, champion

    if wanted is not None:
        for rec, got in versions:
            if got["version"] == wanted:
                return chosen(rec, got, why_wanted)
        for rec in runs:
            if rec.get("run_id") == wanted:
                got = _registered(ir, rec) or {
                    "name": model_name,
                    "version": None,
                    "passed": rec.get("status") == "succeeded",
                    "run_id": wanted,
                }
                return chosen(rec, got, "asked for with --model-version")
        known = sorted({got["version"] for _, got in versions}, key=_version_order)
        raise MonitorError(
            f"'{wanted}' is neither a version of '{model_name}' registered by a run under "
            f"{state_dir / 'runs'} (registered: {', '.join(known) or 'none'}) nor one of its "
            "run ids (see `mlc runs`)"
        )
    if champion is not None:
        for rec, got in versions:
            if got["version"] == champion["version"]:
                return chosen(rec, got, "the champion")
    lacking = (
        f"the champion, v{champion['version']}, has no run record here"
        if champion is not None
        else "there is no champion"
    )
    for rec, got in versions:
        if got["passed"]:
            return chosen(rec, got, f"the newest version whose gate passed ({lacking})")
    newest = runs[0]
    raise MonitorError(
        f"no version of '{model_name}' passed its gate (the newest run, {newest.get('run_id')}, "
        f"ended {newest.get('status')}): there is no approved model to monitor; "
        "--model-version N scores registered version N, --model-version RUN_ID the candidate "
        "model of that run, anyway"
    )


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (0, version)


def _evaluate(
    mon_params: dict[str, Any],
    trig_params: dict[str, Any],
    frame: pd.DataFrame,
    inputs: dict[str, str],
    out_dir: Path,
    ctx: Any,
) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """Run the monitor and retrain_trigger steps; publish their outputs under `out_dir`.

    The outputs are written to a sibling temporary folder first and renamed into place, so a
    failed evaluation leaves the previous signal and decision as they were.
    """
    from mlc.runtime import artifacts
    from mlc.runtime.steps import get
    from mlc.runtime.steps.monitor import INSUFFICIENT

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".monitor-", dir=out_dir.parent))
    try:
        current_loc = str(tmp / "current")
        artifacts.save_dataframe(current_loc, frame)
        signal = str(tmp / "signal")
        model = inputs["model"]
        get("monitor")(
            mon_params,
            {**inputs, "current": current_loc, "model": model},
            {"signal": signal},
            ctx,
        )
        get("retrain_trigger")(
            trig_params,
            {"signal": signal, "current": current_loc, "model": model},
            {"decision": str(tmp / "decision")},
            ctx,
        )
        report = artifacts.load_json(signal, "report")
        decision = artifacts.load_json(str(tmp / "decision"), "decision")
        if report.get("verdict") == INSUFFICIENT:
            # too few rows to judge: whatever the triggers say, nothing retrains on it
            decision = {
                **decision,
                "retrain": False,
                "insufficient_data": report.get("insufficient"),
                "held_back": decision.get("reasons") or [],
                "reasons": [],
            }
            artifacts.save_json(
                str(tmp / "decision"), "decision", decision, "decision", retrain=False
            )
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report, decision, out_dir
