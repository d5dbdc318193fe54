"""The `tuning` section: hyperparameter search with a typed search space."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field

from mlc.specs._base import Duration, Identifier, StrictModel, Violation, is_secret_ref

_RDB_SCHEMES = ("postgresql", "postgres", "mysql", "sqlite")
_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://(.+)$")


def storage_kind(value: str) -> Literal["rdb", "journal", "secret"] | None:
    """What a `tuning.storage` value names, or None when it is none of the three.

    >>> [storage_kind(v) for v in ("env:OPTUNA_URL", "journal:///s/study.log",
    ...                            "postgresql+psycopg://o@db/optuna", "redis://x")]
    ['secret', 'journal', 'rdb', None]
    """
    if is_secret_ref(value):
        return "secret"
    found = _URL.match(value)
    if found is None:
        return None
    scheme = found.group(1)
    if scheme == "journal":
        return "journal"
    return "rdb" if scheme.split("+")[0] in _RDB_SCHEMES else None


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
    storage: str | None = Field(None, min_length=1)
    """Where the Optuna study lives, shared by parallel trials across workers (None: sqlite in
    the project's state folder). A database URL (`postgresql://optuna@db:5432/optuna`,
    `mysql://…`, `sqlite:///…`), a secret reference to one (`env:OPTUNA_STORAGE`: a URL with a
    password belongs in a secret), or Optuna's journal file (`journal:///shared/study.log`,
    relative paths against the project folder) on a file system all workers mount."""

    def violations(self) -> Iterator[Violation]:
        for name, param in self.search_space.items():
            for v in param.violations():
                yield v.under("search_space", name)
        if self.storage is not None and storage_kind(self.storage) is None:
            yield Violation(
                ("storage",),
                "MLC333",
                f"tuning.storage {self.storage[:80]!r} is neither a database URL, a journal "
                "file nor a secret reference",
                "write 'postgresql://user@host:5432/db', 'journal:///shared/study.log' or "
                "'env:OPTUNA_STORAGE'",
            )
        if self.parallelism > self.trials:
            yield Violation(
                ("parallelism",),
                "MLC332",
                f"parallelism ({self.parallelism}) exceeds trials ({self.trials})",
            )
