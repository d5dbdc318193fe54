"""The `mlc` command line: thin commands over the library (typer).

Each command module registers its commands on the application in `mlc.compiler.cli._app`; add
a command to `COMMANDS` with the module that defines it. `main` imports only the module of the
command being run (typer builds every registered command's parameters on each call, and the
help listing and did-you-mean need them all only when no known command is named); `app` here
is the application with every command loaded. Heavy libraries are imported inside the commands
that need them, never here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

COMMANDS = {
    "init": "mlc.compiler.cli.core",
    "validate": "mlc.compiler.cli.core",
    "compile": "mlc.compiler.cli.core",
    "graph": "mlc.compiler.cli.core",
    "schema": "mlc.compiler.cli.core",
    "targets": "mlc.compiler.cli.core",
    "run": "mlc.compiler.cli.run",
    "loop": "mlc.compiler.cli.loop",
    "runs": "mlc.compiler.cli.run",
    "audit": "mlc.compiler.cli.run",
    "cache": "mlc.compiler.cli.run",
    "lineage": "mlc.compiler.cli.run",
    "diff": "mlc.compiler.cli.review",
    "plan": "mlc.compiler.cli.review",
    "cost": "mlc.compiler.cli.review",
    "monitor": "mlc.compiler.cli.monitor",
    "batch": "mlc.compiler.cli.batch",
    "serve": "mlc.compiler.cli.serve",
    "rollout": "mlc.compiler.cli.rollout",
}
"""Command name -> the module that registers it (a test checks this against the modules)."""

COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


def load_commands(modules: tuple[str, ...] = COMMAND_MODULES) -> typer.Typer:
    """The application with the commands of `modules` registered."""
    from mlc.compiler.cli._app import app

    for module in modules:
        importlib.import_module(module)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        return load_commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


HEAVY_MODULES = ("sklearn", "mlflow", "torch", "pyspark", "optuna", "lightning")
"""When one of these is loaded (`mlc run`, `mlc monitor`), the process ends without the
interpreter's teardown: freeing their objects took ~2.3 s after a credit run here, longer than
the run's own bookkeeping. Exit handlers still run and every file of ours is closed by then;
`MLC_FULL_EXIT=1` restores the normal exit (for code that relies on finalisers, or coverage of a
subprocess)."""


def main() -> None:
    import errno
    import os
    import sys

    # pydantic looks for plugins (observability hooks) by scanning every installed
    # distribution's entry points the first time a model is built: ~25 ms of each command,
    # for hooks no mlc command uses. An explicit setting of the variable is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    argv = sys.argv[1:]
    module = COMMANDS.get(argv[0]) if argv else None
    app = load_commands((module,) if module else COMMAND_MODULES)
    try:
        app()
    except BrokenPipeError:
        # The reader went away (`mlc targets --json | head`): not an error of ours. Point stdout
        # at devnull so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except SystemExit as exc:
        code = exc.code
        cause = exc.__context__
        if code == 1 and isinstance(cause, OSError) and cause.errno == errno.EPIPE:
            # click and rich catch the EPIPE themselves and exit 1; as above, a reader that
            # went away is not an error of ours.
            code = 0
        full_exit = os.environ.get("MLC_FULL_EXIT", "") not in ("", "0")
        if not full_exit and any(name in sys.modules for name in HEAVY_MODULES):
            _exit_now(code)
        raise SystemExit(code) from None


def _exit_now(code: object) -> None:
    """`sys.exit(code)` minus the interpreter's teardown (see `HEAVY_MODULES`)."""
    import atexit
    import contextlib
    import os
    import sys

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


__all__ = ["COMMANDS", "app", "load_commands", "main"]
