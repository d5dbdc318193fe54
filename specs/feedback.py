"""The `feedback` section: retraining triggers, active learning, promotion policy."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from mlc.specs._base import Cron, Identifier, StrictModel


class DriftTrigger(StrictModel):
    kind: Literal["drift"]
    threshold: float | None = Field(None, gt=0)
    """Drift score that triggers retraining (default: monitoring.drift.threshold)."""


class PerformanceTrigger(StrictModel):
    kind: Literal["performance_drop"]
    metric: Identifier
    drop: float = Field(gt=0)
    """Absolute drop from the value at promotion that triggers retraining."""


class ScheduleTrigger(StrictModel):
    kind: Literal["schedule"]
    cron: Cron


class DataVolumeTrigger(StrictModel):
    kind: Literal["data_volume"]
    rows: int = Field(ge=1)
    """New labelled rows since the last training."""


Trigger = Annotated[
    DriftTrigger | PerformanceTrigger | ScheduleTrigger | DataVolumeTrigger,
    Field(discriminator="kind"),
]


class ActiveLearning(StrictModel):
    strategy: Literal["uncertainty", "margin", "entropy", "random"] = "uncertainty"
    batch_size: int = Field(100, ge=1)


class Promotion(StrictModel):
    policy: Literal["auto", "manual"] = "auto"
    """`auto` promotes a challenger that passes every gate; `manual` waits for approvers."""
    min_improvement: float = 0.0


class Feedback(StrictModel):
    triggers: tuple[Trigger, ...] = ()
    active_learning: ActiveLearning | None = None
    promotion: Promotion = Promotion()
