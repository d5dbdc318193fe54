"""Budget pass: the cost estimate against `budgets` caps, naming the line item that breaks it.

`budgets.enforce: error` makes an exceeded cap an error, `warn` a warning. The pricing table comes
from `ctx.extra["pricing"]` (a `PricingTable`) when set, else the shipped one.
"""

from __future__ import annotations

from collections.abc import Iterator

from mlc.compiler.cost import CostEstimate, PricingTable, estimate_cost
from mlc.compiler.diagnostics import Diagnostic, Severity
from mlc.compiler.ir import IRGraph, StepKind
from mlc.compiler.passes.base import PassContext

# cap key -> (line items it covers, what it measures)
CAPS: dict[str, tuple[tuple[str, ...], str]] = {
    "training_usd": (("training",), "per_run"),
    "tuning_usd": (("tuning",), "per_run"),
    "serving_usd_per_month": (("serving", "batch"), "monthly"),
    "total_usd_per_month": ((), "monthly"),
    "gpu_hours": ((), "gpu_hours"),
}


def estimate_for(ir: IRGraph, ctx: PassContext) -> CostEstimate:
    """The estimate for this IR, computed once per context and shared with later readers."""
    cached = ctx.extra.get("cost_estimate")
    if isinstance(cached, CostEstimate):
        return cached
    pricing = ctx.extra.get("pricing")
    est = estimate_cost(
        ir,
        pricing if isinstance(pricing, PricingTable) else None,
        spot=bool(ctx.extra.get("spot", False)),
    )
    ctx.extra["cost_estimate"] = est
    return est


def check_budget(ir: IRGraph, ctx: PassContext) -> Iterator[Diagnostic]:
    """Compare the estimate with every cap that is set."""
    budget_step = ir.first(StepKind.BUDGET)
    deployed = ir.first(StepKind.STORAGE)
    if budget_step is None and deployed is None:
        return
    est = estimate_for(ir, ctx)
    for d in est.diagnostics:
        if budget_step is None and d.severity is not Severity.ERROR:
            continue
        yield ctx.diag(d.code, d.message, d.path, d.hint, d.severity)
    if budget_step is None or not est.items:
        return
    caps = budget_step.params
    severity = Severity.ERROR if caps.get("enforce", "error") == "error" else Severity.WARNING
    for key, (names, measure) in CAPS.items():
        cap = caps.get(key)
        if cap is None:
            continue
        items = [i for i in est.items if not names or i.name in names]
        if measure == "per_run":
            value = sum(i.per_run_usd for i in items)
        elif measure == "monthly":
            value = sum(i.monthly_usd for i in items)
        else:
            value = sum(i.gpu_hours_per_month for i in items)
        if value <= float(cap) + 1e-9:
            continue
        worst = max(
            items,
            key=lambda i: (
                i.gpu_hours_per_month
                if measure == "gpu_hours"
                else i.per_run_usd
                if measure == "per_run"
                else i.monthly_usd
            ),
        )
        unit = (
            "GPU hours/month"
            if measure == "gpu_hours"
            else ("USD per run" if measure == "per_run" else "USD/month")
        )
        yield ctx.diag(
            "MLC630",
            f"estimated {value:,.2f} {unit} exceeds budgets.{key} ({float(cap):,.2f}); "
            f"largest line item: {worst.name} ({worst.detail})",
            f"budgets.{key}",
            f"reduce {worst.path}, raise the cap, or set 'budgets.enforce: warn'",
            severity,
        )
