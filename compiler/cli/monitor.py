"""`mlc monitor`: the local feedback loop — drift, performance, retrain decision, active learning.

Reads the reference (the train split) and the champion model from the project's last
`mlc run`, scores the current data against them (`monitor` step), evaluates the spec's
`feedback.triggers` (`retrain_trigger` step) and, with `--retrain`, runs the pipeline again.

Exit codes: 0 no retraining needed, 10 retraining recommended, 2 bad input (spec errors, a
missing file, columns that do not match the data contract, no run to monitor). With
`--retrain` and a recommendation, the code is that of `mlc run` (0, 3 gate failed, 4 step
failed).
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
from mlc.compiler.cli._common import EXIT_SPEC, Format, emit_diagnostics, handle_errors
from mlc.compiler.cli.run import OverridesArg, SpecArg

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
    art = ir.artifact(artifact_id)
    for step in record.get("steps", []):
        if step.get("step_id") == art.producer:
            folder = (step.get("outputs") or {}).get(art.name)
            return str(folder) if folder and Path(folder, "_meta.json").is_file() else None
    return None


def _pick_run(
    ir: IRGraph, state_dir: Path, model_name: str, tracking_uri: str | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The run that produced the champion (else the newest succeeded run), and the champion."""
    from mlc.runtime.steps.register import champion_info
    from mlc.targets.local.executor import list_runs

    runs = [r for r in list_runs(state_dir) if r.get("status") in ("succeeded", "gate_failed")]
    if not runs:
        raise _BadInput(f"no finished run under {state_dir / 'runs'}: run `mlc run SPEC` first")
    uri = tracking_uri or runs[0].get("tracking_uri")
    champion = champion_info(model_name, uri) if uri else None
    if champion is not None:
        for rec in runs:
            for step in rec.get("steps", []):
                summary = step.get("summary") or {}
                if (
                    step.get("kind") == "register"
                    and isinstance(summary, dict)
                    and str(summary.get("version")) == champion["version"]
                ):
                    return rec, champion
    return runs[0], champion


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
        values = ", ".join(f"{k} {v:.4g}" for k, v in sorted(perf["values"].items()))
        floor = f" (floor {perf['floor']:g}: {'BELOW' if perf['below_floor'] else 'ok'})"
        console.print(
            f"performance on {perf['rows']} labelled rows: {values}"
            + (floor if perf.get("floor") is not None else "")
        )
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
    spec: SpecArg,
    current: Annotated[
        Path, typer.Option("--current", help="Current (production) data: CSV or Parquet.")
    ],
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
) -> None:
    """Check current data for drift and performance loss; decide whether to retrain."""
    from mlc.compiler.api import check
    from mlc.compiler.ir import StepKind
    from mlc.runtime.context import StepError
    from mlc.targets.local import LocalOptions

    result = check(spec, overrides or (), targets=["local"])
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
        record, champion = _pick_run(ir, state_dir, ir.name, options.tracking_uri)
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
    mon_params["metrics"] = sorted(
        {t["metric"] for t in trig_params["triggers"] if t["kind"] == "performance_drop"}
    )
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
