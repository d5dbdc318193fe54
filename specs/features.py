"""The `features` section: the target, per-column transforms, derived features and selection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field

from mlc.specs._base import EntryPoint, Identifier, SecretRef, StrictModel, Violation


class _Transform(StrictModel):
    columns: tuple[Identifier, ...] = Field(min_length=1)


class Scale(_Transform):
    op: Literal["scale"]
    method: Literal["standard", "minmax", "robust"] = "standard"


class OneHot(_Transform):
    op: Literal["one_hot"]
    max_categories: int | None = Field(None, ge=2)
    handle_unknown: Literal["ignore", "error"] = "ignore"


class Bucketize(_Transform):
    op: Literal["bucketize"]
    bins: int | tuple[float, ...] = 5
    """A number of quantile bins, or explicit edges in ascending order."""

    def violations(self) -> Iterator[Violation]:
        if isinstance(self.bins, tuple) and list(self.bins) != sorted(set(self.bins)):
            yield Violation(("bins",), "MLC310", "bin edges must be strictly ascending")
        if isinstance(self.bins, int) and self.bins < 2:
            yield Violation(("bins",), "MLC310", "at least 2 bins are needed")


class Log(_Transform):
    op: Literal["log"]
    offset: float = 1.0
    """Added before the logarithm so that zeros stay finite."""


class Impute(_Transform):
    op: Literal["impute"]
    strategy: Literal["mean", "median", "most_frequent", "constant"] = "median"
    fill_value: str | float | None = None


class Pseudonymise(_Transform):
    op: Literal["pseudonymise"]
    key: SecretRef
    """Key for the keyed hash (HMAC-SHA256), a secret reference; raw values never pass."""
    buckets: int = Field(2**20, ge=2)


class Custom(_Transform):
    op: Literal["custom"]
    function: EntryPoint
    """`module:function` taking and returning a DataFrame of these columns."""


Transform = Annotated[
    Scale | OneHot | Bucketize | Log | Impute | Pseudonymise | Custom, Field(discriminator="op")
]


class Derived(StrictModel):
    name: Identifier
    expr: str = Field(min_length=1)
    """A pandas `DataFrame.eval` expression over contract columns, e.g. `debt / income`."""
    inputs: tuple[Identifier, ...] = ()
    """Columns the expression reads (checked against the data contract)."""


class Selection(StrictModel):
    include: tuple[Identifier, ...] | None = None
    """Only these columns become features (default: every contract column but the target)."""
    exclude: tuple[Identifier, ...] = ()
    method: Literal["none", "variance", "k_best"] = "none"
    k: int | None = Field(None, ge=1)

    def violations(self) -> Iterator[Violation]:
        if self.method == "k_best" and self.k is None:
            yield Violation(("k",), "MLC311", "selection method 'k_best' needs 'k'")


class Features(StrictModel):
    target: Identifier
    """The label: a contract column, or a `derived` column (`is_late: days_late > 0`), which is
    computed before the split (stratification sees it) and is never a feature; exclude its
    source columns (`selection.exclude`), or the model is handed its label."""
    transforms: tuple[Transform, ...] = ()
    derived: tuple[Derived, ...] = ()
    selection: Selection = Selection()

    def violations(self) -> Iterator[Violation]:
        for i, t in enumerate(self.transforms):
            for v in t.violations():
                yield v.under("transforms", i)
        for v in self.selection.violations():
            yield v.under("selection")
