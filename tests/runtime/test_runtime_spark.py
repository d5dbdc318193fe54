"""ingest with `engine: spark`: pyspark local[1] reads CSV and catalog tables into a dataset
(a Parquet folder written by Spark, which the pandas steps read too)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from support import CREDIT
from support.runtime import complete

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext
from mlc.runtime.steps import get
from mlc.runtime.steps._data import load_frame


@pytest.mark.slow
def test_spark_ingest_csv_and_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    # A JVM started here puts Spark's catalog warehouse in the working directory.
    monkeypatch.chdir(tmp_path)
    from mlc.runtime.spark.session import session

    ctx = StepContext(project_dir=CREDIT.parent)
    source = {
        "name": "applications",
        "format": "csv",
        "path": "data/applications.csv",
        "delimiter": ",",
        "join_on": [],
    }
    summary = get("ingest")(
        complete("ingest", {"source": source, "engine": "spark"}),
        {},
        {"dataset": str(tmp_path / "csv")},
        ctx,
    )
    assert summary["rows"] == 2000 and summary["columns"] == 11
    expected = pd.read_csv(CREDIT.parent / "data" / "applications.csv")
    assert artifacts.read_meta(str(tmp_path / "csv"))["layout"] == "spark-parquet"
    got = load_frame({"dataset": str(tmp_path / "csv")}, "dataset", "test")
    assert got["income"].sum() == pytest.approx(expected["income"].sum())

    spark = session(None, "ingest")
    spark.createDataFrame(expected.head(30)).createOrReplaceTempView("applications_view")
    table = {"name": "t", "format": "spark_table", "table": "applications_view", "join_on": []}
    summary = get("ingest")(
        complete("ingest", {"source": table, "engine": "spark"}),
        {},
        {"dataset": str(tmp_path / "tbl")},
        ctx,
    )
    assert summary["rows"] == 30
