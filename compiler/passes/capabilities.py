"""Target capabilities: nothing a spec asks for is silently dropped.

For each selected target and each step it realises, every requirement of the step must be among
the target's supported features, else an error names the setting. A step that no selected target
realises gets a warning naming the targets that would.
"""

from __future__ import annotations

from collections.abc import Iterator

from mlc.compiler.diagnostics import Diagnostic, Severity
from mlc.compiler.ir import IRGraph, StepKind
from mlc.compiler.passes.base import PassContext


def check_capabilities(ir: IRGraph, ctx: PassContext) -> Iterator[Diagnostic]:
    selected = [t for t in ctx.targets if not t.inspection]
    if not selected:
        return
    # section -> (first origin, kinds): one warning per spec section, not per step kind
    unrealised: dict[str, tuple[str, list[StepKind]]] = {}
    for step in ir.steps:
        realisers = [t for t in selected if step.kind in t.capabilities.realises]
        if not realisers:
            section = step.origin.split(".")[0].split("[")[0]
            _, kinds = unrealised.setdefault(section, (step.origin, []))
            if step.kind not in kinds:
                kinds.append(step.kind)
        for target in realisers:
            for req in step.requires:
                if req.feature not in target.capabilities.supports:
                    able = sorted(
                        t.name
                        for t in ctx.available
                        if step.kind in t.capabilities.realises
                        and req.feature in t.capabilities.supports
                    )
                    hint = "remove or change the setting" + (
                        f", or compile with --target {' / '.join(able)}" if able else ""
                    )
                    yield ctx.diag(
                        "MLC410",
                        f"target '{target.name}' cannot honour '{req.feature}' for step "
                        f"'{step.id}'",
                        req.origin,
                        hint,
                    )
    names = ", ".join(sorted(t.name for t in selected))
    for section, (origin, kinds) in sorted(unrealised.items()):
        able = sorted(
            {t.name for t in ctx.available for k in kinds if k in t.capabilities.realises}
        )
        hint = (
            f"add --target {' or --target '.join(able)}"
            if able
            else "no installed target realises it yet"
        )
        listed = ", ".join(k.value for k in kinds)
        yield ctx.diag(
            "MLC420",
            f"'{section}' ({listed}) is not realised by: {names}",
            origin,
            hint,
            Severity.WARNING,
        )
