"""split on the spark engine: the parts are assigned and written by Spark.

Random and stratified splits place each row by a seeded hash of its content (`xxhash64` of
every column), cut at the requested shares by `percentile_approx` (per class when stratified),
so no step sorts the whole table into one partition; a `hash` split places rows by their key
exactly as the pandas engine does (`keys`). Part sizes follow the requested shares to within
the quantile's accuracy (1e-5 of the rows), not to the row as scikit-learn's counts do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlc.runtime.context import StepContext, StepError
from mlc.runtime.spark import frames, keys
from mlc.runtime.spark.session import first_line, session
from mlc.runtime.steps._data import out

if TYPE_CHECKING:
    from mlc.compiler.ir.params import SplitParams

STEP = "split"
PART = "_mlc_part"
_U = "_mlc_u"
_BITS = 2**52
_ACCURACY = 100_000


class _Column:
    """Counts of one column's values, answering what `split.shortfalls` asks of a Series."""

    def __init__(self, counts: dict[Any, int]) -> None:
        self.counts = counts

    def value_counts(self, dropna: bool = False) -> dict[Any, int]:
        return self.counts

    def dropna(self) -> _Column:
        return _Column({k: n for k, n in self.counts.items() if k is not None})

    def unique(self) -> Any:
        import numpy as np

        return np.asarray(list(self.counts), dtype=object)


class _Counted:
    """A part as row and value counts, in place of its frame for `split.shortfalls`."""

    def __init__(self, rows: int, counts: dict[str, dict[Any, int]]) -> None:
        self.rows = rows
        self.counts = counts
        self.columns = list(counts)

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, column: str) -> _Column:
        return _Column(self.counts[column])


def _derive_target(sdf: Any, derived: Any) -> Any:
    from pyspark.sql import functions as F

    name, expr = derived["name"], derived["expr"]
    try:
        values = F.expr(expr)
        sdf = sdf.withColumn(name, values)
        if dict(sdf.dtypes)[name] == "boolean":
            # A condition becomes 0/1 labels, as on the pandas engine.
            sdf = sdf.withColumn(name, F.col(name).cast("bigint"))
    except Exception as exc:  # analysis errors of the expression
        raise StepError(
            STEP,
            f"cannot compute the derived target '{name}' = {expr} in Spark SQL: {first_line(exc)}",
            "on the spark engine features.derived[].expr must be valid in pandas and Spark SQL",
        ) from exc
    return sdf


def _content_fraction(sdf: Any, seed: int) -> Any:
    from pyspark.sql import functions as F

    cols = [F.col(f"`{c}`") for c in sdf.columns]
    h = F.xxhash64(F.lit(seed), *cols)
    return h.bitwiseAND(F.lit(_BITS - 1)).cast("double") / F.lit(float(_BITS))


