"""Passes: an ordered tuple of plain functions over the IR and a context.

Plugins add passes through the `mlc.passes` entry-point group; each is called after the
built-in ones, in name order.
"""

from __future__ import annotations

from collections.abc import Iterable

from mlc.compiler.diagnostics import Diagnostic, DiagnosticError
from mlc.compiler.ir import IRGraph
from mlc.compiler.passes.base import Pass, PassContext, parse_path
from mlc.compiler.passes.budget import check_budget
from mlc.compiler.passes.capabilities import check_capabilities
from mlc.compiler.passes.consistency import check_consistency
from mlc.compiler.passes.graph_checks import check_graph
from mlc.compiler.passes.policies import check_policies
from mlc.compiler.passes.references import check_references
from mlc.compiler.registry import group_entry_points

PASS_ENTRY_POINT_GROUP = "mlc.passes"

DEFAULT_PASSES: tuple[Pass, ...] = (check_graph, check_references, check_capabilities)
DEFAULT_PASSES += (check_budget, check_policies)
DEFAULT_PASSES += (check_consistency,)


def plugin_passes() -> tuple[Pass, ...]:
    found = []
    for ep in sorted(group_entry_points(PASS_ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else "an unknown distribution"
        try:
            found.append(ep.load())
        except Exception as exc:  # a broken plugin must be loud, whatever it raised
            raise DiagnosticError(
                [
                    Diagnostic(
                        "MLC405",
                        f"pass plugin '{ep.name}' from '{dist}' failed to import: "
                        f"{type(exc).__name__}: {exc}",
                    )
                ]
            ) from None
    return tuple(found)


def run_passes(
    ir: IRGraph, ctx: PassContext, passes: Iterable[Pass] | None = None
) -> list[Diagnostic]:
    """Run every pass; a pass that raises becomes an error naming it, not a traceback."""
    out: list[Diagnostic] = []
    for p in passes if passes is not None else (*DEFAULT_PASSES, *plugin_passes()):
        try:
            out.extend(p(ir, ctx))
        except DiagnosticError as exc:
            out.extend(exc.diagnostics)
        except Exception as exc:  # a failing pass is reported by name, the others still run
            name = getattr(p, "__qualname__", repr(p))
            out.append(Diagnostic("MLC600", f"pass '{name}' failed: {type(exc).__name__}: {exc}"))
    return out


__all__ = ["DEFAULT_PASSES", "Pass", "PassContext", "parse_path", "run_passes"]
