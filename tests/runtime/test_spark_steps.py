"""The data steps on the spark engine against the pandas engine on the same data.

One local[2] SparkSession serves the module (the JVM takes ~20 s to start). Each test checks
the spark engine's answer against the pandas engine's or against an independent computation
(hashlib for the hash split, scikit-learn for the fitted transform).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support.credit_like import column
from support.runtime import complete
from support.tools import require_tool

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps import get

pytestmark = pytest.mark.slow

SPARK = {"master": "local[2]", "conf": {}}
KEY = "spark-test-key"


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    require_tool("java")
    from mlc.runtime.spark.session import session

    # Spark's catalog would otherwise make ./spark-warehouse in the working tree.
    warehouse = str(tmp_path_factory.mktemp("warehouse"))
    return session({**SPARK, "conf": {"spark.sql.warehouse.dir": warehouse}}, "test")


@pytest.fixture
def ctx(tmp_path: Path) -> StepContext:
    return StepContext(project_dir=tmp_path, secrets={"MLC_PSEUDONYM_KEY": KEY})


def _data(rows: int = 400, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    months = rng.uniform(0, 300, rows).round(1)
    months[rng.random(rows) < 0.1] = np.nan
    df = pd.DataFrame(
        {
            "id": np.arange(1000, 1000 + rows),
            "age": rng.integers(18, 90, rows),
            "income": rng.lognormal(10, 0.6, rows).round(2),
            "debt": rng.uniform(0, 5e4, rows).round(2),
            "months": months,
            "region": rng.choice(["north", "south", "east", "west"], rows),
            "grade": rng.choice([0, 1, 2], rows),
            "email": [f"user{i}@example.com" for i in range(rows)],
            "flat": np.full(rows, 5.0),
        }
    )
    df["default"] = ((df["age"] - 50) / 20 + rng.normal(0, 1, rows) > 0).astype(int)
    return df


_CONTRACT = {
    "id": column("int", unique=True),
    "age": column("int", min=18, max=100),
    "income": column("float", min=0),
    "debt": column("float", min=0),
    "months": column("float", nullable=True, min=0, max=600),
    "region": column("category", allowed=["north", "south", "east", "west"]),
    "grade": column("category", allowed=[0, 1, 2]),
    "email": column("str", pii=True, regex=r"^[^@\s]+@[^@\s]+$"),
    "flat": column("float"),
    "default": column("int", allowed=[0, 1]),
}


def _dataset(df: pd.DataFrame, loc: Path) -> dict[str, str]:
    artifacts.save_dataframe(str(loc), df)
    return {"dataset": str(loc)}


def _frame(loc: Path) -> pd.DataFrame:
    from mlc.runtime.steps._data import load_frame

    return load_frame({"x": str(loc)}, "x", "test")


# -- split ---------------------------------------------------------------------------------------


def _split(
    engine: str, method: str, df: pd.DataFrame, root: Path, ctx: StepContext, **kw: Any
) -> dict[str, Any]:
    params = complete(
        "split",
        {"method": method, "test_size": 0.25, "validation_size": 0.15, "seed": 11, **kw},
    )
    params["minimum"] = {**params["minimum"], "enforce": "warn"}
    if engine == "spark":
        params.update(engine="spark", spark=SPARK)
    outputs = {p: str(root / engine / p) for p in ("train", "validation", "test")}
    return get("split")(params, _dataset(df, root / "in"), outputs, ctx)


def test_hash_split_puts_each_key_in_the_same_part_on_both_engines(
    spark: Any, tmp_path: Path, ctx: StepContext
) -> None:
    df = _data()
    for engine in ("pandas", "spark"):
        _split(engine, "hash", df, tmp_path, ctx, key="id")

    # The assignment written out independently: sha256("<seed>:<key>"), 52 bits, thresholds.
    def part(key: int) -> str:
        u = int(hashlib.sha256(f"11:{key}".encode()).hexdigest()[:13], 16) / 16**13
        return "test" if u < 0.25 else "validation" if u < 0.4 else "train"

    expected = {
        p: {k for k in df["id"] if part(int(k)) == p} for p in ("train", "validation", "test")
    }
    for engine in ("pandas", "spark"):
        for name, ids in expected.items():
            got = _frame(tmp_path / engine / name)
            assert set(got["id"]) == ids, (engine, name)
    pd.testing.assert_frame_equal(
        _frame(tmp_path / "pandas" / "train").sort_values("id").reset_index(drop=True),
        _frame(tmp_path / "spark" / "train").sort_values("id").reset_index(drop=True),
        check_dtype=False,
    )


def test_stratified_split_in_spark_keeps_class_shares(
    spark: Any, tmp_path: Path, ctx: StepContext
) -> None:
    df = _data(rows=2000)
    summary = _split("spark", "stratified", df, tmp_path, ctx)
    parts = {p: _frame(tmp_path / "spark" / p) for p in ("train", "validation", "test")}
    assert sum(len(p) for p in parts.values()) == len(df) == sum(summary[p] for p in parts)
    ids = [set(p["id"]) for p in parts.values()]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    share = df["default"].mean()
    for name, want in (("test", 0.25), ("validation", 0.15)):
        part = parts[name]
        # Per-class cuts: each part holds its share of each class (to a few rows).
        assert abs(len(part) - want * len(df)) <= 3
        assert abs(part["default"].mean() - share) < 0.01


# -- validate ------------------------------------------------------------------------------------


def _validate(engine: str, df: pd.DataFrame, root: Path, ctx: StepContext, policy: str) -> Any:
    params = complete(
        "validate",
        {
            "contract": {"columns": _CONTRACT, "on_failure": policy},
            "engine": engine,
            "sources": ["main"],
            "join_on": {},
        },
    )
    if engine == "spark":
        params["spark"] = SPARK
    artifacts.save_dataframe(str(root / "in"), df)
    outputs = {"dataset": str(root / engine / "ds"), "report": str(root / engine / "rep")}
    return get("validate")(params, {"main": str(root / "in")}, outputs, ctx)


def _bad_data() -> pd.DataFrame:
    df = _data(rows=120)
    df.loc[3, "age"] = 7  # below min
    df.loc[5, "region"] = "mars"  # not allowed
    df.loc[8, "income"] = np.nan  # null in a non-nullable column
    df.loc[9, "id"] = df.loc[10, "id"]  # duplicate key: both rows fail
    df.loc[12, "email"] = "not-an-email"
    df.loc[14, "grade"] = 7
    return df


def test_spark_contract_quarantines_the_rows_pandas_quarantines(
    spark: Any, tmp_path: Path, ctx: StepContext
) -> None:
    df = _bad_data()
    summaries = {e: _validate(e, df, tmp_path, ctx, "quarantine") for e in ("pandas", "spark")}
    assert summaries["spark"]["rows_in"] == summaries["pandas"]["rows_in"] == 120
    assert summaries["spark"]["rows_out"] == summaries["pandas"]["rows_out"] == 113
    reports = {
        e: artifacts.load_json(str(tmp_path / e / "rep"), "report") for e in ("pandas", "spark")
    }
    assert reports["spark"]["failing_rows"] == reports["pandas"]["failing_rows"] == 7
    # The same columns fail with the same row counts (pandera's backends name checks alike).
    counts = {e: sorted((c["column"], c["count"]) for c in r["checks"]) for e, r in reports.items()}
    assert counts["spark"] == counts["pandas"]
    quarantined = {
        e: set(
            pd.read_csv(
                io.StringIO(artifacts.load_text(str(tmp_path / e / "rep"), "quarantine.csv"))
            )["id"]
        )
        for e in ("pandas", "spark")
    }
    assert (
        quarantined["spark"] == quarantined["pandas"] == set(df.loc[[3, 5, 8, 9, 10, 12, 14], "id"])
    )
    kept = {e: set(_frame(tmp_path / e / "ds")["id"]) for e in ("pandas", "spark")}
    assert kept["spark"] == kept["pandas"]


def test_spark_contract_stop_names_the_failed_checks(
    spark: Any, tmp_path: Path, ctx: StepContext
) -> None:
    with pytest.raises(StepError) as info:
        _validate("spark", _bad_data(), tmp_path, ctx, "stop")
    text = str(info.value)
    assert "data contract failed on 7 rows" in text
    assert "age:" in text and "region: value mars not in allowed [north, south, east, west]" in text


# -- features ------------------------------------------------------------------------------------

_TRANSFORMS = [
    {"op": "impute", "columns": ["months"], "strategy": "median", "fill_value": None},
    {"op": "log", "columns": ["income"], "offset": 1.0},
    {"op": "scale", "columns": ["age", "income", "ratio", "months"], "method": "standard"},
    {"op": "scale", "columns": ["debt"], "method": "robust"},
    {"op": "scale", "columns": ["flat"], "method": "minmax"},
    {"op": "bucketize", "columns": ["id"], "bins": [1100, 1200, 1300]},
    {
        "op": "one_hot",
        "columns": ["region", "grade"],
        "handle_unknown": "ignore",
        "max_categories": None,
    },
    {"op": "pseudonymise", "columns": ["email"], "key": "env:MLC_PSEUDONYM_KEY", "buckets": 64},
]


def _features_params(engine: str) -> dict[str, Any]:
    params = complete(
        "features",
        {
            "target": "default",
            "task": "classification",
            "transforms": _TRANSFORMS,
            "derived": [{"name": "ratio", "expr": "debt / income", "inputs": ["debt", "income"]}],
            "selection": {"method": "variance", "include": None, "exclude": [], "k": None},
            "dtypes": {c: col["dtype"] for c, col in _CONTRACT.items()},
            "pii": ["email"],
        },
    )
    if engine == "spark":
        params.update(engine="spark", spark=SPARK)
    return params


def test_transform_fitted_in_spark_matches_scikit_learn_on_pandas_and_spark_rows(
    spark: Any, tmp_path: Path, ctx: StepContext
) -> None:
    from mlc.runtime.spark import frames
    from mlc.runtime.spark.transform import FittedPlan, apply_spark
    from mlc.runtime.steps._data import bind_secrets
    from mlc.runtime.steps.features import build_transform

    df = _data()
    df["grade"] = df["grade"].astype(str)  # category text, as validate leaves it
    train, rows = df.iloc[:300], df.iloc[300:].drop(columns=["default"])
    frames.save(str(tmp_path / "train"), spark.createDataFrame(train), "test")
    get("features")(
        _features_params("spark"),
        {"train": str(tmp_path / "train")},
        {"transform": str(tmp_path / "t")},
        ctx,
    )
    fitted = artifacts.load_object(str(tmp_path / "t"))
    assert isinstance(fitted, FittedPlan)
    bind_secrets(fitted, ctx)

    reference = build_transform(
        _features_params("pandas"), list(train.columns.drop("default")), ctx
    )
    expected = reference.fit_transform(train.drop(columns=["default"]), train["default"])
    assert list(fitted.get_feature_names_out()) == list(reference.get_feature_names_out())
    assert "flat" not in fitted.get_feature_names_out()  # no variance: selected out
    got_pandas = fitted.transform(rows)
    np.testing.assert_allclose(got_pandas, reference.transform(rows), rtol=0, atol=1e-9)
    assert expected.shape[1] == got_pandas.shape[1]

    sdf = spark.createDataFrame(
        rows.assign(months=rows["months"].astype(object).where(rows["months"].notna(), None))
    )
    got_spark = apply_spark(fitted, sdf).toPandas()
    assert list(got_spark.columns) == list(reference.get_feature_names_out())
    np.testing.assert_allclose(
        got_spark.to_numpy(dtype=float), reference.transform(rows), rtol=0, atol=1e-9
    )


def test_spark_data_steps_never_collect_the_dataset(
    spark: Any, tmp_path: Path, ctx: StepContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyspark.sql import DataFrame

    def refuse(self: Any) -> Any:
        raise AssertionError("toPandas() on the spark engine")

    monkeypatch.setattr(DataFrame, "toPandas", refuse)
    df = _data()
    df.to_csv(tmp_path / "apps.csv", index=False)
    source = {"name": "main", "format": "csv", "path": "apps.csv", "delimiter": ",", "join_on": []}
    summary = get("ingest")(
        complete("ingest", {"source": source, "engine": "spark", "spark": SPARK}),
        {},
        {"dataset": str(tmp_path / "raw")},
        ctx,
    )
    assert summary["rows"] == len(df)
    assert artifacts.read_meta(str(tmp_path / "raw"))["layout"] == "spark-parquet"
    assert (tmp_path / "raw" / "data.parquet").is_dir()
    got = _frame(tmp_path / "raw")
    assert got["income"].sum() == pytest.approx(df["income"].sum())
    contract = {c: col for c, col in _CONTRACT.items()}
    validated = get("validate")(
        complete(
            "validate",
            {
                "contract": {"columns": contract, "on_failure": "quarantine"},
                "engine": "spark",
                "sources": ["main"],
                "join_on": {},
                "spark": SPARK,
            },
        ),
        {"main": str(tmp_path / "raw")},
        {"dataset": str(tmp_path / "ok"), "report": str(tmp_path / "rep")},
        ctx,
    )
    assert validated["rows_out"] == len(df)
    params = complete("split", {"method": "hash", "key": "id", "engine": "spark", "spark": SPARK})
    parts = {p: str(tmp_path / p) for p in ("train", "test")}
    split = get("split")(params, {"dataset": str(tmp_path / "ok")}, parts, ctx)
    assert split["train"] + split["test"] == len(df)
    features = get("features")(
        _features_params("spark"),
        {"train": parts["train"]},
        {"transform": str(tmp_path / "t")},
        ctx,
    )
    from mlc.runtime.steps.features import build_transform

    train = _frame(tmp_path / "train")
    reference = build_transform(
        _features_params("pandas"), list(train.columns.drop("default")), ctx
    )
    reference.fit(train.drop(columns=["default"]), train["default"])
    fitted = artifacts.load_object(str(tmp_path / "t"))
    assert features["features_out"] == len(reference.get_feature_names_out())
    assert list(fitted.get_feature_names_out()) == list(reference.get_feature_names_out())


def test_spark_content_hash_ignores_partitioning(spark: Any) -> None:
    from mlc.runtime.spark.frames import content_hash

    df = spark.createDataFrame(_data(rows=50))
    one, n = content_hash(df.coalesce(1))
    many, m = content_hash(df.repartition(5).orderBy("age"))
    changed, _ = content_hash(df.limit(49))
    assert one == many and n == m == 50 and changed != one


def test_missing_table_and_path_name_the_source_and_sparks_message(
    spark: Any, tmp_path: Path, ctx: StepContext
) -> None:
    cases = [
        (
            {"name": "apps", "format": "spark_table", "table": "warehouse.nowhere", "join_on": []},
            "warehouse.nowhere",
        ),
        (
            {
                "name": "apps",
                "format": "csv",
                "path": "missing.csv",
                "delimiter": ",",
                "join_on": [],
            },
            "missing.csv",
        ),
    ]
    for source, named in cases:
        with pytest.raises(StepError) as info:
            get("ingest")(
                complete("ingest", {"source": source, "engine": "spark", "spark": SPARK}),
                {},
                {"dataset": str(tmp_path / "x")},
                ctx,
            )
        text = str(info.value)
        assert "source 'apps'" in text and named in text
        assert "NOT_FOUND" in text or "not found" in text.lower() or "does not exist" in text


def test_a_training_sample_reads_the_drawn_rows_of_a_spark_split(
    spark: Any, tmp_path: Path, ctx: StepContext
) -> None:
    """`training.sample` on a Spark-written split: the rows numpy's generator draws (seeded,
    in file order), read without the rest; the whole split below the sample size."""
    from mlc.runtime.spark import frames
    from mlc.runtime.steps._data import load_sample

    df = _data(rows=400)[["age", "income", "debt", "grade"]]
    frames.save(str(tmp_path / "train"), spark.createDataFrame(df).repartition(3), "test")
    full = pd.read_parquet(frames.data_path(str(tmp_path / "train")))
    inputs = {"train": str(tmp_path / "train")}
    got, info = load_sample(inputs, "train", "train", 50, 11)
    picked = np.sort(np.random.default_rng(11).choice(400, 50, replace=False))
    pd.testing.assert_frame_equal(got, full.iloc[picked].reset_index(drop=True))
    assert info == {"rows": 50, "of": 400, "seed": 11}
    whole, info = load_sample(inputs, "train", "train", 1000, 11)
    assert len(whole) == 400 and info == {"rows": 400, "of": 400, "seed": 11}
    assert load_sample(inputs, "train", "train", None, 11)[1] is None

    # the train step fits on the sample and says so
    fitted = complete(
        "features",
        {
            "target": "grade",
            "task": "classification",
            "transforms": [{"op": "scale", "columns": ["age", "income"], "method": "standard"}],
            "derived": [],
            "selection": {"method": "none", "include": None, "exclude": [], "k": None},
            "pii": [],
        },
    )
    get("features")(fitted, inputs, {"transform": str(tmp_path / "t")}, ctx)
    params = complete(
        "train",
        {
            "framework": "sklearn",
            "task": "classification",
            "target": "grade",
            "model": {"name": "LogisticRegression", "params": {"max_iter": 200}},
            "seed": 11,
            "sample": 50,
        },
    )
    summary = get("train")(
        params,
        {**inputs, "transform": str(tmp_path / "t")},
        {"model": str(tmp_path / "m")},
        ctx,
    )
    assert summary["rows"] == 50 and summary["sample"] == {"rows": 50, "of": 400, "seed": 11}
