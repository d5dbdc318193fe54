"""The `budgets` section: spending caps in USD, GPU hours, idle shutdown, enforcement."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from mlc.specs._base import Duration, StrictModel

MAX_USD = 1e12
"""The largest cap in USD: cents stay exact in a float (below 2**53 cents, about 9e13 USD)
and a GCP budget holds its amount in int64 units; no real cap comes near it."""

Usd = Annotated[float, Field(ge=0, le=MAX_USD)]
AlertPercent = Annotated[int, Field(ge=1, le=1000)]
"""A percentage of a cap; Azure budget notifications take thresholds up to 1000 %."""


class Budgets(StrictModel):
    training_usd: Usd | None = None
    tuning_usd: Usd | None = None
    serving_usd_per_month: Usd | None = None
    total_usd_per_month: Usd | None = None
    gpu_hours: float | None = Field(None, ge=0)
    idle_shutdown: Duration | None = None
    """Stop serving/notebook resources idle for this long."""
    alert_thresholds: tuple[AlertPercent, ...] = (50, 80, 100)
    """Percentages of a cap (1 to 1000) at which budget alerts fire."""
    enforce: Literal["error", "warn"] = "error"
