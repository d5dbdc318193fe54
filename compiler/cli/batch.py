"""`mlc batch`: score a file with the registered model, in bounded memory.

The spec's `batch_predict` step, run on the input and output named here: each chunk of the input
is checked against the data contract (`stop`, `quarantine` or `warn`, as the spec says), scored
with the registered model at `--alias` (default: the spec's `deployment.batch.alias`, else
`champion`) or `--model-version`, and written to OUTPUT/predictions.parquet with the row id,
the prediction, each class's probability and the model's name and version; `summary.json` and
the batch's `drift.json` against the train part of the last run come beside it. Nothing is
half-written: a run that stops leaves no predictions file.

Exit codes: 0 scored; 2 spec errors, a missing input, model, alias or version, or an input that
broke the contract under `on_failure: stop`; 1 internal error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from mlc.compiler.cli._app import app
from mlc.compiler.cli._common import EXIT_SPEC, SpecArg, handle_errors
from mlc.compiler.cli._project import resolve_spec
from mlc.compiler.cli.run import OverridesArg


@app.command()
@handle_errors
def batch(
    spec: SpecArg = None,
    overrides: OverridesArg = None,
    input_path: Annotated[
        Path, typer.Option("--input", "-i", help="CSV or Parquet file, or a folder of Parquet.")
    ] = ...,  # type: ignore[assignment]
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder the predictions are written to.")
    ] = ...,  # type: ignore[assignment]
    alias: Annotated[
        str | None, typer.Option("--alias", help="Registered-model alias to score with.")
    ] = None,
    model_version: Annotated[
        str | None, typer.Option("--model-version", help="Registered version to score with.")
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option("--tracking-uri", help="MLflow tracking URI (default: the project's)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Score a file with the registered model: predictions, summary and drift in OUTPUT.

    Exit codes: 0 scored; 2 spec errors, a missing input or model, or a contract stop; 1
    internal error.
    """
    from mlc.compiler import api

    if alias is not None and model_version is not None:
        print("mlc batch: give --alias or --model-version, not both", file=sys.stderr)
        raise typer.Exit(EXIT_SPEC)
    spec, overrides = resolve_spec(spec, overrides)
    try:
        done = api.batch(
            spec,
            input_path,
            output,
            overrides,
            alias=alias,
            model_version=model_version,
            tracking_uri=tracking_uri,
        )
    except api.BatchError as exc:
        print(f"mlc batch: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_SPEC) from None
    summary = done.summary
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True, default=str))
        return
    print(
        f"scored {summary['rows_scored']} of {summary['rows_in']} rows with "
        f"{summary['model']} v{summary['version']} ({summary['chosen_by']}); "
        f"{summary['quarantined']} quarantined; {summary['rows_per_second']:.0f} rows/s; "
        f"predictions in {done.output / 'predictions.parquet'}",
        file=sys.stderr,
    )
    drifted = summary.get("drifted") or []
    if drifted:
        print(f"drift against the training data: {', '.join(map(str, drifted))}", file=sys.stderr)
