"""`--target ir`: the IR itself as canonical JSON, for inspection and for other tools."""

from __future__ import annotations

from collections.abc import Mapping

from mlc.compiler.ir import IRGraph
from mlc.targets.base import EmitContext, Target, TargetOptions


class IROptions(TargetOptions):
    filename: str = "ir.json"
    """Name of the emitted file."""


class IRTarget(Target):
    name = "ir"
    description = "The versioned IR graph as canonical JSON."
    options_model = IROptions
    inspection = True

    def emit(self, ir: IRGraph, ctx: EmitContext) -> Mapping[str, str | bytes]:
        options = ctx.options
        assert isinstance(options, IROptions)
        return {options.filename: ir.to_json()}
