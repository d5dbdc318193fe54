"""`mlc cost`: the estimate for the targets a compile would emit, with the budget verdicts.

Which targets: those named with `-t`, else the non-inspection targets of the spec's `targets:`
section, else every installed target (the whole system, as far as some target can emit it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mlc.compiler.cost.estimate import CostEstimate
from mlc.compiler.cost.pricing import load_pricing
from mlc.compiler.diagnostics import Diagnostic, sort_diagnostics

if TYPE_CHECKING:
    from mlc.compiler.api import CheckResult
    from mlc.targets.base import Target


@dataclass
class CostReport:
    check: CheckResult
    estimate: CostEstimate
    diagnostics: list[Diagnostic] = field(default_factory=list)
    """Pricing holes and budget verdicts (MLC630-634), located."""

    def to_json(self) -> dict[str, object]:
        return {
            **self.estimate.to_json(),
            "diagnostics": [d.to_json() for d in self.diagnostics],
        }


def _declared(result: CheckResult) -> list[Target]:
    from mlc.compiler.registry import default_registry

    registry = default_registry()
    found = []
    for name in sorted(result.spec.targets):
        target = registry.get(name)
        if not target.inspection:
            found.append(target)
    return found or [t for t in registry.all() if not t.inspection]


def cost_report(
    spec_path: str | Path,
    overrides: Sequence[str] = (),
    targets: Sequence[str] = (),
    pricing: str | Path | None = None,
    spot: bool = False,
) -> CostReport:
    """Check the spec (for `targets` when given) and price what the chosen targets emit.

    Raises:
        DiagnosticError: the spec cannot be built into IR, or the pricing table is unreadable.
    """
    from mlc.compiler.api import check
    from mlc.compiler.passes import PassContext
    from mlc.compiler.passes.budget import check_budget, estimate_for

    table = load_pricing(pricing)
    result = check(spec_path, overrides, targets)
    chosen = list(result.targets) if targets else _declared(result)
    # the budget verdicts, too, for what these targets emit
    ctx = PassContext(
        source_map=result.loaded.source_map,
        targets=chosen,
        available=chosen,
        extra={"pricing": table, "spot": spot},
    )
    est = estimate_for(result.ir, ctx)
    # the pricing holes always (the budget pass shows them only beside a budget), then the caps
    diags = [ctx.diag(d.code, d.message, d.path, d.hint, d.severity) for d in est.diagnostics]
    diags += [d for d in check_budget(result.ir, ctx) if d.code in ("MLC630", "MLC634")]
    return CostReport(result, est, sort_diagnostics(diags))
