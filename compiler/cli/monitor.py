"""`mlc monitor`: the local feedback loop — drift, performance, retrain decision, active learning.

Reads the reference (the train split) and a registered model version from the project's runs,
scores the current data against them (`monitor` step), evaluates the spec's `feedback.triggers`
(`retrain_trigger` step) and, with `--retrain`, runs the pipeline again.

The model scored is the `champion`; without one, the newest version whose gate passed (a manual
promotion policy leaves passed versions without the alias). A model whose gate failed (a run
that failed it registers nothing) is scored only when asked for: `--model-version RUN_ID` (or a
version number): monitoring a model nobody approved would report on something that is not, and
should not be, serving. The model scored is printed first, with its version, alias and verdict.

With `--from-log`, the current data is the log's rows of the last `monitoring.window`, scored
against the reference profile stored with the version that served them (the training split
when that version has none; the report says which). Fewer rows than `monitoring.min_rows`:
"insufficient data", and nothing retrains. `--textfile PATH` and `--pushgateway URL` export the
drift scores, performance and row counts as Prometheus gauges.

Labelled current data is scored with `monitoring.performance.metric` and the retrain triggers'
metrics; without `monitoring.performance`, with the spec's evaluation metrics.

Exit codes: 0 no retraining needed, 10 retraining recommended, 2 bad input (spec errors, a
missing file, columns that do not match the data contract, no run to monitor, no version that
passed its gate). With `--retrain` and a recommendation, the code is that of `mlc run` (0, 3 a
gate failed, 4 a step failed).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mlc.compiler.api import MonitorError, pick_model
from mlc.compiler.cli._app import app
from mlc.compiler.cli._common import EXIT_SPEC, SpecArg, handle_errors
from mlc.compiler.cli._project import find_project, resolve_spec
from mlc.compiler.cli.run import OverridesArg

EXIT_RETRAIN = 10
"""`mlc monitor` exit code: the feedback triggers recommend retraining."""


# `monitor`'s bad input and model choice, under the names this module had before they moved
# into the library (the monitor tests reach them here)
_BadInput = MonitorError
_pick_run = pick_model


def _table(report: dict[str, Any], decision: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    ref = report.get("reference") or {}
    if ref:
        console.print(f"reference: {ref.get('note') or ref.get('source')}")
    if report.get("window"):
        console.print(f"window: {report['window']}")
    if report.get("verdict") == "insufficient data":
        console.print(f"drift: INSUFFICIENT DATA — {report.get('insufficient')}")
    drift = Table(
        title=f"drift against the {ref.get('source', 'training data')}", title_justify="left"
    )
    for col in ("feature", "method", "score", "threshold", "drift", "why"):
        drift.add_column(col)
    pred = report.get("prediction_drift")
    for row in [*report["drift"], *([pred] if pred else [])]:
        score = row.get("score")
        shown = (
            "missing in " + "/".join(row["missing"])
            if row.get("missing")
            else "n/a"
            if score is None
            else f"{score:.4g}"
        )
        drift.add_row(
            str(row["feature"]),
            str(row.get("method")),
            shown,
            f"{row['threshold']:g}",
            "DRIFT" if row["drifted"] else "ok",
            str(row.get("why") or "")
            + (f"; {row['approximation']}" if row.get("approximation") else ""),
        )
    if report["drift"] or pred:
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
    elif decision.get("insufficient_data"):
        held = decision.get("held_back") or []
        console.print(
            "decision: no retraining — insufficient data"
            + (f" (triggers held back: {'; '.join(held)})" if held else "")
        )
    else:
        console.print("decision: no retraining needed")


@app.command()
@handle_errors
def monitor(
    spec: SpecArg = None,
    overrides: OverridesArg = None,
    current: Annotated[
        Path | None, typer.Option("--current", help="Current (production) data: CSV or Parquet.")
    ] = None,
    from_log: Annotated[
        bool,
        typer.Option("--from-log", help="Read the prediction log of `mlc serve` as current data."),
    ] = False,
    log_dir: Annotated[
        Path | None,
        typer.Option("--log-dir", help="The prediction log folder (default .mlc/predictions)."),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels", help="With --from-log: labels that arrived later, joined on request_id."
        ),
    ] = None,
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
    textfile: Annotated[
        Path | None,
        typer.Option(
            "--textfile",
            help="Also write the gauges to this file (node-exporter textfile format).",
        ),
    ] = None,
    pushgateway: Annotated[
        str | None,
        typer.Option("--pushgateway", help="Also push the gauges to this Prometheus Pushgateway."),
    ] = None,
    push_job: Annotated[
        str | None,
        typer.Option("--push-job", help="Pushgateway job label (default mlc-monitor)."),
    ] = None,
    push_instance: Annotated[
        str | None,
        typer.Option("--push-instance", help="Pushgateway instance label (default: model name)."),
    ] = None,
    model_version: Annotated[
        str | None,
        typer.Option(
            "--model-version",
            help="Score this registered version, or the candidate model of this run id (default: "
            "with --from-log the version that served the window, else the champion, else the "
            "newest version whose gate passed; a model whose gate failed only when named here).",
        ),
    ] = None,
) -> None:
    """Check current data for drift and performance loss; decide whether to retrain.

    Exit codes: 0 no retraining needed; 10 retraining recommended; 2 bad input (spec errors,
    missing file or contract columns, no run, no version that passed its gate); with --retrain,
    those of `mlc run` (0, 3 a gate failed, 4 a step failed).
    """
    from mlc.compiler.api import monitor as monitor_

    spec, overrides = resolve_spec(spec, overrides)
    if from_log == (current is not None):
        print("mlc monitor: give --current FILE or --from-log, one of them", file=sys.stderr)
        raise typer.Exit(EXIT_SPEC)
    if labels is not None and not from_log:
        print("mlc monitor: --labels joins a prediction log; use --labels-column", file=sys.stderr)
        raise typer.Exit(EXIT_SPEC)
    log = None
    if from_log:
        log = log_dir if log_dir is not None else find_project(spec).state_dir / "predictions"
    try:
        result = monitor_(
            spec,
            current,
            overrides,
            from_log=log,
            labels=labels,
            labels_column=labels_column,
            now=now,
            out_dir=out,
            model_version=model_version,
            textfile=textfile,
            pushgateway=pushgateway,
            push_job=push_job,
            push_instance=push_instance,
        )
    except MonitorError as exc:
        if exc.model is not None:
            print(exc.model.describe())
        print(f"mlc monitor: error: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_SPEC) from None
    print(result.model.describe())
    _table(result.report, result.decision)
    print(f"signal and decision in {result.folder}", file=sys.stderr)
    if not result.retrain:
        return
    if not retrain:
        raise typer.Exit(EXIT_RETRAIN)
    from mlc.compiler.cli.run import run_

    run_(spec, overrides)