def assign(sdf: Any, params: SplitParams) -> Any:
    """`sdf` with the part of each row in column `_mlc_part` (train / validation / test)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    method = params["method"]
    test_size, val_size, seed = params["test_size"], params["validation_size"], params["seed"]
    held_out = round(test_size + val_size, 9)
    if method == "time":
        col = params["time_column"]
        if not col or col not in sdf.columns:
            raise StepError(STEP, f"time column '{col}' is not in the data")
        n = sdf.count()
        n_train = round(n * (1 - held_out))
        n_val = round(n * val_size)
        # File order breaks ties, as the pandas engine's stable sort does.
        order = Window.orderBy(F.col(f"`{col}`"), F.col("_mlc_order"))
        rank = F.row_number().over(order)
        ranked = sdf.withColumn("_mlc_order", F.monotonically_increasing_id())
        ranked = ranked.withColumn(
            PART,
            F.when(rank <= n_train, "train")
            .when(rank <= n_train + n_val, "validation")
            .otherwise("test"),
        )
        return ranked.drop("_mlc_order")
    if method == "hash":
        key = params.get("key")
        if not key or key not in sdf.columns:
            raise StepError(STEP, f"hash key column '{key}' is not in the data")
        if sdf.where(F.col(f"`{key}`").isNull()).limit(1).count():
            raise StepError(STEP, f"hash key column '{key}' has missing values")
        u = keys.spark_fraction(F.col(f"`{key}`"), seed)
        return sdf.withColumn(
            PART,
            F.when(u < F.lit(test_size), "test")
            .when(u < F.lit(held_out), "validation")
            .otherwise("train"),
        )
    group = None
    if method == "stratified":
        group = params["stratify_by"] or params["target"]
        if group not in sdf.columns:
            raise StepError(STEP, f"stratify column '{group}' is not in the data")
    with_u = sdf.withColumn(_U, _content_fraction(sdf, seed))
    cuts = F.percentile_approx(F.col(_U), F.array(F.lit(test_size), F.lit(held_out)), _ACCURACY)
    if group is None:
        row = with_u.agg(cuts.alias("q")).collect()[0]
        q = row["q"] or [0.0, 0.0]
        test_cut, held_cut = F.lit(q[0]), F.lit(q[1])
        joined = with_u
    else:
        g = F.col(f"`{group}`")
        quantiles = with_u.groupBy(g.alias("_mlc_g")).agg(cuts.alias("_mlc_q"))
        joined = with_u.join(
            F.broadcast(quantiles), with_u[f"`{group}`"].eqNullSafe(quantiles["_mlc_g"]), "left"
        )
        test_cut, held_cut = F.col("_mlc_q")[0], F.col("_mlc_q")[1]
    u = F.col(_U)
    part = F.when(u < test_cut, "test")
    if val_size:
        part = part.when(u < held_cut, "validation")
    parted = joined.withColumn(PART, part.otherwise("train"))
    return parted.select(*sdf.columns, PART)


def _counts(
    sdf: Any, columns: list[str]
) -> tuple[dict[str, int], dict[str, dict[str, dict[Any, int]]]]:
    """Rows per part, and per part the value counts of `columns`."""
    from pyspark.sql import functions as F

    rows = {r[PART]: int(r["count"]) for r in sdf.groupBy(PART).count().collect()}
    values: dict[str, dict[str, dict[Any, int]]] = {p: {} for p in rows}
    for column in columns:
        for p in values:
            values[p][column] = {}
        for r in sdf.groupBy(PART, F.col(f"`{column}`").alias("_v")).count().collect():
            values[r[PART]][column][r["_v"]] = int(r["count"])
    return rows, values


def run(
    params: SplitParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    from mlc.runtime.steps.split import shortfalls

    spark = session(params.get("spark"), STEP)
    sdf = frames.load(spark, inputs, "dataset", STEP)
    if "derived_target" in params:
        sdf = _derive_target(sdf, params["derived_target"])
    try:
        parted = assign(sdf, params).cache()
        counted = [
            c for c in [params["target"], *params["sensitive_attributes"]] if c in sdf.columns
        ]
        if params["task"] != "classification":
            counted = [c for c in counted if c != params["target"]]
        rows, values = _counts(parted, counted)
    except StepError:
        raise
    except Exception as exc:  # py4j and analysis errors
        raise StepError(STEP, f"spark failed splitting the data: {first_line(exc)}") from exc
    total = sum(rows.values())
    names = ["train", "test"] + (["validation"] if params["validation_size"] else [])
    parts = {
        name: _Counted(rows.get(name, 0), values.get(name, {c: {} for c in counted}))
        for name in names
    }
    whole_counts: dict[str, dict[Any, int]] = {c: {} for c in counted}
    for part in parts.values():
        for c in counted:
            for v, n in part.counts[c].items():
                whole_counts[c][v] = whole_counts[c].get(v, 0) + n
    whole = _Counted(total, whole_counts)
    for name, part in parts.items():
        if len(part) == 0:
            raise StepError(STEP, f"the {name} split is empty ({total} rows in total)")
    short = shortfalls(parts, whole, params)  # counts stand in for the frames
    if short and params["minimum"]["enforce"] == "error":
        parted.unpersist()
        raise StepError(
            STEP,
            f"too little data ({total} rows):\n  - " + "\n  - ".join(short),
            "add data, or lower data.split.minimum (or set data.split.minimum.enforce: warn)",
        )
    for line in short:
        ctx.logger.warning("step 'split': %s", line)
    summary: dict[str, Any] = {"method": params["method"], "engine": "spark"}
    if short:
        summary["shortfalls"] = short
    from pyspark.sql import functions as F

    for name in names:
        part_df = parted.where(F.col(PART) == name).drop(PART)
        frames.save(out(outputs, name, STEP), part_df, STEP, split=name, seed=params["seed"])
        summary[name] = rows.get(name, 0)
    parted.unpersist()
    return summary
