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


__all__ = ["app", "main"]
