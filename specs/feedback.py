"""The `feedback` section: retraining triggers, active learning, promotion policy."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from mlc.specs._base import Cron, Duration, Identifier, StrictModel


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


class Retrain(StrictModel):
    """What a retrain triggered by `mlc loop` trains on, and how often it may run."""

    production_rows: bool = True
    """Add the labelled rows of the serving prediction log (inside `window`) to the spec's
    first source, deduplicated (by the contract's unique columns, else whole rows; the newest
    row wins)."""
    window: Duration = 2592000
    """How far back labelled rows of the prediction log are taken for training (the monitor
    judges drift over `monitoring.window`)."""
    labels: str = "labels"
    """Folder (or file) of arrived labels: CSV or Parquet with `request_id`, `row` and the
    target column, relative to the spec's folder."""
    cooldown: Duration = 3600
    """Least time between two retrains."""
    max_runs_per_month: int = Field(10, ge=1)
    max_usd_per_month: float | None = Field(None, gt=0)
    """Cap on the estimated training cost of this calendar month's retrains (`mlc cost`)."""


class Feedback(StrictModel):
    triggers: tuple[Trigger, ...] = ()
    retrain: Retrain = Retrain()
    active_learning: ActiveLearning | None = None
    promotion: Promotion = Promotion()
