"""`mlc monitor`: the local feedback loop — drift, performance, retrain decision, active learning.

Reads the reference (the train split) and a registered model version from the project's runs,
scores the current data against them (`monitor` step), evaluates the spec's `feedback.triggers`
(`retrain_trigger` step) and, with `--retrain`, runs the pipeline again.

The model scored is the `champion`; without one, the newest version whose gate passed (a manual
promotion policy leaves passed versions without the alias). A model whose gate failed (a run
that failed it registers nothing) is scored only when asked for: `--model-version RUN_ID` (or a
version number): monitoring a model nobody approved would report on something that is not, and
should not be, serving. The model scored is printed first, with its version, alias and verdict.

Labelled current data is scored with `monitoring.performance.metric` and the retrain triggers'
metrics; without `monitoring.performance`, with the spec's evaluation metrics.

Exit codes: 0 no retraining needed, 10 retraining recommended, 2 bad input (spec errors, a
missing file, columns that do not match the data contract, no run to monitor, no version that
passed its gate). With `--retrain` and a recommendation, the code is that of `mlc run` (0, 3 a
gate failed, 4 a step failed).
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlc.compiler.cli._app import app
from mlc.compiler.cli._common import EXIT_SPEC, Format, SpecArg, emit_diagnostics, handle_errors
from mlc.compiler.cli._project import resolve_spec
from mlc.compiler.cli.run import OverridesArg

if TYPE_CHECKING:
    import pandas as pd

    from mlc.compiler.ir import IRGraph

EXIT_RETRAIN = 10
"""`mlc monitor` exit code: the feedback triggers recommend retraining."""


class _BadInput(Exception):
    """A problem with what the user gave `mlc monitor`; printed as one message, exit 2."""


def _read_current(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise _BadInput(f"current data '{path}' does not exist")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise _BadInput(f"cannot read current data '{path}': {exc}") from exc


def _contract_check(
    current: pd.DataFrame, columns: dict[str, Any], target: str | None, path: Path
) -> pd.DataFrame:
    """`current` cast to the contract's dtypes; missing or non-numeric columns are `_BadInput`."""
    from mlc.runtime.steps._data import cast_to_contract

    want = [c for c in columns if c != target]
    missing = [c for c in want if c not in current.columns]
    if missing:
        raise _BadInput(
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
        raise _BadInput(f"{path}: column(s) not numeric as the contract says: {', '.join(wrong)}")
    return cast


def _artifact_folder(ir: IRGraph, record: dict[str, Any], artifact_id: str) -> str | None:
    """Where the run left `artifact_id`; None when the cache lost it.

    Raises:
        _BadInput: the run has no output of that name (it ran another version of the spec).
    """
    art = ir.artifact(artifact_id)
    for step in record.get("steps", []):
        if step.get("step_id") == art.producer and art.name in (step.get("outputs") or {}):
            folder = step["outputs"][art.name]
            return str(folder) if folder and Path(folder, "_meta.json").is_file() else None
    raise _BadInput(
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


def _pick_run(
    ir: IRGraph,
    state_dir: Path,
    model_name: str,
    tracking_uri: str | None,
    wanted: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """The run whose model is scored, that model (name, version, alias, verdict, why) and the
    champion (for the triggers' comparison).

    `wanted` is a registered version, or a run id for that run's candidate model (registered or
    not: a failed gate registers nothing); else the champion, else the newest version whose gate
    passed. No such version is `_BadInput`: nothing approved exists to be monitored.
    """
    from mlc.runtime.steps.register import champion_info
    from mlc.targets.local.executor import list_runs

    runs = [r for r in list_runs(state_dir) if r.get("status") in ("succeeded", "gate_failed")]
    if not runs:
        raise _BadInput(f"no finished run under {state_dir / 'runs'}: run `mlc run SPEC` first")
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
        raise _BadInput(
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
    raise _BadInput(
        f"no version of '{model_name}' passed its gate (the newest run, {newest.get('run_id')}, "
        f"ended {newest.get('status')}): there is no approved model to monitor; "
        "--model-version N scores registered version N, --model-version RUN_ID the candidate "
        "model of that run, anyway"
    )


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (0, version)


def _describe_model(model: dict[str, Any]) -> str:
    verdict = "gate passed" if model["passed"] else "gate FAILED"
    if model["version"] is None:
        what = f"{model['name']}, the candidate of run {model['run_id']} (not registered, "
    else:
        alias = f"alias {model['alias']}" if model.get("alias") else "no alias"
        what = f"{model['name']} v{model['version']} ({alias}, run {model['run_id']}, "
    return f"model: {what}{verdict}): {model['why']}"


def _table(report: dict[str, Any], decision: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    drift = Table(title="drift against the training data", title_justify="left")
    for col in ("feature", "method", "score", "threshold", "drift"):
        drift.add_column(col)
    for row in report["drift"]:
        score = row.get("score")
        drift.add_row(
            str(row["feature"]),
            str(row.get("method")),
            "missing in " + "/".join(row["missing"]) if row.get("missing") else f"{score:.4g}",
            f"{row['threshold']:g}",
            "DRIFT" if row["drifted"] else "ok",
        )
    console.print(drift)
    perf = report.get("performance")
    if perf:
        values = ", ".join(
            f"{k} {v:.4g}" for k, v in sorted(perf["values"].items()) if isinstance(v, int | float)
        )
        line = f"performance on {perf['rows']} labelled rows: {values or 'no metric to score'}"
        if perf.get("floor") is not None and perf.get("metric"):
            worse = "ABOVE" if perf.get("direction") == "lower" else "BELOW"
            verdict = worse if perf.get("below_floor") else "ok"
            line += f" ({perf['metric']} floor {perf['floor']:g}: {verdict})"
        console.print(line)
    else:
        console.print("performance: not measured (no labels in the current data)")
    checks = Table(title="retrain triggers", title_justify="left")
    for col in ("trigger", "fired", "why"):
        checks.add_column(col)
    for check in decision["checks"]:
        checks.add_row(str(check["kind"]), "YES" if check["fired"] else "no", check["reason"])
    console.print(checks)
    if decision["retrain"]:
        console.print("decision: RETRAIN recommended — " + "; ".join(decision["reasons"]))
    else:
        console.print("decision: no retraining needed")


@app.command()
@handle_errors
def monitor(
    current: Annotated[
        Path, typer.Option("--current", help="Current (production) data: CSV or Parquet.")
    ],
    spec: SpecArg = None,
    overrides: OverridesArg = None,
    labels_column: Annotated[
        str | None,
        typer.Option(
            "--labels-column", help="Column holding arrived labels (default: the spec's target)."
        ),
    ] = None,
    retrain: Annotated[
        bool, typer.Option("--retrain", help="Run the pipeline when retraining is recommended.")
    ] = False,
    now: Annotated[
        str | None,
        typer.Option("--now", help="Evaluation time, ISO-8601 (default: the clock; schedules)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the signal and decision (default .mlc/monitor)."),
    ] = None,
    model_version: Annotated[
        str | None,
        typer.Option(
            "--model-version",
            help="Score this registered version, or the candidate model of this run id (default: "
            "the champion, else the newest version whose gate passed; a model whose gate failed "
            "only when named here).",
        ),
    ] = None,
) -> None:
    """Check current data for drift and performance loss; decide whether to retrain.

    Exit codes: 0 no retraining needed; 10 retraining recommended; 2 bad input (spec errors,
    missing file or contract columns, no run, no version that passed its gate); with --retrain,
    those of `mlc run` (0, 3 a gate failed, 4 a step failed).
    """
    from mlc.compiler.api import check
    from mlc.compiler.ir import StepKind
    from mlc.runtime.context import StepError
    from mlc.targets.local import LocalOptions

    spec, overrides = resolve_spec(spec, overrides)
    result = check(spec, overrides, targets=["local"])
    if not result.ok:
        emit_diagnostics(result.diagnostics, Format.text)
        raise typer.Exit(EXIT_SPEC)
    ir = result.ir
    mon_step = ir.first(StepKind.MONITOR)
    trig_step = ir.first(StepKind.RETRAIN_TRIGGER)
    split = ir.first(StepKind.SPLIT)
    if (mon_step is None and trig_step is None) or split is None:
        print(
            f"mlc monitor: {spec} has no 'monitoring' or 'feedback' section to evaluate",
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_SPEC)
    options = result.options["local"]
    assert isinstance(options, LocalOptions)
    project = Path(result.loaded.project_dir)
    state_dir = project / options.state_dir
    target = split.params.get("target")
    validate = ir.first(StepKind.VALIDATE)
    columns = dict((validate.params.get("contract") or {}).get("columns", {})) if validate else {}
    try:
        frame = _read_current(current)
        if labels_column is not None:
            if labels_column not in frame.columns:
                raise _BadInput(f"{current}: labels column '{labels_column}' is not in the data")
            if target and labels_column != target:
                frame = frame.drop(columns=[target], errors="ignore")
                frame = frame.rename(columns={labels_column: target})
        frame = _contract_check(frame, columns, target, current)
        record, scored, champion = _pick_run(
            ir, state_dir, ir.name, options.tracking_uri, model_version
        )
        reference_id = mon_step.inputs["reference"] if mon_step else f"{split.id}.train"
        reference = _artifact_folder(ir, record, reference_id)
        register = ir.first(StepKind.REGISTER)
        model_id = register.inputs.get("model") if register else None
        model = _artifact_folder(ir, record, model_id) if model_id else None
        if reference is None or model is None:
            raise _BadInput(
                f"the artifacts of run {record.get('run_id')} are gone from the cache: "
                "run `mlc run SPEC` again"
            )
    except _BadInput as exc:
        print(f"mlc monitor: error: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_SPEC) from None
    print(_describe_model(scored))
    try:
        decision, report, folder = _evaluate(
            ir,
            mon_step,
            trig_step,
            frame,
            reference,
            model,
            target,
            champion,
            record,
            now,
            out or state_dir / "monitor",
            project,
            state_dir,
            options.tracking_uri,
        )
    except StepError as exc:
        # the current data reached the model but it could not score it (e.g. unseen values)
        print(f"mlc monitor: error: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_SPEC) from None
    _table(report, decision)
    print(f"signal and decision in {folder}", file=sys.stderr)
    if not decision["retrain"]:
        return
    if not retrain:
        raise typer.Exit(EXIT_RETRAIN)
    from mlc.compiler.cli.run import run_

    run_(spec, overrides)


def _feature_columns(ir: IRGraph, target: str | None) -> list[str]:
    """The model's input columns: typed columns less target, PII and excluded, plus derived."""
    from mlc.compiler.ir import StepKind

    feats = ir.first(StepKind.FEATURES)
    if feats is None:
        return []
    params = feats.params
    skip = {target, *params.get("pii", []), *(params.get("selection") or {}).get("exclude", [])}
    names = [c for c in sorted(params.get("dtypes", {})) if c not in skip]
    return names + [d["name"] for d in params.get("derived", [])]


def _evaluate(
    ir: IRGraph,
    mon_step: Any,
    trig_step: Any,
    frame: pd.DataFrame,
    reference: str,
    model: str,
    target: str | None,
    champion: dict[str, Any] | None,
    record: dict[str, Any],
    now: str | None,
    out_dir: Path,
    project: Path,
    state_dir: Path,
    tracking_uri: str | None,
) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """Run the monitor and retrain_trigger steps; publish their outputs under `out_dir`."""
    from mlc.compiler.ir import StepKind
    from mlc.runtime import artifacts
    from mlc.runtime.context import StepContext
    from mlc.runtime.steps import get

    trig_params = dict(trig_step.params) if trig_step else {"triggers": []}
    mon_params = dict(mon_step.params) if mon_step else {"model_name": ir.name}
    drift_trigger = next((t for t in trig_params["triggers"] if t["kind"] == "drift"), None)
    if not mon_params.get("drift") and drift_trigger is not None:
        # feedback without monitoring.drift: score the model's input features by PSI
        mon_params["drift"] = {
            "method": "psi",
            "threshold": drift_trigger.get("threshold") or 0.2,
            "features": _feature_columns(ir, target),
        }
    mon_params["target"] = target
    metrics = {t["metric"] for t in trig_params["triggers"] if t["kind"] == "performance_drop"}
    evaluate = ir.first(StepKind.EVALUATE)
    if not mon_params.get("performance") and evaluate is not None:
        # no monitoring.performance: labelled rows are scored as the test split was
        metrics.update(evaluate.params.get("metrics") or [])
    mon_params["metrics"] = sorted(metrics)
    train = ir.first(StepKind.TRAIN)
    if train is not None:
        mon_params["task"] = train.params.get("task")
    trig_params["target"] = target
    trig_params["state"] = {
        "champion_metrics": (champion or {}).get("metrics", {}),
        "last_trained": record.get("started"),
        "now": now or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "new_rows": len(frame),
    }
    ctx = StepContext(project_dir=project, state_dir=state_dir, tracking_uri=tracking_uri)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".monitor-", dir=out_dir.parent))
    try:
        current_loc = str(tmp / "current")
        artifacts.save_dataframe(current_loc, frame)
        inputs = {"reference": reference, "current": current_loc, "model": model}
        get("monitor")(mon_params, inputs, {"signal": str(tmp / "signal")}, ctx)
        get("retrain_trigger")(
            trig_params,
            {"signal": str(tmp / "signal"), "current": current_loc, "model": model},
            {"decision": str(tmp / "decision")},
            ctx,
        )
        report = artifacts.load_json(str(tmp / "signal"), "report")
        decision = artifacts.load_json(str(tmp / "decision"), "decision")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return decision, report, out_dir
