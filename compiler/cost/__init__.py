"""Cost model: a versioned pricing table (`pricing.json`) and an estimator over the IR."""

from mlc.compiler.cost.estimate import CostEstimate, Emission, LineItem, estimate_cost
from mlc.compiler.cost.pricing import Instance, PricingTable, load_pricing

__all__ = [
    "CostEstimate",
    "Emission",
    "Instance",
    "LineItem",
    "PricingTable",
    "estimate_cost",
    "load_pricing",
]
