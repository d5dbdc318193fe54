"""Targets that break one rule each, to prove the conformance kit catches them.

Used by tests/compiler/test_plugins.py::test_kit_catches_broken_targets, which runs the kit on each
class in a separate pytest process and checks which kit tests fail.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ConfigDict

from mlc.compiler.diagnostics import Diagnostic, Severity
from mlc.compiler.ir import IRGraph
from mlc.targets.base import EmitContext, Target, TargetOptions


class GoodTarget(Target):
    name = "kit-good"
    description = "Emits the step ids, one per line."

    def emit(self, ir: IRGraph, ctx: EmitContext) -> Mapping[str, str | bytes]:
        return {"steps.txt": "".join(f"{s.id}\n" for s in ir.steps)}


class HashOrderTarget(GoodTarget):
    name = "kit-hash-order"
    description = "Joins a set of strings: the order depends on PYTHONHASHSEED."

    def emit(self, ir: IRGraph, ctx: EmitContext) -> Mapping[str, str | bytes]:
        names = {s.id for s in ir.steps} | {a.id for a in ir.artifacts}
        return {"ids.txt": ",".join(names) + "\n"}


class MutatingTarget(GoodTarget):
    name = "kit-mutating"
    description = "Writes into the IR's metadata while emitting."

    def emit(self, ir: IRGraph, ctx: EmitContext) -> Mapping[str, str | bytes]:
        ir.metadata["emits"] = int(ir.metadata.get("emits", 0)) + 1
        return super().emit(ir, ctx)


class EscapingPathTarget(GoodTarget):
    name = "kit-escaping"
    description = "Emits a file outside its output folder."

    def emit(self, ir: IRGraph, ctx: EmitContext) -> Mapping[str, str | bytes]:
        return {"../outside.txt": "x\n"}


class LaxOptions(TargetOptions):
    model_config = ConfigDict(extra="allow", frozen=True)


class LaxOptionsTarget(GoodTarget):
    name = "kit-lax"
    description = "Accepts any option, so typos pass silently."
    options_model = LaxOptions


class UnlocatedCheckTarget(GoodTarget):
    name = "kit-unlocated"
    description = "Reports a problem without saying where in the spec it is."

    def check(self, ir: IRGraph, ctx: EmitContext) -> list[Diagnostic]:
        # A warning, so the spec still compiles and only the location rule is broken.
        return [Diagnostic("X001", "something is off", severity=Severity.WARNING)]
