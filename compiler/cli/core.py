"""Core commands: validate, compile, graph, schema, targets, init."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from mlc.compiler.cli._app import app
from mlc.compiler.cli._common import (
    EXIT_SPEC,
    Format,
    OverridesArg,
    SpecArg,
    VerboseOpt,
    emit_diagnostics,
    handle_errors,
)
from mlc.compiler.cli._project import resolve_spec

FormatOpt = Annotated[Format, typer.Option("--format", help="Diagnostics format.")]


@app.command()
@handle_errors
def validate(
    spec: SpecArg = None, overrides: OverridesArg = None, fmt: FormatOpt = Format.text
) -> None:
    """Check a spec: syntax, schema, cross-field rules and IR passes."""
    from mlc.compiler.api import check

    spec, overrides = resolve_spec(spec, overrides)
    result = check(spec, overrides)
    emit_diagnostics(result.diagnostics, fmt)
    if not result.ok:
        raise typer.Exit(EXIT_SPEC)
    if fmt is Format.text:
        print(f"{spec}: ok ({len(result.ir)} steps, spec {result.ir.metadata['spec_hash'][:12]})")


@app.command(name="compile")
@handle_errors
def compile_(
    spec: SpecArg = None,
    overrides: OverridesArg = None,
    target: Annotated[list[str], typer.Option("--target", "-t", help="Target(s) to emit.")] = [],  # noqa: B006
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("out"),
    fmt: FormatOpt = Format.text,
    verbose: VerboseOpt = False,
) -> None:
    """Compile a spec into each target's files under OUT/<target>/ (with a manifest)."""
    from mlc.compiler.api import compile_spec

    if not target:
        print("mlc compile: name at least one --target (see 'mlc targets')", file=sys.stderr)
        raise typer.Exit(EXIT_SPEC)
    spec, overrides = resolve_spec(spec, overrides)
    result = compile_spec(spec, target, out, overrides, audit=True)
    if result.audit_problem:
        print(
            f"warning: could not append to the audit log: {result.audit_problem}", file=sys.stderr
        )
    emit_diagnostics(result.check.diagnostics, fmt, verbose)
    if fmt is Format.text:
        for name, paths in result.written.items():
            print(f"{name}: wrote {len(paths)} files to {out / name}")


class GraphFormat(str, Enum):
    mermaid = "mermaid"
    dot = "dot"
    svg = "svg"
    png = "png"


@app.command()
@handle_errors
def graph(
    spec: SpecArg = None,
    overrides: OverridesArg = None,
    as_: Annotated[GraphFormat, typer.Option("--as", help="Picture format.")] = GraphFormat.mermaid,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here, not stdout.")] = None,
) -> None:
    """Draw the IR graph as Mermaid or DOT (SVG/PNG through Graphviz)."""
    from mlc.compiler.api import check
    from mlc.compiler.output import write_file
    from mlc.compiler.render_graph import dot, mermaid, render_image

    spec, overrides = resolve_spec(spec, overrides)
    result = check(spec, overrides)
    if not result.ok:
        emit_diagnostics(result.diagnostics, Format.text)
        raise typer.Exit(EXIT_SPEC)
    content: str | bytes
    if as_ is GraphFormat.mermaid:
        content = mermaid(result.ir)
    elif as_ is GraphFormat.dot:
        content = dot(result.ir)
    else:
        content = render_image(result.ir, as_.value)
    if out is not None:
        write_file(out, content)
    elif isinstance(content, bytes):
        print("mlc graph: binary formats need --out FILE", file=sys.stderr)
        raise typer.Exit(EXIT_SPEC)
    else:
        sys.stdout.write(content)


@app.command()
@handle_errors
def schema(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here, not stdout.")] = None,
) -> None:
    """Print the JSON Schema of spec files (for editors and tools)."""
    from mlc.compiler.output import write_file
    from mlc.specs.schema import json_schema_text

    text = json_schema_text()
    if out is None:
        sys.stdout.write(text)
    else:
        write_file(out, text)


@app.command()
@handle_errors
def targets(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List installed targets and their capabilities."""
    from mlc.compiler.registry import default_registry

    registry = default_registry()
    rows: list[dict[str, Any]] = []
    for target in registry.all():
        caps = target.capabilities.describe()
        rows.append({"name": target.name, "description": target.description, **caps})
    if as_json:
        print(json.dumps(rows, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="mlc targets")
    table.add_column("target")
    table.add_column("realises")
    table.add_column("supports")
    table.add_column("description")
    for row in rows:
        table.add_row(
            str(row["name"]),
            ", ".join(row["realises"]) or "-",
            ", ".join(row["supports"]) or "-",
            str(row["description"]),
        )
    Console().print(table)


@app.command()
@handle_errors
def init(
    directory: Annotated[Path, typer.Argument(help="Folder for the new spec project.")] = Path("."),
    name: Annotated[str | None, typer.Option(help="System name (default: folder name).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
    template: Annotated[
        str,
        typer.Option(
            help="Training starter: sklearn, xgboost, lightgbm, lightning, lightning-module, keras."
        ),
    ] = "sklearn",
) -> None:
    """Scaffold a spec project: mlc.yaml, overlays, schema, sample data."""
    from mlc.compiler.scaffold import scaffold

    written = scaffold(directory, name=name, force=force, template=template)
    for path in written:
        print(f"created {path}")
    print(f"next: mlc validate {directory / 'mlc.yaml'}")
