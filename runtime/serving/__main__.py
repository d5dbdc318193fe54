"""`python -m mlc.runtime.serving --plan PLAN.json --host 127.0.0.1 --port N`.

Loads and warms up every track before listening (a failure exits 2 with the track, its
alias or version and the cause on stderr), then serves until SIGTERM or SIGINT: listening
stops, in-flight requests finish, the shadow queue and the prediction log are flushed, exit 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

from mlc.runtime.context import StepError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def serve(
    plan_doc: Any,
    host: str,
    port: int,
    log_level: str = "warning",
    tls_cert: str | None = None,
    tls_key: str | None = None,
    workers: int = 1,
    fd: int | None = None,
) -> int:
    """Check `plan_doc`, load and warm up every track, then serve until SIGTERM or SIGINT.

    With `workers` > 1, that many processes share the socket (`workers.supervise`); `fd` is a
    worker's inherited socket.

    Returns the exit code: 0 after a graceful shutdown, 2 when a track cannot load or the port
    cannot be listened on (the cause on stderr).
    """
    from mlc.runtime.serving import plan as plans
    from mlc.runtime.serving.models import load_tracks

    try:
        plan = plans.check(plan_doc)
        if workers > 1:
            from mlc.runtime.serving.workers import supervise

            return supervise(dict(plan_doc), host, port, workers, log_level, tls_cert, tls_key)
        tracks = load_tracks(plan)
    except StepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    import uvicorn

    from mlc.runtime.serving.app import Service, build_app

    service = Service(plan, tracks)
    config = uvicorn.Config(
        build_app(service),
        host=host,
        port=port,
        fd=fd,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=int(plan["limits"]["timeout_s"]) + 5,
        lifespan="on",
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal it shut down on; a handler of ours turns that into exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    try:
        server.run()
    except OSError as exc:
        service.close()
        print(f"error: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 2
    return 0 if server.started else 2


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m mlc.runtime.serving", description=__doc__)
    parser.add_argument("--plan", help="the serving plan (JSON)")
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the port")
    parser.add_argument(
        "--worker-fd", type=int, default=None, help=argparse.SUPPRESS
    )  # a worker of `--workers`: the socket it inherits, the plan in $MLC_SERVE_PLAN
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--tls-cert", default=None, help="serve HTTPS with this certificate")
    parser.add_argument("--tls-key", default=None, help="the certificate's private key")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(name)s: %(message)s")

    import json
    import os

    from mlc.runtime.serving import plan as plans
    from mlc.runtime.serving.workers import PLAN_ENV

    try:
        if args.worker_fd is not None:
            raw = json.loads(os.environ.pop(PLAN_ENV, "null"))
        elif args.plan:
            raw = plans.read(args.plan)
        else:
            parser.error("--plan is required")
    except (StepError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve(
        raw,
        args.host,
        args.port,
        args.log_level,
        args.tls_cert,
        args.tls_key,
        workers=args.workers,
        fd=args.worker_fd,
    )


if __name__ == "__main__":
    raise SystemExit(main())
