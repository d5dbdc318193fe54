"""Keras networks through the ONNX export: Keras' own exporter, merged after skl2onnx's graph.

The package is checked against the fitted pipeline itself (not against the gate's numbers),
after a skops round trip like the one the registered model takes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
import skops.io

from mlc.runtime import onnx_export
from mlc.runtime.context import StepError
from mlc.runtime.steps.register import _own_types

PARITY = {
    "proba_atol": 1e-5,
    "atol": 1e-4,
    "rtol": 1e-4,
    "quantized_proba_atol": 0.05,
    "quantized_rtol": 0.05,
    "quantized_label_agreement": 0.9,
}
CONTRACT = {"g": {"dtype": "category", "nullable": False, "allowed": ["u", "v", "w"]}}
BUILDERS = """
import keras


def softmax_head(input_dim, params):
    return keras.Sequential(
        [keras.Input((input_dim,)), keras.layers.Dense(8, activation="relu"),
         keras.layers.Dense(2, activation="softmax")]
    )


def two_inputs(input_dim, params):
    a, b = keras.Input((input_dim,)), keras.Input((input_dim,))
    return keras.Model([a, b], keras.layers.Dense(2)(keras.layers.Add()([a, b])))
"""


@pytest.fixture()
def keras_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    # keras picks its backend at its first import: torch, as the spec's default
    monkeypatch.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "torch"))
    (tmp_path / "kbuild_onnx.py").write_text(BUILDERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "kbuild_onnx", raising=False)
    from mlc.runtime.frameworks.keras_model import KerasEstimator

    return KerasEstimator


def _frame(rows: int = 240) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(5)
    x = pd.DataFrame(
        {
            "a": rng.normal(size=rows),
            "b": rng.normal(size=rows),
            "g": rng.choice(["u", "v", "w"], rows).astype(object),
        }
    )
    y = np.where((x["a"] - x["b"] > 0) | (x["g"] == "w"), "yes", "no")
    return x, y


def _pipeline(estimator: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = ColumnTransformer(
        [
            ("scale", StandardScaler(), ["a", "b"]),
            ("onehot", OneHotEncoder(sparse_output=False, handle_unknown="ignore"), ["g"]),
        ]
    )
    return Pipeline([("columns", columns), ("model", estimator)])


def _export(model: Any, test: pd.DataFrame, loc: Path, task: str, quantize: str = "none") -> Any:
    return onnx_export.export_package(
        model,
        test,
        task=task,
        features=list(test.columns),
        edge={"format": "onnx", "quantize": quantize, "opset": 17, "parity": PARITY},
        contract_columns=CONTRACT,
        location=str(loc),
        model_info={"model_name": "m", "version": "1"},
        single_runs=10,
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras' torch backend, numpy 2
@pytest.mark.parametrize("builder", [None, "kbuild_onnx:softmax_head"])
def test_a_keras_classifier_exports_a_package_that_scores_like_the_pipeline(
    keras_torch: Any, builder: str | None, tmp_path: Path
) -> None:
    x, y = _frame()
    est = keras_torch(epochs=5, batch_size=32, builder=builder, params={"hidden": [16]})
    fitted = _pipeline(est).fit(x.iloc[:180], y[:180])
    registered = skops.io.loads(skops.io.dumps(fitted), trusted=_own_types(fitted))
    test = x.iloc[180:].reset_index(drop=True)
    loc = tmp_path / "pkg"
    report = _export(registered, test, loc, "classification", quantize="dynamic")
    assert report["estimator"] == "KerasEstimator" and report["precision"] == "float32"
    assert report["parity"]["passed"] and report["parity"]["rows"] == len(test)
    assert report["classes"] == ["no", "yes"]
    # one softmax: the graph's after logits, or the network's own (not a second one after it)
    nodes = onnx.load(str(loc / "model.onnx")).graph.node
    assert [n.op_type for n in nodes].count("Softmax") == 1
    assert ("softmax" in {n.name for n in nodes}) is (builder is None)
    got = onnx_export.load_package(loc)(test)
    want = fitted.predict_proba(test)
    assert np.abs(got["proba"] - want).max() <= PARITY["proba_atol"]
    assert (got["label"].astype(str) == fitted.predict(test)).all()
    assert (loc / "model.quant.onnx").is_file() and report["quantized"]["parity"]["passed"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_keras_regressor_export_matches_predict_and_keeps_the_model_predicting(
    keras_torch: Any, tmp_path: Path
) -> None:
    x, _ = _frame()
    target = 3 * x["a"] - x["b"] + (x["g"] == "w") * 2.0
    est = keras_torch(task="regression", epochs=5, batch_size=32, params={"hidden": [16]})
    model = _pipeline(est).fit(x.iloc[:180], target.iloc[:180])
    test = x.iloc[180:].reset_index(drop=True)
    before = model.predict(test)
    report = _export(model, test, tmp_path / "pkg", "regression")
    assert report["parity"]["passed"] and [o["name"] for o in report["outputs"]] == ["variable"]
    got = onnx_export.load_package(tmp_path / "pkg")(test)["prediction"]
    assert np.all(np.abs(got - before) <= PARITY["atol"] + PARITY["rtol"] * np.abs(before))
    # exporting leaves the fitted network as it was
    np.testing.assert_array_equal(model.predict(test), before)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_keras_network_with_two_inputs_is_a_step_error_and_writes_nothing(
    keras_torch: Any, tmp_path: Path
) -> None:
    import keras

    x, _ = _frame(60)
    est = keras_torch(epochs=1, builder="kbuild_onnx:two_inputs")
    model = _pipeline(est)
    # fitted by hand: the estimator feeds one array, which this network cannot take
    model.steps[0][1].fit(x)
    est.classes_ = np.asarray(["no", "yes"])
    est.n_features_in_ = 5
    est.probabilities_ = False
    est.model_ = est._build(keras, 5, 2)
    with pytest.raises(StepError, match="export"):
        _export(model, x, tmp_path / "pkg", "classification")
    assert not (tmp_path / "pkg").exists()
