"""The `evaluation` section: metrics, gates, champion comparison and robustness checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from mlc.specs._base import Identifier, StrictModel, Violation

CLASSIFICATION_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "f1",
    "precision",
    "recall",
    "roc_auc",
    "log_loss",
)
REGRESSION_METRICS = ("rmse", "mae", "r2", "mape")
KNOWN_METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mape"})

Comparison = Literal[">", ">=", "<", "<=", "==", "!="]


class Gate(StrictModel):
    """A typed comparison on a metric: `metric op threshold` must hold."""

    metric: Identifier
    op: Comparison
    threshold: float
    name: str | None = None


class Champion(StrictModel):
    compare: bool = True
    metric: Identifier
    min_improvement: float = 0.0
    """A challenger must beat the champion by at least this margin."""


class Robustness(StrictModel):
    kind: Literal["noise", "missing", "shift"]
    features: tuple[Identifier, ...] = ()
    """Columns to perturb (default: all numeric features)."""
    magnitude: float = Field(0.1, gt=0)
    max_drop: float = Field(0.05, ge=0)
    """Largest tolerated drop of the first metric under the perturbation."""


class Evaluation(StrictModel):
    metrics: tuple[Identifier, ...] = Field(min_length=1)
    gates: tuple[Gate, ...] = ()
    champion: Champion | None = None
    robustness: tuple[Robustness, ...] = ()

    def violations(self) -> Iterator[Violation]:
        for i, metric in enumerate(self.metrics):
            if metric not in KNOWN_METRICS:
                yield Violation(
                    ("metrics", i),
                    "MLC340",
                    f"unknown metric '{metric}'",
                    "known metrics: " + ", ".join(KNOWN_METRICS),
                )
        computed = set(self.metrics)
        for i, gate in enumerate(self.gates):
            if gate.metric not in computed:
                yield Violation(
                    ("gates", i, "metric"),
                    "MLC202",
                    f"gate metric '{gate.metric}' is not computed",
                    "add it to evaluation.metrics: " + ", ".join(self.metrics),
                )
        if self.champion is not None and self.champion.metric not in computed:
            yield Violation(
                ("champion", "metric"),
                "MLC202",
                f"champion metric '{self.champion.metric}' is not computed",
                "add it to evaluation.metrics",
            )
