"""The `mlc` command line: thin commands over the library (typer).

Each command module registers its commands on `app`; add a module to `COMMAND_MODULES` to add
commands. Heavy libraries are imported inside the commands that need them, never here.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="mlc",
    help="mlc: compile one YAML spec of an ML system into pipelines, infrastructure and configs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        from mlc.compiler.ir import IR_VERSION

        print(f"mlc {version('mlc')} (IR {IR_VERSION}, spec mlc/v1)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False,
        "--version",
        help="Show the version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    """mlc: compile one YAML spec of an ML system into pipelines, infrastructure and configs."""


COMMAND_MODULES = (
    "mlc.compiler.cli.core",
    "mlc.compiler.cli.run",
    "mlc.compiler.cli.review",
    "mlc.compiler.cli.monitor",
)

for _module in COMMAND_MODULES:
    importlib.import_module(_module)


HEAVY_MODULES = ("sklearn", "mlflow", "torch", "pyspark", "optuna", "lightning")
"""When one of these is loaded (`mlc run`, `mlc monitor`), the process ends without the
interpreter's teardown: freeing their objects took ~2.3 s after a credit run here, longer than
the run's own bookkeeping. Exit handlers still run and every file of ours is closed by then."""


def main() -> None:
    import os
    import sys

    try:
        app()
    except BrokenPipeError:
        # The reader went away (`mlc targets --json | head`): not an error of ours. Point stdout
        # at devnull so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except SystemExit as exc:
        if any(name in sys.modules for name in HEAVY_MODULES):
            _exit_now(exc.code)
        raise


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


__all__ = ["app", "main"]
