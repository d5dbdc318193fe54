"""framework spark_ml: MLlib estimators fitted in Spark, saved as numpy copies in the usual
Pipeline; the copy's predictions on pandas rows are MLlib's own on the same rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from support.credit_like import frame
from support.runtime import complete
from support.tools import require_tool

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps import get

pytestmark = pytest.mark.slow

SPARK = {"master": "local[2]", "conf": {}}
_TRANSFORMS = [
    {"op": "log", "columns": ["income"], "offset": 1.0},
    {"op": "scale", "columns": ["age", "income"], "method": "standard"},
    {"op": "one_hot", "columns": ["region"], "handle_unknown": "ignore", "max_categories": None},
]


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    require_tool("java")
    from mlc.runtime.spark.session import session

    # Spark's catalog would otherwise make ./spark-warehouse in the working tree.
    warehouse = str(tmp_path_factory.mktemp("warehouse"))
    return session({**SPARK, "conf": {"spark.sql.warehouse.dir": warehouse}}, "test")


@pytest.fixture(scope="module")
def fitted(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from mlc.runtime.spark import frames

    root = tmp_path_factory.mktemp("mllib")
    df = frame(seed=5, rows=600).drop(columns=["purpose"])
    df["amount"] = (
        df["income"] * 0.1 + df["age"] * 3.0 + np.random.default_rng(1).normal(0, 50, len(df))
    )
    train, test = df.iloc[:450].reset_index(drop=True), df.iloc[450:].reset_index(drop=True)
    frames.save(str(root / "train"), spark.createDataFrame(train), "test")
    ctx = StepContext(project_dir=root)
    for task, target in (("classification", "default"), ("regression", "amount")):
        other = "amount" if target == "default" else "default"
        frames.save(
            str(root / f"train-{task}"), spark.createDataFrame(train.drop(columns=[other])), "test"
        )
        params = complete(
            "features",
            {
                "target": target,
                "task": task,
                "transforms": _TRANSFORMS,
                "derived": [],
                "selection": {"method": "none", "include": None, "exclude": [], "k": None},
                "pii": [],
                "engine": "spark",
                "spark": SPARK,
            },
        )
        get("features")(
            params,
            {"train": str(root / f"train-{task}")},
            {"transform": str(root / f"t-{task}")},
            ctx,
        )
    return {"root": root, "ctx": ctx, "train": train, "test": test}


def _train(
    fitted: dict[str, Any], task: str, name: str, model_params: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    root = fitted["root"]
    target = "default" if task == "classification" else "amount"
    params = complete(
        "train",
        {
            "framework": "spark_ml",
            "task": task,
            "target": target,
            "model": {"name": name, "params": model_params},
            "seed": 3,
        },
    )
    where = root / f"m-{task}-{name}"
    summary = get("train")(
        params,
        {"train": str(root / f"train-{task}"), "transform": str(root / f"t-{task}")},
        {"model": str(where)},
        fitted["ctx"],
    )
    return artifacts.load_object(str(where)), summary


def _mllib_reference(
    spark: Any, fitted: dict[str, Any], task: str, cls: Any, params: dict[str, Any]
) -> np.ndarray:
    """MLlib's own predictions on the test rows, by a model the test fits itself."""
    from pyspark.ml.feature import VectorAssembler

    from mlc.runtime.spark.transform import apply_spark

    target = "default" if task == "classification" else "amount"
    transform = artifacts.load_object(str(fitted["root"] / f"t-{task}"))
    other = "amount" if target == "default" else "default"
    train = spark.read.parquet(str(fitted["root"] / f"train-{task}" / "data.parquet"))
    rows = apply_spark(transform, train, carry=(target,))
    names = [c for c in rows.columns if c != target]
    assembler = VectorAssembler(inputCols=names, outputCol="f")
    est = cls(featuresCol="f", labelCol=target, **params)
    model = est.fit(assembler.transform(rows.withColumn(target, rows[target].cast("double"))))
    test = spark.createDataFrame(fitted["test"].drop(columns=[other]))
    scored = model.transform(
        assembler.transform(apply_spark(transform, test, carry=(target,)))
    ).toPandas()
    if task == "classification":
        return np.stack(scored["probability"].map(lambda v: v.toArray()).to_numpy())
    return scored["prediction"].to_numpy()


