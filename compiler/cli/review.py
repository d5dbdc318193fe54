"""Review commands: `mlc diff`, `mlc plan`, `mlc cost`.

`mlc diff` exit codes: 0 no high-risk change and no policy violated; 1 a high-risk change, or a
policy (or other pass) error in the head spec; 2 bad input (unknown git ref, unreadable side) or
a head spec that does not validate. `mlc plan`: 0 ok, 1 a policy fails, 2 spec errors.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from mlc.compiler.cli._app import app
from mlc.compiler.cli._common import EXIT_SPEC, handle_errors


class ReportFormat(str, Enum):
    text = "text"
    markdown = "markdown"
    json = "json"


TargetOpt = Annotated[list[str], typer.Option("--target", "-t", help="Target(s) to compare.")]
PolicyOpt = Annotated[list[Path], typer.Option("--policy", help="Organisation policy file(s).")]
OverrideOpt = Annotated[list[str], typer.Option("--set", help="Override key=value (both sides).")]


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
            help="BASE HEAD (each a spec file or git-ref:REF:PATH), or HEAD alone with --base."
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
    from mlc.compiler.diff import diff_specs, render_json, render_markdown, render_text

    if (base is None and len(sides) != 2) or (base is not None and len(sides) != 1):
        print("mlc diff: give BASE HEAD, or --base REF HEAD", file=sys.stderr)
        raise typer.Exit(EXIT_SPEC)
    head = sides[-1]
    report = diff_specs(
        sides[0], head, base_ref=base, targets=target, policy_files=policy, overrides=overrides
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
    spec: Annotated[Path, typer.Argument(help="Spec file (mlc.yaml).")],
    target: TargetOpt = [],  # noqa: B006
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Compiled output folder.")] = Path(
        "out"
    ),
    fmt: Annotated[ReportFormat, typer.Option("--format", help="text or json.")] = (
        ReportFormat.text
    ),
    policy: PolicyOpt = [],  # noqa: B006
    overrides: OverrideOpt = [],  # noqa: B006
) -> None:
    """What compiling would change against OUT/<target>/mlc-manifest.json, runs, cost, policies."""
    import json

    from mlc.compiler.plan import plan_spec

    if not target:
        print("mlc plan: name at least one --target (see 'mlc targets')", file=sys.stderr)
        raise typer.Exit(EXIT_SPEC)
    report = plan_spec(spec, target, out_dir, overrides, policy)
    if fmt is ReportFormat.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        sys.stdout.write(report.render_text())
    raise typer.Exit(report.exit_code)


@app.command()
@handle_errors
def cost(
    spec: Annotated[Path, typer.Argument(help="Spec file (mlc.yaml).")],
    overrides: Annotated[list[str] | None, typer.Argument(help="Overrides (key=value).")] = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="text or json.")] = (
        ReportFormat.text
    ),
    pricing: Annotated[Path | None, typer.Option("--pricing", help="Pricing table JSON.")] = None,
    spot: Annotated[bool, typer.Option(help="Price training and tuning at spot rates.")] = False,
) -> None:
    """Estimated cost: training, tuning, serving, monitoring and storage, per run and month."""
    import json

    from mlc.compiler.api import check
    from mlc.compiler.cli._common import Format, emit_diagnostics
    from mlc.compiler.cost import estimate_cost, load_pricing

    result = check(spec, overrides or ())
    if not result.ok:
        emit_diagnostics(result.diagnostics, Format.text)
        raise typer.Exit(EXIT_SPEC)
    est = estimate_cost(result.ir, load_pricing(pricing), spot=spot)
    from mlc.compiler.api import _locate

    problems = _locate(est.diagnostics, result.loaded)
    if fmt is ReportFormat.json:
        print(
            json.dumps(
                {**est.to_json(), "diagnostics": [d.to_json() for d in problems]},
                indent=2,
                sort_keys=True,
            )
        )
    else:
        print(f"{result.ir.name}: {est.cloud}/{est.region}, prices {est.pricing}")
        for item in est.items:
            print(
                f"  {item.name:<11} {item.per_run_usd:>10,.2f} /run {item.monthly_usd:>10,.2f}"
                f" /month  {item.instance or '-':<14} {item.detail}"
            )
        print(
            f"  {'total':<11} {est.per_run_usd:>10,.2f} /run {est.monthly_usd:>10,.2f} /month"
            f"  ({est.runs_per_month:.2f} pipeline runs/month)"
        )
        emit_diagnostics(problems, Format.text)
    if any(d.severity.value == "error" for d in problems):
        raise typer.Exit(EXIT_SPEC)
