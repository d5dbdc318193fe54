"""`check` and `compile_spec`: load and validate a spec, build its IR, run the passes, emit
targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from mlc.compiler.diagnostics import (
    Diagnostic,
    DiagnosticError,
    Severity,
    has_errors,
    sort_diagnostics,
)
from mlc.compiler.ir import IRGraph, build_ir
from mlc.compiler.load import LoadedSpec, load_spec
from mlc.compiler.output import write_tree
from mlc.compiler.passes import PassContext, run_passes
from mlc.compiler.registry import TargetRegistry, default_registry
from mlc.compiler.validate import pydantic_diagnostics, validate_spec
from mlc.specs import Spec

if TYPE_CHECKING:
    from mlc.targets.base import Target, TargetOptions


class UsageError(Exception):
    """What was asked cannot be done as asked (a run that cannot start, nothing to monitor, no
    audit log): the message says why and what would do. The CLI prints it; exit 2."""


@dataclass
class CheckResult:
    """A spec taken as far as it goes: loaded, validated, built into IR, passes run."""

    loaded: LoadedSpec
    spec: Spec
    ir: IRGraph
    targets: list[Target]
    options: dict[str, TargetOptions]
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)


def _target_options(
    spec: Spec, loaded: LoadedSpec, registry: TargetRegistry, selected: Sequence[str]
) -> tuple[dict[str, Target], dict[str, TargetOptions], list[Diagnostic]]:
    diags: list[Diagnostic] = []
    targets: dict[str, Target] = {}
    options: dict[str, TargetOptions] = {}
    names = list(dict.fromkeys([*spec.targets, *selected]))
    for name in names:
        where = loaded.source_map.locate(("targets", name), at_key=True)
        try:
            target = registry.get(name, where if name in spec.targets else None)
        except DiagnosticError as exc:
            diags.extend(exc.diagnostics)
            continue
        targets[name] = target
        raw: Any = spec.targets.get(name, {}) or {}
        try:
            options[name] = target.options_model.model_validate(raw)
        except ValidationError as exc:
            diags.extend(
                pydantic_diagnostics(
                    exc, raw, loaded.source_map, target.options_model, ("targets", name)
                )
            )
    return targets, options, diags


def check(
    spec_path: str | Path,
    overrides: Sequence[str] = (),
    targets: Sequence[str] = (),
    registry: TargetRegistry | None = None,
) -> CheckResult:
    """Load, validate, build the IR and run every pass for the selected targets.

    Raises:
        DiagnosticError: when the spec cannot be turned into IR (each problem located).
    """
    registry = registry or default_registry()
    loaded = load_spec(spec_path, list(overrides))
    spec = validate_spec(loaded)
    by_name, options, diags = _target_options(spec, loaded, registry, targets)
    if has_errors(diags):
        raise DiagnosticError(diags)
    ir = build_ir(spec)
    selected = [by_name[n] for n in targets]
    ctx = PassContext(
        source_map=loaded.source_map, targets=selected, available=registry.all() if selected else []
    )
    diags.extend(run_passes(ir, ctx))
    for target in selected:
        diags.extend(_locate(target.check(ir, _emit_context(target, options, loaded)), loaded))
    return CheckResult(loaded, spec, ir, selected, options, sort_diagnostics(diags))


def _locate(diags: list[Diagnostic], loaded: LoadedSpec) -> list[Diagnostic]:
    """Targets know key paths, not files: fill in the location from the source map."""
    from mlc.compiler.passes import parse_path

    out = []
    for d in diags:
        if d.location is None and d.path:
            d = Diagnostic(
                d.code,
                d.message,
                loaded.source_map.locate(parse_path(d.path)),
                d.hint,
                d.severity,
                d.path,
            )
        out.append(d)
    return out


def _emit_context(target: Target, options: dict[str, TargetOptions], loaded: LoadedSpec) -> Any:
    from mlc.targets.base import EmitContext

    return EmitContext(options=options[target.name], project_dir=str(loaded.project_dir))


@dataclass
class CompileResult:
    check: CheckResult
    written: dict[str, list[Path]]
    audit_problem: str = ""
    """Why the `compile` record could not be appended to the audit log (the files are written
    all the same); empty when it was, or when none was asked for."""


def compile_spec(
    spec_path: str | Path,
    targets: Sequence[str],
    out_dir: str | Path,
    overrides: Sequence[str] = (),
    registry: TargetRegistry | None = None,
    *,
    audit: bool = False,
) -> CompileResult:
    """Check the spec for `targets`, then emit each into `out_dir/<target>/` with a manifest.

    Nothing is written unless every target emitted without error. With `audit`, a `compile`
    record (each file's sha256) is appended to the project's audit log, the one the run and
    audit commands read (see `record_compile`).
    """
    from mlc.targets.base import EmitError, check_emitted

    result = check(spec_path, overrides, targets, registry)
    if not result.ok:
        raise DiagnosticError(result.diagnostics)
    emitted: dict[str, dict[str, str | bytes]] = {}
    errors: list[Diagnostic] = []
    for target in result.targets:
        ctx = _emit_context(target, result.options, result.loaded)
        try:
            files = dict(target.emit(result.ir, ctx))
        except EmitError as exc:
            errors.extend(_locate(exc.diagnostics, result.loaded))
            continue
        problems = check_emitted(files)
        if problems:
            errors.append(
                Diagnostic(
                    "MLC403", f"target '{target.name}' emitted bad files: " + "; ".join(problems)
                )
            )
            continue
        emitted[target.name] = files
    if errors:
        raise DiagnosticError([*result.diagnostics, *errors])
    written = {}
    root = Path(out_dir)
    for name, files in emitted.items():
        written[name] = write_tree(
            root / name,
            files,
            target=name,
            name=result.ir.name,
            spec_hash=str(result.ir.metadata["spec_hash"]),
        )
    compiled = CompileResult(result, written)
    if audit:
        try:
            record_compile(compiled)
        except OSError as exc:
            compiled.audit_problem = str(exc)
    return compiled


def record_compile(result: CompileResult) -> None:
    """Append a `compile` record to the project's audit log: `.mlc/audit.jsonl`, or the one
    under the spec's `targets.local.state_dir`.

    Raises:
        OSError: the log cannot be appended to.
    """
    import hashlib

    from mlc.runtime import audit
    from mlc.targets.local import LocalOptions

    loaded = result.check.loaded
    files = {
        name: {
            p.name if p.parent == out_dir else p.relative_to(out_dir).as_posix(): hashlib.sha256(
                p.read_bytes()
            ).hexdigest()
            for p in paths
        }
        for name, paths in sorted(result.written.items())
        for out_dir in [paths[-1].parent]
    }
    raw: Any = result.check.spec.targets.get("local") or {}
    try:
        local = LocalOptions.model_validate(raw)
    except ValidationError:
        # the local options are the local target's to check (when it is compiled); until then
        # the log is in its default folder
        local = LocalOptions()
    audit.append(
        loaded.project_dir / local.state_dir,
        "compile",
        spec_hash=str(result.check.ir.metadata["spec_hash"]),
        project_dir=loaded.project_dir,
        details={"targets": sorted(result.written), "spec": loaded.root.name, "files": files},
    )


def warnings_of(diags: Sequence[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diags if d.severity is not Severity.ERROR]
