"""ingest on the spark engine: read a source with Spark and write it as a Parquet folder."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlc.runtime.context import StepContext, StepError
from mlc.runtime.spark import frames
from mlc.runtime.spark.session import first_line, session

if TYPE_CHECKING:
    from mlc.compiler.ir.params import IngestParams, SourceParams

STEP = "ingest"


def read(spark: Any, source: SourceParams, ctx: StepContext) -> Any:
    """The source as a Spark frame; a missing table or path is a `StepError` naming it."""
    fmt = source["format"]
    try:
        if source["format"] == "spark_table":
            return spark.table(source["table"])
        if source["format"] == "csv":
            return spark.read.csv(
                ctx.resolve(source["path"]), header=True, inferSchema=True, sep=source["delimiter"]
            )
        if source["format"] == "parquet":
            return spark.read.parquet(ctx.resolve(source["path"]))
    except Exception as exc:  # pyspark raises AnalysisException and py4j errors alike
        what = source.get("table") or source.get("path")
        raise StepError(
            STEP,
            f"spark could not read source '{source['name']}' ({what}): {first_line(exc)}",
            "check data.sources[] (the table must exist in the Spark catalog)"
            if fmt == "spark_table"
            else "check data.sources[].path; relative paths are against the spec's folder",
        ) from exc
    raise StepError(
        STEP,
        f"format '{fmt}' is not read by the spark engine",
        "use engine: pandas for SQL sources",
    )


def run(
    params: IngestParams, outputs: dict[str, str], location: str, ctx: StepContext
) -> dict[str, Any]:
    source = params["source"]
    spark = session(params.get("spark"), STEP)
    sdf = read(spark, source, ctx)
    digest, rows = frames.save(location, sdf, STEP, source=source["name"])
    return {"rows": rows, "columns": len(sdf.columns), "hash": digest}
