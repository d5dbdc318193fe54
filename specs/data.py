"""The `data` section: sources, the data contract, the split and dataset versioning."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field

from mlc.specs._base import SEED_MAX, Identifier, StrictModel, Violation

Engine = Literal["pandas", "spark"]
DType = Literal["int", "float", "str", "bool", "category", "datetime"]


class _Source(StrictModel):
    name: Identifier = "main"
    """Name of the source; the first source is the training table, others are joined to it."""
    join_on: tuple[Identifier, ...] = ()
    """Columns to join this source to the first one on (not used for the first source)."""


class CsvSource(_Source):
    format: Literal["csv"]
    path: str
    """Path relative to the spec file, or an fsspec URL (`s3://…`, `gs://…`)."""
    delimiter: str = ","


class ParquetSource(_Source):
    format: Literal["parquet"]
    path: str


class SqlSource(_Source):
    format: Literal["sql"]
    url: str
    """SQLAlchemy URL, e.g. `sqlite:///data/app.db`; put passwords in `security.secrets`."""
    query: str


class SparkTableSource(_Source):
    format: Literal["spark_table"]
    table: str
    """A table in the Spark catalog, e.g. `warehouse.applications`."""


Source = Annotated[
    CsvSource | ParquetSource | SqlSource | SparkTableSource, Field(discriminator="format")
]


class Column(StrictModel):
    """The contract for one column."""

    dtype: DType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[str | int | float | bool, ...] | None = None
    """The only values the column may hold."""
    unique: bool = False
    regex: str | None = None
    pii: bool = False
    """Personal data: may become a feature only when pseudonymised."""
    description: str = ""

    def violations(self) -> Iterator[Violation]:
        if self.min is not None and self.max is not None and self.min > self.max:
            yield Violation(
                ("min",), "MLC301", f"min ({self.min}) is greater than max ({self.max})"
            )
        numeric = self.dtype in ("int", "float")
        for bound in ("min", "max"):
            if getattr(self, bound) is not None and not numeric:
                yield Violation(
                    (bound,),
                    "MLC302",
                    f"'{bound}' applies to numeric columns, not dtype '{self.dtype}'",
                    "remove it, or use 'allowed' for categories",
                )
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                yield Violation(("regex",), "MLC303", f"invalid regular expression: {exc}")


class Contract(StrictModel):
    columns: dict[Identifier, Column] = Field(min_length=1)
    on_failure: Literal["stop", "quarantine", "warn"] = "stop"
    """`stop` the run, `quarantine` failing rows and go on, or only `warn`."""

    def violations(self) -> Iterator[Violation]:
        for name, column in self.columns.items():
            for v in column.violations():
                yield v.under("columns", name)


class SplitMinimum(StrictModel):
    """The least data each part of the split must hold before a model is trained and judged.

    The defaults are the usual rules of thumb: about 30 observations before a mean or a rate
    (a gate's accuracy, an RMSE) is roughly normal and its interval is narrower than the gaps
    gates tell apart (at 30 rows an accuracy of 0.8 is still +/-0.14 at 95%); 5 per class,
    the least expected count the chi-square rule accepts, so a per-class rate is not decided
    by one row; 20 per sensitive group, below which one row moves a group's selection rate by
    more than 5 points, half a typical fairness threshold of 0.1.
    """

    train_rows: int = Field(30, ge=1)
    """Rows the train split needs."""
    validation_rows: int = Field(20, ge=1)
    """Rows the validation split needs (when `validation_size` > 0)."""
    test_rows: int = Field(30, ge=1)
    """Rows the test split needs for its metrics and gates to mean anything."""
    per_class: int = Field(5, ge=1)
    """Rows each class needs in train, in test and in each tuning cross-validation fold
    (classification)."""
    per_group: int = Field(20, ge=1)
    """Test rows each group of each sensitive attribute needs (governance.fairness)."""
    enforce: Literal["error", "warn"] = "error"
    """`error` stops the run at the split on any shortfall; `warn` reports it and goes on."""


class Split(StrictModel):
    method: Literal["random", "stratified", "time", "hash"] = "random"
    """`hash` puts each row by a stable hash of its `key` column, so every engine (and every
    run) computes the same parts."""
    test_size: float = Field(0.2, gt=0, lt=1)
    validation_size: float = Field(0.0, ge=0, lt=1)
    seed: int = Field(42, ge=0, le=SEED_MAX)
    stratify_by: Identifier | None = None
    """Column to stratify on; defaults to the target column."""
    time_column: Identifier | None = None
    """Column that orders rows for a time-based split (required for `method: time`)."""
    key: Identifier | None = None
    """Key column whose hash assigns each row to a part (required for `method: hash`)."""
    minimum: SplitMinimum = SplitMinimum()
    """Minimum rows per split, per class and per sensitive group, checked before training."""

    def violations(self) -> Iterator[Violation]:
        if self.method == "time" and self.time_column is None:
            yield Violation(
                ("time_column",),
                "MLC304",
                "a time-based split needs 'time_column'",
                "name the datetime column that orders the rows",
            )
        if self.method == "hash" and self.key is None:
            yield Violation(
                ("key",),
                "MLC314",
                "a hash split needs 'key'",
                "name a column that identifies each row, e.g. the customer id",
            )
        if self.test_size + self.validation_size >= 1:
            yield Violation(
                ("validation_size",),
                "MLC305",
                "test_size + validation_size must leave rows for training (sum < 1)",
            )


class Versioning(StrictModel):
    strategy: Literal["content_hash", "snapshot", "none"] = "content_hash"
    """`content_hash` names each dataset version by its sha256; `snapshot` also copies it."""
    keep: int = Field(10, ge=1, le=100)
    """How many versions to keep (at most 100: S3 lifecycle rules keep no more newer
    noncurrent versions)."""


class SparkSettings(StrictModel):
    """Where and how the spark engine runs.

    The environment variable `MLC_SPARK_MASTER`, when set, overrides `master` (a cluster
    launcher points the same spec at its own master); `conf` always applies.
    """

    master: str = "local[1]"
    """Spark master URL: `local[N]`, `spark://host:7077`, `k8s://…`, `yarn`."""
    conf: dict[str, str] = {}
    """Spark configuration, e.g. `{spark.executor.memory: 4g}`."""


class Data(StrictModel):
    engine: Engine = "pandas"
    spark: SparkSettings | None = None
    """Spark settings for `engine: spark`."""
    sources: tuple[Source, ...] = Field(min_length=1)
    contract: Contract
    split: Split = Split()
    versioning: Versioning = Versioning()

    def violations(self) -> Iterator[Violation]:
        seen: set[str] = set()
        for i, source in enumerate(self.sources):
            if source.name in seen:
                yield Violation(
                    ("sources", i, "name"), "MLC306", f"duplicate source name '{source.name}'"
                )
            seen.add(source.name)
            if i > 0 and not source.join_on:
                yield Violation(
                    ("sources", i),
                    "MLC307",
                    f"source '{source.name}' is not the first source and has no 'join_on'",
                    "list the key columns that join it to the first source",
                )
            for j, col in enumerate(source.join_on):
                if col not in self.contract.columns:
                    yield Violation(
                        ("sources", i, "join_on", j),
                        "MLC201",
                        f"join column '{col}' is not in the data contract",
                    )
            if isinstance(source, SparkTableSource) and self.engine != "spark":
                yield Violation(
                    ("sources", i, "format"),
                    "MLC308",
                    "a spark_table source needs 'engine: spark'",
                )
        if self.spark is not None and self.engine != "spark":
            yield Violation(
                ("spark",),
                "MLC313",
                "'data.spark' is set but the engine is not spark",
                "set 'engine: spark', or remove 'spark'",
            )
        for col_field in ("stratify_by", "time_column", "key"):
            col = getattr(self.split, col_field)
            if col is not None and col not in self.contract.columns:
                yield Violation(
                    ("split", col_field), "MLC201", f"column '{col}' is not in the data contract"
                )
        if self.split.time_column is not None:
            column = self.contract.columns.get(self.split.time_column)
            if column is not None and column.dtype != "datetime":
                yield Violation(
                    ("split", "time_column"),
                    "MLC309",
                    f"time column '{self.split.time_column}' has dtype '{column.dtype}', "
                    "not 'datetime'",
                )
        if self.split.key is not None:
            key = self.contract.columns.get(self.split.key)
            if key is not None and (key.dtype not in ("int", "str", "category") or key.nullable):
                yield Violation(
                    ("split", "key"),
                    "MLC315",
                    f"hash key column '{self.split.key}' must be a non-nullable int, str or "
                    f"category column (it is {'nullable ' if key.nullable else ''}{key.dtype})",
                    "both engines hash the key's text form, which only these dtypes spell alike",
                )
        for v in self.contract.violations():
            yield v.under("contract")
        for v in self.split.violations():
            yield v.under("split")
