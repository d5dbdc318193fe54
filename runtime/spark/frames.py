"""Dataset artifacts written and read by Spark: a Parquet folder plus the usual `_meta.json`.

The folder is named `data.parquet` like the pandas engine's file, so pandas (pyarrow) and Spark
read either layout. The content hash is computed by Spark too: the sha256 of the schema, the
row count and the sum of every row's xxhash64, which does not depend on how rows are
partitioned or ordered, so the same data hashes the same whatever wrote it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepError

DATA = "data.parquet"
LAYOUT = "spark-parquet"


def data_path(location: str) -> str:
    return f"{location.rstrip('/')}/{DATA}"


def is_spark_layout(location: str) -> bool:
    """True when the dataset at `location` was written by Spark (a Parquet folder)."""
    try:
        return artifacts.read_meta(location).get("layout") == LAYOUT
    except (OSError, ValueError):
        return False


def content_hash(sdf: Any) -> tuple[str, int]:
    """`(sha256, rows)` of a Spark frame, independent of partitioning and row order."""
    from pyspark.sql import functions as F

    cols = [F.col(f"`{c}`") for c in sdf.columns]
    row = sdf.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(F.xxhash64(*cols).cast("decimal(38,0)")).alias("h") if cols else F.lit(0),
    ).collect()[0]
    rows = int(row["n"])
    body = json.dumps(
        {"schema": sdf.schema.simpleString(), "rows": rows, "sum": str(row["h"] or 0)},
        sort_keys=True,
    )
    return hashlib.sha256(body.encode()).hexdigest(), rows


def save(location: str, sdf: Any, step: str, **fields: Any) -> tuple[str, int]:
    """Write `sdf` as the dataset artifact at `location`; return `(hash, rows)`."""
    try:
        sdf.write.mode("overwrite").parquet(data_path(location))
    except Exception as exc:  # py4j errors
        from mlc.runtime.spark.session import first_line

        raise StepError(
            step, f"spark could not write {data_path(location)}: {first_line(exc)}"
        ) from exc
    written = sdf.sparkSession.read.parquet(data_path(location))
    digest, rows = content_hash(written)
    artifacts.write_meta(
        location,
        "dataset",
        digest,
        rows=rows,
        columns=list(map(str, sdf.columns)),
        layout=LAYOUT,
        engine="spark",
        **fields,
    )
    return digest, rows


def load(spark: Any, inputs: dict[str, str], name: str, step: str) -> Any:
    """The Spark frame of dataset input `name` (either engine's layout)."""
    from mlc.runtime.steps._data import need

    loc = need(inputs, name, step)
    if not artifacts.exists(loc):
        raise StepError(
            step,
            f"input '{name}' at {loc} is not a complete artifact",
            "run the producing step first",
        )
    return spark.read.parquet(data_path(loc))


def load_pandas(location: str) -> Any:
    """A Spark-written dataset as one pandas frame (for steps that train on it)."""
    import pandas as pd

    return pd.read_parquet(data_path(location))
