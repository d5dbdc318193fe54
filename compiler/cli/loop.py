"""`mlc loop`: one pass of the closed loop — monitor the served traffic, decide, retrain on the
new labelled rows, gate against the champion, and hand the challenger to the live canary.

Idempotent and safe under cron: one pass at a time per project (a second one exits at once),
a pass killed at any point is recorded as interrupted by the next, and cooldown, run and USD
caps (`feedback.retrain`) hold retrains back. See `mlc.compiler.api._loop`.

Exit codes: 0 the pass ended as planned (no retrain, waiting, registered, or another pass
running); 2 bad input (spec errors, no prediction log); 3 the retrained model failed its gates;
4 the retrain failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from mlc.compiler.cli._app import app
from mlc.compiler.cli._common import SpecArg, handle_errors
from mlc.compiler.cli._project import resolve_spec
from mlc.compiler.cli.run import OverridesArg


@app.command()
@handle_errors
def loop(
    spec: SpecArg = None,
    overrides: OverridesArg = None,
    log_dir: Annotated[
        Path | None,
        typer.Option("--log-dir", help="The prediction log folder (default .mlc/predictions)."),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option("--labels", help="Arrived labels (default feedback.retrain.labels)."),
    ] = None,
    now: Annotated[
        str | None, typer.Option("--now", help="Evaluation time, ISO-8601 (default: the clock).")
    ] = None,
    serve_url: Annotated[
        str | None,
        typer.Option(
            "--serve-url", help="A running mlc serve: wait for its rollout of the new version."
        ),
    ] = None,
    wait: Annotated[
        float,
        typer.Option("--wait", min=0.0, help="Seconds to wait for that rollout's outcome."),
    ] = 600.0,
    pushgateway: Annotated[
        str | None,
        typer.Option(
            "--pushgateway",
            envvar="MLC_PUSHGATEWAY_URL",
            help="Push the pass's drift and performance gauges to this Prometheus Pushgateway.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the pass as JSON.")] = False,
) -> None:
    """Monitor, decide, retrain on new data, gate, canary: one pass of the closed loop.

    Exit codes: 0 the pass ended as planned (also when another pass holds the project); 2 bad
    input; 3 the retrained model failed its gates; 4 the retrain failed.
    """
    from mlc.compiler import api

    spec, overrides = resolve_spec(spec, overrides)
    try:
        result = api.loop(
            spec,
            overrides,
            log_dir=log_dir,
            labels=labels,
            now=now,
            serve_url=serve_url,
            wait_s=wait if serve_url else 0.0,
            quiet=as_json,
            pushgateway=pushgateway or None,
        )
    except api.LoopBusy as exc:
        print(f"mlc loop: {exc}; nothing done", file=sys.stderr)
        return
    if as_json:
        print(json.dumps(result.to_json(), indent=2, sort_keys=True, default=str))
    else:
        print(f"mlc loop: {result.outcome}: {result.summary}")
        if result.rollout is not None:
            print(f"rollout: {result.rollout.get('outcome')}")
    if result.exit_code:
        raise typer.Exit(result.exit_code)
