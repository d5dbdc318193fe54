"""Budget pass: the cost estimate against `budgets` caps, naming the line item that breaks it.

`budgets.enforce: error` makes an exceeded cap an error, `warn` a warning. The pricing table comes
from `ctx.extra["pricing"]` (a `PricingTable`) when set, else the shipped one. What is priced is
what the installed targets (`ctx.available`) emit, everything the spec describes when the context
knows none. A cap whose
lines the table cannot price is never called kept: MLC634 says it was not checked and why (an
exceeded cap is still reported from the lines that are priced).
"""

from __future__ import annotations

from collections.abc import Iterator

from mlc.compiler.cost import CostEstimate, Emission, LineItem, PricingTable, estimate_cost
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
        # A cap is about the whole system, not the part one compile emits: price what any
        # installed target would emit (no registry, as under `mlc validate`: all of the spec)
        emits=Emission.of(ctx.available),
    )
    ctx.extra["cost_estimate"] = est
    return est


def _measure(item: LineItem, measure: str) -> float:
    if measure == "per_run":
        return item.per_run_usd
    if measure == "monthly":
        return item.monthly_usd
    return item.gpu_hours_per_month


UNITS = {"gpu_hours": "GPU hours/month", "per_run": "USD per run", "monthly": "USD/month"}


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
    set_caps = [k for k in CAPS if caps.get(k) is not None]
    if not est.estimated:
        # nothing has a price (on-prem, or a cloud the table lacks): one word for every cap,
        # except GPU hours, which come from the resources
        money = [k for k in set_caps if CAPS[k][1] != "gpu_hours"]
        if money:
            yield ctx.diag(
                "MLC634",
                "budgets are not checked ("
                + ", ".join(f"budgets.{k}" for k in money)
                + f"): costs are not estimated, {_reason(est)}",
                "budgets",
                "pass a pricing table that prices the deployment (mlc cost --pricing FILE)",
                Severity.WARNING,
            )
        set_caps = [k for k in set_caps if k not in money]
    for key in set_caps:
        names, measure = CAPS[key]
        cap = float(caps[key])
        items = [i for i in est.items if not names or i.name in names]
        # GPU hours come from the resources, not from prices: an unpriced line still counts
        unknown = [i for i in items if not i.priced] if measure != "gpu_hours" else []
        value = sum(_measure(i, measure) for i in items)
        if value <= cap + 1e-9:
            if unknown:
                yield ctx.diag(
                    "MLC634",
                    f"budgets.{key} ({cap:,.2f} {UNITS[measure]}) is not checked: the priced "
                    f"lines come to {value:,.2f}, and "
                    + ", ".join(i.name for i in unknown)
                    + f" cannot be priced ({_reason(est)})",
                    f"budgets.{key}",
                    "pass a pricing table that covers them (mlc cost --pricing FILE)",
                    Severity.WARNING,
                )
            continue
        worst = max(items, key=lambda i: _measure(i, measure))
        yield ctx.diag(
            "MLC630",
            f"estimated {'at least ' if unknown else ''}{value:,.2f} {UNITS[measure]} exceeds "
            f"budgets.{key} ({cap:,.2f}); largest line item: {worst.name} ({worst.detail})",
            f"budgets.{key}",
            f"reduce {worst.path}, raise the cap, or set 'budgets.enforce: warn'",
            severity,
        )


def _reason(est: CostEstimate) -> str:
    return "the pricing table has " + est.unknown_reason()
