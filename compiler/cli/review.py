"""Review commands: `mlc diff`, `mlc plan`, `mlc cost`.

`mlc diff` exit codes: 0 no high-risk change and no policy violated; 1 a high-risk change, or a
policy (or other pass) error in the head spec; 2 bad input (unknown git ref, unreadable side) or
a head spec that does not validate. `mlc plan`: 0 ok, 1 a policy fails, 2 spec errors.

Like every spec command, these take overrides as positional `key=value` arguments after the
spec(s) (`--set` still works) and a project folder in place of its spec file.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from mlc.compiler.cli._app import app
from mlc.compiler.cli._common import EXIT_SPEC, OverridesArg, SpecArg, VerboseOpt, handle_errors
from mlc.compiler.cli._project import looks_like_override, resolve_spec


class ReportFormat(str, Enum):
    text = "text"
    markdown = "markdown"
    json = "json"


TargetOpt = Annotated[list[str], typer.Option("--target", "-t", help="Target(s) to compare.")]
PolicyOpt = Annotated[list[Path], typer.Option("--policy", help="Organisation policy file(s).")]
OverrideOpt = Annotated[
    list[str], typer.Option("--set", help="Override key=value (as a positional override does).")
]


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        from mlc.compiler.output import write_file

        write_file(out, text)


@app.command()
@handle_errors
def diff(
    sides: Annotated[
        list[str],
        typer.Argument(
            help="BASE HEAD (each a spec file, project folder or git-ref:REF:PATH), or HEAD alone "
            "with --base; then overrides (key=value, +key=value, ~key) applied to both sides."
        ),
    ],
    base: Annotated[
        str | None,
        typer.Option("--base", help="Git ref for the base side: HEAD's spec as it is at this ref."),
    ] = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Output format.")] = (
        ReportFormat.text
    ),
    target: TargetOpt = [],  # noqa: B006
    policy: PolicyOpt = [],  # noqa: B006
    overrides: OverrideOpt = [],  # noqa: B006
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here, not stdout.")] = None,
) -> None:
    """Semantic diff of two specs: changes by facet and risk, output, cost and policy deltas."""
    from mlc.compiler import api
    from mlc.compiler.diff import render_json, render_markdown, render_text

    specs = [side for side in sides if not looks_like_override(side)]
    extra = [side for side in sides if looks_like_override(side)]
    if (base is None and len(specs) != 2) or (base is not None and len(specs) != 1):
        print("mlc diff: give BASE HEAD, or --base REF HEAD", file=sys.stderr)
        raise typer.Exit(EXIT_SPEC)
    specs = [
        str(resolve_spec(side)[0])
        if not side.startswith("git-ref:") and Path(side).is_dir()
        else side
        for side in specs
    ]
    report = api.diff(
        specs[0],
        specs[-1],
        base_ref=base,
        targets=target,
        policy_files=policy,
        overrides=[*extra, *overrides],
    )
    render = {
        ReportFormat.text: render_text,
        ReportFormat.markdown: render_markdown,
        ReportFormat.json: render_json,
    }[fmt]
    _write(render(report), out)
    raise typer.Exit(report.exit_code)


@app.command()
@handle_errors
def plan(
    spec: SpecArg = None,
    positional: OverridesArg = None,
    target: Annotated[
        list[str],
        typer.Option(
            "--target", "-t", help="Target(s) to plan (default: those of the spec's 'targets:')."
        ),
    ] = [],  # noqa: B006
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Compiled output folder.")] = Path(
        "out"
    ),
    fmt: Annotated[ReportFormat, typer.Option("--format", help="text or json.")] = (
        ReportFormat.text
    ),
    policy: PolicyOpt = [],  # noqa: B006
    overrides: OverrideOpt = [],  # noqa: B006
    verbose: VerboseOpt = False,
) -> None:
    """What compiling would change against OUT/<target>/mlc-manifest.json, runs, cost, policies."""
    import json

    from mlc.compiler import api

    spec, positional = resolve_spec(spec, positional)
    try:
        report = api.plan(spec, target, out_dir, [*positional, *overrides], policy)
    except api.UsageError as exc:
        print(f"mlc plan: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_SPEC) from None
    if fmt is ReportFormat.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        sys.stdout.write(report.render_text(verbose))
    raise typer.Exit(report.exit_code)


@app.command()
@handle_errors
def cost(
    spec: SpecArg = None,
    overrides: OverridesArg = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="text or json.")] = (
        ReportFormat.text
    ),
    pricing: Annotated[Path | None, typer.Option("--pricing", help="Pricing table JSON.")] = None,
    spot: Annotated[bool, typer.Option(help="Price training and tuning at spot rates.")] = False,
    target: Annotated[
        list[str],
        typer.Option(
            "--target",
            "-t",
            help="Price what these targets emit (default: the spec's 'targets:', else all).",
        ),
    ] = [],  # noqa: B006
) -> None:
    """Estimated cost: training, tuning, serving, monitoring and storage, per run and month."""
    import json

    from mlc.compiler import api
    from mlc.compiler.cli._common import Format, emit_diagnostics

    spec, overrides = resolve_spec(spec, overrides)
    report = api.cost(spec, overrides, target, pricing, spot)
    if not report.check.ok:
        emit_diagnostics(report.check.diagnostics, Format.text)
        raise typer.Exit(EXIT_SPEC)
    if fmt is ReportFormat.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        sys.stdout.write(report.estimate.render_text(report.check.ir.name))
        emit_diagnostics(report.diagnostics, Format.text)
    if any(d.severity.value == "error" for d in report.diagnostics):
        raise typer.Exit(EXIT_SPEC)
