"""Run commands: `mlc run`, `mlc runs`, `mlc audit verify|show`, `mlc cache info|gc`,
`mlc lineage`.

Exit codes of `mlc run`: 0 success, 2 spec errors or bad usage (or a run that cannot start: an
unknown `--from`/`--only` step, another run holding the project), 3 a gate failed (register runs
only when the gate passed: nothing registered or promoted), 4 a step failed (its message names
the step and the cause; a budget reached counts as a step failure), 1 an internal error.

The other commands find their project with `mlc.compiler.cli._project`: the spec file or the
project folder as an optional positional argument, else the project around the working directory;
no project there is exit 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mlc.compiler.cli._app import app
from mlc.compiler.cli._common import (
    EXIT_SPEC,
    Format,
    SpecArg,
    VerboseOpt,
    emit_diagnostics,
    handle_errors,
)
from mlc.compiler.cli._project import find_project, resolve_spec

EXIT_GATE = 3
EXIT_STEP = 4

OverridesArg = Annotated[
    list[str] | None,
    typer.Argument(help="Overrides in Hydra's grammar: key=value, +key=value, ~key."),
]
ProjectArg = Annotated[
    Path | None,
    typer.Argument(
        help="Spec file or project folder (default: the first folder at or above the working "
        "folder holding mlc.yaml or .mlc/).",
        show_default=False,
    ),
]
ProjectOpt = Annotated[
    Path | None,
    typer.Option("--project", "-p", help="Spec file or project folder (holds .mlc/)."),
]


def _state_dir(project: Path | None) -> Path:
    return find_project(project).state_dir


def _print_verdicts(verdicts: dict[str, dict[str, Any]], stream: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream, highlight=False)
    for gate_id, verdict in sorted(verdicts.items()):
        state = "PASSED" if verdict.get("passed") else "FAILED"
        table = Table(title=f"gate '{gate_id}': {state}", title_justify="left")
        for col in ("check", "value", "rule", "result"):
            table.add_column(col)
        for check in verdict.get("checks", []):
            if not isinstance(check, dict):
                table.add_row(str(check), "", "", "")
                continue
            name = str(check.get("name") or check.get("metric") or check.get("kind") or "?")
            value = check.get("value", check.get("actual"))
            if check.get("threshold") is None and check.get("reason"):
                rule = str(check["reason"])
            else:
                rule = " ".join(
                    str(check[k]) for k in ("op", "threshold") if check.get(k) is not None
                ) or str(check.get("rule", ""))
            ok = check.get("passed")
            table.add_row(
                name,
                f"{value:.4g}" if isinstance(value, float) else str(value),
                rule,
                "pass" if ok else ("FAIL" if ok is False else "?"),
            )
        console.print(table)


@app.command(name="run")
@handle_errors
def run_(
    spec: SpecArg = None,
    overrides: OverridesArg = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Execute every step.")] = False,
    from_step: Annotated[
        str | None, typer.Option("--from", help="Re-execute this step and all after it.")
    ] = None,
    only: Annotated[
        str | None, typer.Option("--only", help="Execute only this step (inputs from cache).")
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri",
            help="MLflow tracking URI (default: sqlite store in the project's .mlc/).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Compile a spec and run its pipeline here: cached, resumable, gated, registered.

    Exit codes: 0 success; 2 spec errors, bad usage or a run that cannot start; 3 a gate
    failed (nothing registered or promoted); 4 a step failed (or a budget was reached); 1
    internal error.
    """
    from mlc.compiler import api

    spec, overrides = resolve_spec(spec, overrides)
    try:
        # the spec's warnings come before the run's progress lines
        done = api.run(
            spec,
            overrides,
            use_cache=not no_cache,
            from_step=from_step,
            only=only,
            tracking_uri=tracking_uri,
            quiet=quiet,
            on_checked=lambda checked: emit_diagnostics(checked.diagnostics, Format.text, verbose),
        )
    except api.UsageError as exc:
        print(f"mlc run: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_SPEC) from None
    outcome = done.outcome
    if outcome is None:
        raise typer.Exit(EXIT_SPEC)
    if outcome.verdicts and (not quiet or outcome.status == "gate_failed"):
        _print_verdicts(outcome.verdicts, sys.stderr)
    print(
        f"run {outcome.run_id}: {outcome.status} — {outcome.executed} executed, "
        f"{outcome.cache_hits} cached, {outcome.seconds:.2f}s; record {outcome.record_path}",
        file=sys.stderr,
    )
    if outcome.status == "failed":
        print(f"error: {outcome.error}", file=sys.stderr)
        raise typer.Exit(EXIT_STEP)
    if outcome.status == "gate_failed":
        print("error: a gate failed: nothing was promoted (see the verdict above)", file=sys.stderr)
        raise typer.Exit(EXIT_GATE)


@app.command()
@handle_errors
def runs(
    project: ProjectArg = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List past runs of a project, newest first."""
    from mlc.compiler import api

    state = _state_dir(project)
    records = api.runs(state)
    if as_json:
        print(json.dumps(records, indent=2, sort_keys=True, default=str))
        return
    if not records:
        print(f"no runs under {state}")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"runs in {state}")
    for col in ("run", "started", "status", "executed", "cached", "seconds", "spec"):
        # Run ids and times are what one copies from this table: never cut them.
        table.add_column(col, no_wrap=col in ("run", "started"))
    for rec in records:
        steps = rec.get("steps", [])
        table.add_row(
            rec["run_id"],
            rec.get("started", ""),
            rec.get("status", ""),
            str(sum(1 for s in steps if s["status"] in ("ran", "recomputed"))),
            str(sum(1 for s in steps if s["status"] == "cached")),
            f"{rec.get('budgets', {}).get('spent', {}).get('wall_seconds', 0):.2f}",
            str(rec.get("spec_hash", ""))[:12],
        )
    # Off a terminal (a pipe, a CI log) rich would squeeze the table into 80 columns.
    Console(width=None if sys.stdout.isatty() else 160).print(table)


audit_app = typer.Typer(help="The project's hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


EXIT_TAMPERED = 5
"""`mlc audit verify`: the log does not verify (a broken link, a head or MAC or file that
disagrees): distinct from 1 (an internal error) and 2 (nothing to check, or not all of it)."""


@audit_app.command("verify")
@handle_errors
def audit_verify(
    project: ProjectArg = None,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also re-hash the cache entries and registered models against the digests "
            "the log holds.",
        ),
    ] = False,
    tracking_uri: Annotated[
        list[str] | None,
        typer.Option(
            "--tracking-uri",
            help="A further tracking store holding the log's head (the project's own store "
            "and those the checkpoint lists are always read). Repeatable.",
        ),
    ] = None,
) -> None:
    """Check the audit chain byte for byte, its MACs when keyed, and its heads outside the log.

    The heads are the checkpoint .mlc/audit.head and the tag mlc.audit.head of each MLflow
    experiment a registration went to; every disagreement is reported, naming which one.

    Exit codes: 0 the chain and every head agree, 5 it does not verify (a broken link, a head
    or a MAC that disagrees, with --deep a file changed), 2 no project or no audit log there,
    or the log is keyed (governance.audit.hmac_key) and the key is not set here (the MACs
    cannot be checked: no pass).
    """
    from mlc.compiler import api

    found = find_project(project)
    verification = api.audit_verify(
        found.state_dir, found.spec, tracking_uris=tracking_uri or (), deep=deep
    )
    outcome = verification.outcome
    print(verification.describe(), file=sys.stdout if outcome.ok else sys.stderr)
    if outcome.failed:
        raise typer.Exit(EXIT_TAMPERED)
    if not outcome.ok:
        raise typer.Exit(EXIT_SPEC)


@audit_app.command("show")
@handle_errors
def audit_show(
    project: ProjectArg = None,
    last: Annotated[int, typer.Option(help="Show the last N records.")] = 20,
) -> None:
    """Print the last audit records (one line each); no audit log there is exit 2."""
    from mlc.compiler import api

    try:
        records = api.audit_records(_state_dir(project), last)
    except api.UsageError as exc:
        print(f"mlc audit show: error: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_SPEC) from None
    for rec in records:
        details = json.dumps(rec.get("details", {}), sort_keys=True, default=str)
        print(
            f"{rec.get('when')} {rec.get('who')} {rec.get('event')} "
            f"spec={str(rec.get('spec_hash') or '')[:12]} {details[:160]}"
        )


cache_app = typer.Typer(help="The local step cache under .mlc/cache/.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


@cache_app.command("info")
@handle_errors
def cache_info_(
    project: ProjectArg = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """How many entries the cache holds, their size, and what no entry vouches for."""
    from mlc.compiler import api

    report = api.cache_info(_state_dir(project))
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
        return
    print(
        f"{report.cache}: {report.entries} entries, {_mib(report.kept_bytes)}; "
        f"{len(report.removed_folders)} folders no entry vouches for, {_mib(report.freed_bytes)}"
    )


@cache_app.command("gc")
@handle_errors
def cache_gc(
    project: ProjectArg = None,
    keep_runs: Annotated[
        int,
        typer.Option(
            "--keep-runs",
            min=0,
            help="Keep the entries used by the newest N runs (0: empty the cache).",
        ),
    ] = 3,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would go; remove nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Drop cache entries no recent run used (registered models are never touched)."""
    from mlc.compiler import api

    try:
        report = api.cache_gc(_state_dir(project), keep_runs=keep_runs, dry_run=dry_run)
    except api.UsageError as exc:
        print(f"mlc cache gc: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_SPEC) from None
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
        return
    verb = "would drop" if dry_run else "dropped"
    print(
        f"{report.cache}: {verb} {report.dropped_entries} of {report.entries} entries and "
        f"{len(report.removed_folders)} folders ({_mib(report.freed_bytes)}); kept "
        f"{report.kept_entries} entries ({_mib(report.kept_bytes)}) used by the newest "
        f"{len(report.kept_runs)} runs"
    )


@app.command()
@handle_errors
def lineage(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="[SPEC|FOLDER] [MODEL]: the project (spec file or folder; default: the project "
            "at or above the working folder) and the model name (default: all). One argument "
            "is the project when such a file or folder exists, else the model.",
            show_default=False,
        ),
    ] = None,
    project: ProjectOpt = None,
    version: Annotated[str | None, typer.Option(help="Only this version.")] = None,
    data_hash: Annotated[str | None, typer.Option(help="Data hash (prefix).")] = None,
    spec_hash: Annotated[str | None, typer.Option(help="Spec hash (prefix).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Which data, spec and code produced which model version."""
    from mlc.compiler import api

    args = list(names or ())
    if len(args) > 2 or (project is not None and len(args) > 1):
        print("mlc lineage: give at most [SPEC|FOLDER] [MODEL]", file=sys.stderr)
        raise typer.Exit(EXIT_SPEC)
    model: str | None = None
    if len(args) == 2:
        project, model = Path(args[0]), args[1]
    elif args and project is None and Path(args[0]).exists():
        project = Path(args[0])
    elif args:
        model = args[0]
    records = api.lineage(
        _state_dir(project), model, version=version, data_hash=data_hash, spec_hash=spec_hash
    )
    if as_json:
        print(json.dumps(records, indent=2, sort_keys=True))
        return
    if not records:
        print("no lineage records" + (f" for model '{model}'" if model else ""))
        return
    for rec in records:
        print(
            f"{rec['model_name']} v{rec['version']}  data {str(rec.get('data_hash'))[:12]}  "
            f"spec {str(rec.get('spec_hash'))[:12]}  code {rec.get('code_version')}  "
            f"run {rec.get('run_id')}"
        )
        reason = rec.get("reason")
        if isinstance(reason, dict):
            print(f"  trained because: {reason.get('summary') or reason.get('decision')}")
