"""The `evaluation` section: metrics, gates, champion comparison and robustness checks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from mlc.specs._base import Identifier, StrictModel, Violation

Direction = Literal["higher", "lower"]


@dataclass(frozen=True)
class MetricInfo:
    """What the rest of mlc needs to know about a metric besides how to compute it."""

    direction: Direction
    """Which way is better: gates, champion comparisons, monitoring alerts, `mlc diff` risk and
    monitor wording all read it from here (through the IR for runtime steps and targets)."""
    task: Literal["classification", "regression", "fairness"]


METRICS: dict[str, MetricInfo] = {
    "accuracy": MetricInfo("higher", "classification"),
    "balanced_accuracy": MetricInfo("higher", "classification"),
    "f1": MetricInfo("higher", "classification"),
    "precision": MetricInfo("higher", "classification"),
    "recall": MetricInfo("higher", "classification"),
    "roc_auc": MetricInfo("higher", "classification"),
    "log_loss": MetricInfo("lower", "classification"),
    "rmse": MetricInfo("lower", "regression"),
    "mae": MetricInfo("lower", "regression"),
    "r2": MetricInfo("higher", "regression"),
    "mape": MetricInfo("lower", "regression"),
}
"""Every metric `evaluation.metrics` accepts; `mlc.runtime.steps._metrics` computes each."""

FAIRNESS_METRICS: dict[str, MetricInfo] = {
    "demographic_parity_difference": MetricInfo("lower", "fairness"),
    "demographic_parity_ratio": MetricInfo("higher", "fairness"),
    "equalized_odds_difference": MetricInfo("lower", "fairness"),
    "equalized_odds_ratio": MetricInfo("higher", "fairness"),
}
"""`governance.fairness.metric` values: a difference is 0 when groups are treated alike (its
threshold is a ceiling), a ratio is 1 (its threshold is a floor)."""

CLASSIFICATION_METRICS = tuple(n for n, m in METRICS.items() if m.task == "classification")
REGRESSION_METRICS = tuple(n for n, m in METRICS.items() if m.task == "regression")
KNOWN_METRICS = tuple(METRICS)


def metric_direction(name: str) -> Direction:
    """`"higher"` or `"lower"` (is better) for an evaluation or fairness metric.

    >>> metric_direction("rmse"), metric_direction("demographic_parity_ratio")
    ('lower', 'higher')

    Raises:
        KeyError: `name` is no metric mlc knows (validation reports those first).
    """
    info = METRICS.get(name) or FAIRNESS_METRICS.get(name)
    if info is None:
        raise KeyError(name)
    return info.direction


Comparison = Literal[">", ">=", "<", "<=", "==", "!="]


class Gate(StrictModel):
    """A typed comparison on a metric: `metric op threshold` must hold."""

    metric: Identifier
    op: Comparison
    threshold: float
    name: str | None = None


class Bootstrap(StrictModel):
    """A paired bootstrap of the test rows: the challenger passes only when the lower end of the
    confidence interval of its improvement over the champion clears `min_improvement`."""

    samples: int = Field(1000, ge=100, le=100_000)
    confidence: float = Field(0.95, gt=0.5, lt=1)
    seed: int = Field(0, ge=0)


class Champion(StrictModel):
    compare: bool = True
    metric: Identifier
    min_improvement: float = 0.0
    """A challenger must beat the champion by at least this margin."""
    same_holdout: bool = True
    """Score the registered champion on this run's test split, beside the challenger (and per
    sensitive group); off, or when the champion cannot be loaded, the metrics recorded when it
    was registered are compared (said in the verdict)."""
    bootstrap: Bootstrap | None = None


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
