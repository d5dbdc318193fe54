"""The bare `mlc` application: the command modules register their commands on it."""

from __future__ import annotations

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
        from mlc.compiler import __version__
        from mlc.compiler.ir import IR_VERSION

        print(f"mlc {__version__} (IR {IR_VERSION}, spec mlc/v1)")
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
