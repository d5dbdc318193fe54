"""Graph checks: no cycles, no input that nothing produces."""

from __future__ import annotations

from collections.abc import Iterator

from mlc.compiler.diagnostics import Diagnostic
from mlc.compiler.ir import IRGraph
from mlc.compiler.passes.base import PassContext


def check_graph(ir: IRGraph, ctx: PassContext) -> Iterator[Diagnostic]:
    cycle = ir.find_cycle()
    if cycle is not None:
        yield Diagnostic(
            "MLC501",
            "the pipeline has a cycle: " + " -> ".join(cycle),
            hint="a step cannot consume what it produces, directly or not",
        )
    for step, name, art in ir.dangling_inputs():
        yield ctx.diag(
            "MLC502",
            f"step '{step.id}' input '{name}' reads '{art}', which no step produces",
            step.origin,
        )
