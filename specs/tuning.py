"""The `tuning` section: hyperparameter search with a typed search space."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field

from mlc.specs._base import Duration, Identifier, StrictModel, Violation


class FloatParam(StrictModel):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False

    def violations(self) -> Iterator[Violation]:
        if self.low >= self.high:
            yield Violation(("high",), "MLC330", "'high' must be greater than 'low'")
        if self.log and self.low <= 0:
            yield Violation(("low",), "MLC331", "a log-scaled range needs low > 0")


class IntParam(StrictModel):
    type: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False

    def violations(self) -> Iterator[Violation]:
        if self.low >= self.high:
            yield Violation(("high",), "MLC330", "'high' must be greater than 'low'")
        if self.log and self.low <= 0:
            yield Violation(("low",), "MLC331", "a log-scaled range needs low > 0")


class CategoricalParam(StrictModel):
    type: Literal["categorical"]
    choices: tuple[str | int | float | bool | None, ...] = Field(min_length=1)


SearchParam = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


class Objective(StrictModel):
    metric: Identifier
    direction: Literal["maximize", "minimize"] | None = None
    """Unset: the metric's own (`minimize` for rmse, log_loss, …); a fixed default would
    maximise an error metric and pick the worst trial."""


class Tuning(StrictModel):
    engine: Literal["optuna"] = "optuna"
    objective: Objective
    search_space: dict[Identifier, SearchParam] = Field(min_length=1)
    trials: int = Field(20, ge=1)
    timeout: Duration | None = None
    parallelism: int = Field(1, ge=1, le=1000)
    """Trials run at once (at most 1000: kfp lists one loop item per worker)."""
    pruner: Literal["none", "median", "hyperband", "successive_halving"] = "median"
    sampler: Literal["tpe", "random", "cmaes"] = "tpe"
    cv_folds: int = Field(3, ge=2)
    storage: str | None = None
    """Shared RDB URL for the Optuna study (parallel trials across workers)."""

    def violations(self) -> Iterator[Violation]:
        for name, param in self.search_space.items():
            for v in param.violations():
                yield v.under("search_space", name)
        if self.parallelism > self.trials:
            yield Violation(
                ("parallelism",),
                "MLC332",
                f"parallelism ({self.parallelism}) exceeds trials ({self.trials})",
            )
