"""`monitor`: score current data against a registered model and its training data, and decide
whether to retrain (the library behind `mlc monitor`).

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
        model_version: a registered version, or a run id for that run's candidate model.

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
    if from_log is not None:
        source = Path(from_log)
        frame = _from_log(source, columns, labels, labels_column or target, target)
    else:
        source = Path(current)  # type: ignore[arg-type]
        frame = _labelled(_read_current(source), labels_column, target, source)
    frame = _contract_check(frame, columns, target, source)
    record, got, champion = pick_model(ir, state_dir, ir.name, options.tracking_uri, model_version)
    scored = ScoredModel(**got)
    reference_id = mon_step.inputs["reference"] if mon_step else f"{split.id}.train"
    reference = _artifact_folder(ir, record, reference_id)
    register = ir.first(StepKind.REGISTER)
    model_id = register.inputs.get("model") if register else None
    model = _artifact_folder(ir, record, model_id) if model_id else None
    if reference is None or model is None:
        raise MonitorError(
            f"the artifacts of run {record.get('run_id')} are gone from the cache: "
            "run `mlc run SPEC` again"
        )
    mon_params = monitor_params(result.spec, ir, trig_step)
    trig_params: dict[str, Any] = (
        dict(trig_step.params)
        if trig_step
        else {"triggers": [], "active_learning": None, "model_name": ir.name, "target": target}
    )
    trig_params["state"] = {
        "champion_metrics": (champion or {}).get("metrics", {}),
        "last_trained": record.get("started"),
        "now": now or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "new_rows": len(frame),
    }
    from mlc.runtime.context import StepContext, StepError

    ctx = StepContext(project_dir=project, state_dir=state_dir, tracking_uri=options.tracking_uri)
    try:
        report, decision, folder = _evaluate(
            mon_params,
            trig_params,
            frame,
            {"reference": reference, "model": model},
            Path(out_dir) if out_dir is not None else state_dir / "monitor",
            ctx,
        )
    except StepError as exc:
        # the current data reached the model but it could not score it (e.g. unseen values)
        raise MonitorError(str(exc), scored) from exc
    return MonitorResult(result, scored, report, decision, folder)


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
) -> pd.DataFrame:
    """The served rows of a prediction log as current data, with later labels joined on
    `request_id`."""
    from mlc.runtime.serving import read_log

    if not folder.is_dir():
        raise MonitorError(f"prediction log '{folder}' does not exist (mlc serve writes it)")
    logged = read_log(folder)
    logged = logged[~logged["shadow"].astype(bool)] if "shadow" in logged else logged
    if logged.empty:
        raise MonitorError(f"prediction log '{folder}' has no closed segment with served rows")
    keep = [c for c in columns if c in logged.columns and c != target]
    frame = logged[["request_id", "row", *keep]].reset_index(drop=True)
    if labels is None:
        return frame.drop(columns=["request_id", "row"])
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
    return joined.drop(columns=["request_id", "row"])


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
                return chosen(rec, got, "asked for with --model-version")
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

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".monitor-", dir=out_dir.parent))
    try:
        current_loc = str(tmp / "current")
        artifacts.save_dataframe(current_loc, frame)
        signal = str(tmp / "signal")
        model = inputs["model"]
        get("monitor")(
            mon_params,
            {"reference": inputs["reference"], "current": current_loc, "model": model},
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
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report, decision, out_dir
