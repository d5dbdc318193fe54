"""The pass contract: a plain function over the IR and a context, returning diagnostics."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mlc.compiler.diagnostics import Diagnostic, Severity, SourceLocation
from mlc.compiler.ir import IRGraph
from mlc.compiler.sourcemap import SourceMap, parse_path

if TYPE_CHECKING:
    from mlc.targets.base import Target

# `parse_path` lives beside the source map it indexes; passes keep importing it from here.
__all__ = ["Pass", "PassContext", "parse_path"]


@dataclass
class PassContext:
    """Everything a pass may read besides the IR. No globals, no hidden state."""

    source_map: SourceMap = field(default_factory=SourceMap)
    targets: list[Target] = field(default_factory=list)
    """The targets selected for this compile (empty for `mlc validate`)."""
    available: list[Target] = field(default_factory=list)
    """Every installed target (for hints such as 'add --target kserve')."""
    extra: dict[str, Any] = field(default_factory=dict)

    def locate(self, dotted_path: str) -> SourceLocation | None:
        return self.source_map.locate(parse_path(dotted_path))

    def diag(
        self,
        code: str,
        message: str,
        origin: str,
        hint: str = "",
        severity: Severity = Severity.ERROR,
    ) -> Diagnostic:
        return Diagnostic(code, message, self.locate(origin), hint, severity, path=origin)


class Pass(Protocol):
    """A pass: `(ir, ctx) -> diagnostics`. Passes must not mutate the IR."""

    __name__: str

    def __call__(self, ir: IRGraph, ctx: PassContext) -> Iterable[Diagnostic]: ...
