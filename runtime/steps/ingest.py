"""ingest: read one source (CSV, Parquet, SQL, Spark table) into a dataset artifact."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps._data import out

if TYPE_CHECKING:
    import pandas as pd

    from mlc.compiler.ir.params import IngestParams, SourceParams

STEP = "ingest"


def _read_pandas(source: SourceParams, ctx: StepContext) -> pd.DataFrame:
    import pandas as pd

    fmt = source["format"]
    if source["format"] == "csv" or source["format"] == "parquet":
        path = ctx.resolve(source["path"])
        if "://" not in path and not os.path.exists(path):
            raise StepError(
                STEP,
                f"data file not found: {path} (source '{source['name']}')",
                "check data.sources[].path; relative paths are against the spec's folder",
            )
        try:
            if source["format"] == "csv":
                return pd.read_csv(path, sep=source["delimiter"])
            return pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise StepError(STEP, f"cannot read {fmt} file {path}: {exc}") from exc
    if source["format"] == "sql":
        import sqlalchemy

        url = source["url"]
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            # Relative sqlite paths are relative to the spec's folder, like file paths.
            url = "sqlite:///" + ctx.resolve(url.removeprefix("sqlite:///"))
        try:
            engine = sqlalchemy.create_engine(url)
            with engine.connect() as conn:
                return pd.read_sql_query(sqlalchemy.text(source["query"]), conn)
        except Exception as exc:  # SQLAlchemy and DBAPI errors share no base class
            raise StepError(
                STEP,
                f"SQL source '{source['name']}' failed: {str(exc).splitlines()[0]}",
                "check data.sources[].url and query",
            ) from exc
    raise StepError(STEP, f"format '{fmt}' needs engine: spark")


def run(
    params: IngestParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Read the source in `params["source"]` and save it as the `dataset` artifact.

    Returns:
        `{"rows", "columns", "hash"}`; the hash is the sha256 of the saved Parquet bytes.
    """
    source = params["source"]
    engine = params["engine"]
    if engine == "spark":
        # Spark reads and writes the dataset itself: nothing is collected into this process.
        from mlc.runtime.spark import ingest as spark_ingest

        return spark_ingest.run(params, outputs, out(outputs, "dataset", STEP), ctx)
    df = _read_pandas(source, ctx)
    digest = artifacts.save_dataframe(
        out(outputs, "dataset", STEP), df, source=source["name"], engine=engine
    )
    return {"rows": len(df), "columns": len(df.columns), "hash": digest}