@pytest.mark.parametrize(
    ("task", "name", "cls_name", "params"),
    [
        (
            "classification",
            "LogisticRegression",
            "LogisticRegression",
            {"maxIter": 20, "regParam": 0.01},
        ),
        (
            "classification",
            "RandomForest",
            "RandomForestClassifier",
            {"numTrees": 5, "maxDepth": 4},
        ),
        ("classification", "GBT", "GBTClassifier", {"maxIter": 5, "maxDepth": 3}),
        ("regression", "LinearRegression", "LinearRegression", {"maxIter": 20}),
        ("regression", "RandomForest", "RandomForestRegressor", {"numTrees": 5, "maxDepth": 4}),
        ("regression", "GBT", "GBTRegressor", {"maxIter": 5, "maxDepth": 3}),
    ],
)
def test_spark_ml_model_scores_pandas_rows_as_mllib_does(
    spark: Any, fitted: dict[str, Any], task: str, name: str, cls_name: str, params: dict[str, Any]
) -> None:
    import importlib

    pipeline, summary = _train(fitted, task, name, params)
    assert summary["framework"] == "spark_ml" and summary["model"] == cls_name
    module = importlib.import_module(
        f"pyspark.ml.{'classification' if task == 'classification' else 'regression'}"
    )
    seeded = (
        {**params, "seed": 3}
        if "seed" in {p.name for p in getattr(module, cls_name)().params}
        else params
    )
    want = _mllib_reference(spark, fitted, task, getattr(module, cls_name), seeded)
    rows = fitted["test"].drop(columns=["default", "amount"])
    if task == "classification":
        np.testing.assert_allclose(pipeline.predict_proba(rows), want, rtol=0, atol=1e-9)
        assert set(pipeline.predict(rows)) <= {0, 1}
    else:
        np.testing.assert_allclose(pipeline.predict(rows), want, rtol=1e-9, atol=1e-9)


def test_spark_ml_bad_model_and_params_name_the_problem(fitted: dict[str, Any]) -> None:
    with pytest.raises(StepError, match="unknown spark_ml model 'Forest'"):
        _train(fitted, "classification", "Forest", {})
    with pytest.raises(StepError, match="has no parameter"):
        _train(fitted, "classification", "GBT", {"trees": 3})
    with pytest.raises(StepError, match="does not do regression"):
        _train(fitted, "regression", "LogisticRegression", {})


def test_spark_ml_model_pickles_without_spark(fitted: dict[str, Any]) -> None:
    import json
    import pickle
    import subprocess
    import sys

    pipeline, _ = _train(fitted, "classification", "GBT", {"maxIter": 3, "maxDepth": 2})
    path = fitted["root"] / "gbt.pkl"
    path.write_bytes(pickle.dumps(pipeline))
    rows = fitted["test"].drop(columns=["default", "amount"]).head(5)
    rows_path = fitted["root"] / "rows.parquet"
    rows.to_parquet(rows_path)
    code = (
        "import json, pickle, sys, pandas as pd\n"
        "sys.modules['pyspark'] = None\n"  # importing pyspark would fail here
        f"m = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        f"print(json.dumps(m.predict_proba(pd.read_parquet({str(rows_path)!r})).tolist()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    got = np.asarray(json.loads(out.stdout))
    np.testing.assert_allclose(got, pipeline.predict_proba(rows), rtol=0, atol=1e-12)
    assert isinstance(pd.DataFrame(got), pd.DataFrame)
