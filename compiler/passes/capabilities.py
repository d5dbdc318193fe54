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
    unrealised: dict[StepKind, list[str]] = {}
    for step in ir.steps:
        realisers = [t for t in selected if step.kind in t.capabilities.realises]
        if not realisers:
            unrealised.setdefault(step.kind, []).append(step.origin)
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
    for kind, origins in sorted(unrealised.items(), key=lambda kv: kv[0].value):
        able = sorted(t.name for t in ctx.available if kind in t.capabilities.realises)
        hint = (
            f"add --target {' or --target '.join(able)}"
            if able
            else ("no installed target realises it")
        )
        yield ctx.diag(
            "MLC420",
            f"'{origins[0].split('.')[0]}' ({kind.value}) is not realised by: {names}",
            origins[0],
            hint,
            Severity.WARNING,
        )
