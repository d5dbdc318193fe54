"""The `budgets` section: spending caps in USD, GPU hours, idle shutdown, enforcement."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlc.specs._base import Duration, StrictModel


class Budgets(StrictModel):
    training_usd: float | None = Field(None, ge=0)
    tuning_usd: float | None = Field(None, ge=0)
    serving_usd_per_month: float | None = Field(None, ge=0)
    total_usd_per_month: float | None = Field(None, ge=0)
    gpu_hours: float | None = Field(None, ge=0)
    idle_shutdown: Duration | None = None
    """Stop serving/notebook resources idle for this long."""
    alert_thresholds: tuple[int, ...] = (50, 80, 100)
    """Percentages of a cap at which budget alerts fire."""
    enforce: Literal["error", "warn"] = "error"
