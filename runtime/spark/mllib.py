"""train with `framework: spark_ml`: a Spark MLlib estimator fitted on the Spark train split.

The features are the `FittedPlan` applied as Spark SQL (`transform.apply_spark`), so MLlib
sees exactly the matrix serving computes from pandas rows. The fitted model is copied into a
numpy estimator (`mllib_model`) and saved in the same scikit-learn `Pipeline` as every other
framework, so that evaluation, registration (MLflow) and serving need neither Spark nor a
flavour of their own; the copy's predictions are checked against MLlib's on the train rows.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.spark import frames
from mlc.runtime.spark.session import first_line, session
from mlc.runtime.steps._data import bind_secrets, need, out

if TYPE_CHECKING:
    from mlc.compiler.ir.params import TrainParams

STEP = "train"
# spec name -> (pyspark.ml class for classification, for regression, kind)
MODELS = {
    "LogisticRegression": ("LogisticRegression", None, "logistic"),
    "LinearRegression": (None, "LinearRegression", "linear"),
    "RandomForest": ("RandomForestClassifier", "RandomForestRegressor", "random_forest"),
    "RandomForestClassifier": ("RandomForestClassifier", None, "random_forest"),
    "RandomForestRegressor": (None, "RandomForestRegressor", "random_forest"),
    "GBT": ("GBTClassifier", "GBTRegressor", "gbt"),
    "GBTClassifier": ("GBTClassifier", None, "gbt"),
    "GBTRegressor": (None, "GBTRegressor", "gbt"),
}
PARITY = 1e-9


def _estimator(name: str, task: str, params: dict[str, Any], target: str, seed: int) -> Any:
    import importlib

    entry = MODELS.get(name)
    if entry is None:
        raise StepError(
            STEP,
            f"unknown spark_ml model '{name}'",
            "use one of " + ", ".join(sorted(MODELS)),
        )
    cls_name = entry[0] if task == "classification" else entry[1]
    if cls_name is None:
        raise StepError(STEP, f"spark_ml model '{name}' does not do {task}")
    module = "classification" if task == "classification" else "regression"
    cls = getattr(importlib.import_module(f"pyspark.ml.{module}"), cls_name)
    est = cls(featuresCol="_mlc_features", labelCol=target, predictionCol="_mlc_pred")
    known = {p.name for p in est.params}
    unknown = sorted(set(params) - known)
    if unknown:
        raise StepError(
            STEP,
            f"spark_ml model '{cls_name}' has no parameter(s) " + ", ".join(unknown),
            "valid: " + ", ".join(sorted(known - {"featuresCol", "labelCol", "predictionCol"})),
        )
    settings = dict(params)
    if "seed" in known and "seed" not in settings:
        settings["seed"] = seed
    return est.setParams(**settings), entry[2]


def _flat_tree(root: Any, classification: bool) -> dict[str, Any]:
    """One MLlib tree (its Java nodes) as arrays; a leaf holds its class counts or value."""
    tree: dict[str, list[Any]] = {
        "feature": [],
        "threshold": [],
        "left": [],
        "right": [],
        "value": [],
    }

    def add(node: Any) -> int:
        i = len(tree["feature"])
        for key in tree:
            tree[key].append(None)
        if node.getClass().getSimpleName() == "InternalNode":
            split = node.split()
            tree["feature"][i] = int(split.featureIndex())
            tree["threshold"][i] = float(split.threshold())
            tree["left"][i] = add(node.leftChild())
            tree["right"][i] = add(node.rightChild())
            tree["value"][i] = None
        else:
            tree["feature"][i], tree["threshold"][i] = -1, 0.0
            tree["left"][i] = tree["right"][i] = -1
            stats = list(node.impurityStats().stats()) if classification else []
            tree["value"][i] = (
                [float(s) for s in stats] if classification else [float(node.prediction())]
            )
        return i

    add(root)
    width = max(len(v) for v in tree["value"] if v is not None)
    tree["value"] = [v if v is not None else [0.0] * width for v in tree["value"]]
    return tree


def copy_model(fitted: Any, kind: str, task: str, classes: list[Any]) -> Any:
    """The numpy copy of a fitted MLlib model."""
    from mlc.runtime.spark.mllib_model import MLlibClassifier, MLlibRegressor

    classification = task == "classification"
    if kind == "logistic":
        matrix = fitted.coefficientMatrix.toArray()
        state = {
            "coefficients": matrix.tolist(),
            "intercept": list(fitted.interceptVector.toArray()),
            "classes": classes,
        }
        return MLlibClassifier(kind, state)
    if kind == "linear":
        state = {
            "coefficients": [list(fitted.coefficients.toArray())],
            "intercept": [fitted.intercept],
        }
        return MLlibRegressor(kind, state)
    java_trees = fitted._java_obj.trees()
    # RF classification leaves hold class counts; GBT trees are regression trees throughout.
    counts = classification and kind == "random_forest"
    trees = [_flat_tree(t.rootNode(), counts) for t in java_trees]
    state = {"trees": trees, "weights": [float(w) for w in fitted.treeWeights], "classes": classes}
    return MLlibClassifier(kind, state) if classification else MLlibRegressor(kind, state)


def run(
    params: TrainParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    import numpy as np
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import functions as F
    from sklearn.pipeline import Pipeline

    from mlc.runtime.spark.transform import FittedPlan, apply_spark

    transform = artifacts.load_object(need(inputs, "transform", STEP))
    if not isinstance(transform, FittedPlan):
        raise StepError(
            STEP,
            "framework spark_ml trains on the spark engine's transform",
            "set data.engine: spark",
        )
    bind_secrets(transform, ctx)
    # The data steps' session when they ran in this process; else a new one for data.spark.
    spark = session(params.get("spark"), STEP)
    train = frames.load(spark, inputs, "train", STEP)
    target, task = params["target"], params["task"]
    if target not in train.columns:
        raise StepError(STEP, f"target column '{target}' is not in the data")
    model = params["model"]
    if model is None:
        raise StepError(STEP, "framework spark_ml needs training.model")
    started = time.monotonic()
    try:
        rows = apply_spark(transform, train, carry=(target,)).withColumn(
            target, F.col(f"`{target}`").cast("double")
        )
        names = [c for c in rows.columns if c != target]
        assembled = VectorAssembler(inputCols=names, outputCol="_mlc_features").transform(rows)
        classes: list[Any] = []
        if task == "classification":
            found = sorted(r[0] for r in rows.select(target).distinct().collect())
            if found != [float(i) for i in range(len(found))]:
                raise StepError(
                    STEP,
                    f"spark_ml classification needs labels 0..k-1, found {found[:10]}",
                    "encode the target as 0, 1, ... (features.derived can compute it)",
                )
            classes = list(range(len(found)))
        est, kind = _estimator(model["name"], task, dict(model["params"]), target, params["seed"])
        fitted = est.fit(assembled)
        copied = copy_model(fitted, kind, task, classes)
        # The copy must predict what MLlib predicts, on the rows it was fitted on.
        check_cols = ["_mlc_pred"] + (["probability"] if task == "classification" else [])
        scored = fitted.transform(assembled).select(*names, *check_cols).limit(2000).toPandas()
    except StepError:
        raise
    except Exception as exc:  # py4j errors, MLlib parameter errors
        raise StepError(
            STEP, f"fitting spark_ml {model['name']} failed: {first_line(exc)}"
        ) from exc
    x = scored[names].to_numpy(dtype=np.float64)
    if task == "classification":
        want = np.stack(scored["probability"].map(lambda v: v.toArray()).to_numpy())
        gap = float(np.max(np.abs(copied.predict_proba(x) - want))) if len(x) else 0.0
    else:
        gap = (
            float(np.max(np.abs(copied.predict(x) - scored["_mlc_pred"].to_numpy())))
            if len(x)
            else 0.0
        )
    if gap > PARITY * max(1.0, float(np.max(np.abs(x))) if len(x) else 1.0):
        raise StepError(STEP, f"the copy of the MLlib model differs from MLlib by {gap:.3g}")
    pipeline = Pipeline([("transform", transform), ("model", copied)])
    spent = round(time.monotonic() - started, 3)
    digest = artifacts.save_object(
        out(outputs, "model", STEP),
        pipeline,
        "model",
        framework="spark_ml",
        task=task,
        target=target,
        params=dict(model["params"]),
    )
    return {
        "framework": "spark_ml",
        "model": type(est).__name__,
        "rows": int(assembled.count()),
        "seconds": spent,
        "params": dict(model["params"]),
        "parity": gap,
        "hash": digest,
    }
