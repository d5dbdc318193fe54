"""`mlc serve`: serve the spec's registered model over HTTP on this machine.

Loads the versions the spec's `deployment.strategy` needs from the registry, warms each up, and
only then listens: the Open Inference Protocol v2 (`/v2/...`), KServe v1
(`/v1/models/NAME:predict`) and MLflow's `/invocations`, with requests checked against the data
contract (4xx bodies naming the input, row and rule), Prometheus metrics on `/metrics` (the
series the monitoring target's rules query), traffic split per the strategy, and a sampled
prediction log under `.mlc/predictions/`. Binds to 127.0.0.1 unless `--host` says otherwise.
SIGTERM drains in-flight requests and flushes the log. `deployment.serving.admin_token` (a
secret reference), or `MLC_SERVE_ADMIN_TOKEN` in the environment, enables with that bearer
token `POST /admin/weights` and the rollout endpoints
`/admin/rollout[/advance|/promote|/rollback]` (see `mlc rollout`); with the strategy's
`bake_time` set the server judges the canary on the rollback conditions from its own metrics
after each bake and advances, promotes (moves `champion`) or rolls back by itself; too few
requests is inconclusive and extends the bake. Every decision goes to the audit chain. The
server polls the registry (`--reload-interval`): a new `challenger` is loaded without a restart
and its canary starts; a moved `champion` is served.

Exit codes: 0 after a clean shutdown; 2 spec errors, no model or alias to serve, a version that
cannot load, a port in use; 1 internal error.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from mlc.compiler.cli._app import app
from mlc.compiler.cli._common import EXIT_SPEC, SpecArg, handle_errors
from mlc.compiler.cli._project import resolve_spec
from mlc.compiler.cli.run import OverridesArg


@app.command()
@handle_errors
def serve(
    spec: SpecArg = None,
    overrides: OverridesArg = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port.")] = 8080,
    tracking_uri: Annotated[
        str | None,
        typer.Option("--tracking-uri", help="MLflow tracking URI (default: the project's)."),
    ] = None,
    log_sample: Annotated[
        float | None,
        typer.Option(
            "--log-sample",
            min=0.0,
            max=1.0,
            help="Share of requests logged (0: off; default deployment.serving.log_sample).",
        ),
    ] = None,
    reload_interval: Annotated[
        float | None,
        typer.Option(
            "--reload-interval",
            min=0.0,
            help="Seconds between polls of the registry's aliases: a new challenger starts a "
            "canary, a moved champion is served (0: off; default "
            "deployment.serving.reload_interval).",
        ),
    ] = None,
    alias: Annotated[
        str | None,
        typer.Option("--alias", help="Serve this registered alias alone (one version per pod)."),
    ] = None,
    log_dir: Annotated[
        str | None,
        typer.Option("--log-dir", help="Folder of the prediction log (default .mlc/predictions)."),
    ] = None,
    tls_cert: Annotated[
        str | None, typer.Option("--tls-cert", help="Serve HTTPS with this certificate.")
    ] = None,
    tls_key: Annotated[
        str | None, typer.Option("--tls-key", help="The certificate's private key.")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Processes answering on the port (one set of metrics; canary and blue-green "
            "serve with one).",
        ),
    ] = 1,
    no_onnx: Annotated[
        bool, typer.Option("--no-onnx", help="Serve the registered model, not its ONNX export.")
    ] = False,
    no_row_path: Annotated[
        bool,
        typer.Option(
            "--no-row-path",
            help="Score one-row requests through the batch path too (the compiled one-row "
            "path is on by default and answers like it to 1e-9).",
        ),
    ] = False,
    show_plan: Annotated[
        bool, typer.Option("--show-plan", help="Print the plan (secrets masked) and exit.")
    ] = False,
) -> None:
    """Serve the registered model: V2, KServe v1 and MLflow protocols, guards, metrics, log.

    Exit codes: 0 after a clean shutdown; 2 spec errors, nothing to serve, a version that
    cannot load or a port in use; 1 internal error.
    """
    from mlc.compiler import api

    spec, overrides = resolve_spec(spec, overrides)
    try:
        built = api.serve_plan(
            spec,
            overrides,
            tracking_uri=tracking_uri,
            log_sample=log_sample,
            log_dir=log_dir,
            alias=alias,
            onnx=not no_onnx,
            reload_interval=reload_interval,
            row_path=not no_row_path,
        )
    except api.UsageError as exc:
        print(f"mlc serve: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_SPEC) from None
    plan = built.plan
    if show_plan:
        shown = {**plan, "secrets": {k: "***" for k in plan["secrets"]}}
        if "admin_token" in shown:
            shown["admin_token"] = "***"
        print(json.dumps(shown, indent=2, sort_keys=True))
        return
    served = ", ".join(
        f"{t['name']} v{t['version']} ({t['alias']}, {t['weight']:g}%"
        + (", onnx" if t["onnx"] else "")
        + ")"
        for t in plan["tracks"]
    )
    print(f"mlc serve: {plan['model_name']}: {served} on http://{host}:{port}", file=sys.stderr)
    from mlc.runtime.serving.__main__ import serve as run_server

    if (tls_cert is None) != (tls_key is None):
        print("mlc serve: give --tls-cert and --tls-key together", file=sys.stderr)
        raise typer.Exit(EXIT_SPEC)
    code = run_server(plan, host, port, tls_cert=tls_cert, tls_key=tls_key, workers=workers)
    if code:
        raise typer.Exit(EXIT_SPEC)
