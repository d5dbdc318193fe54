"""export: real skl2onnx / onnxruntime / MLflow; every number checked against the model itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support.runtime import complete

from mlc.runtime import artifacts, lineage, onnx_export
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps import export as export_step
from mlc.runtime.steps._data import cast_to_contract
from mlc.runtime.steps.features import build_transform

ROOT = Path(__file__).resolve().parents[2]
DIABETES = ROOT / "examples" / "diabetes" / "mlc.yaml"
KEY = "export-test-key-0123456789"
PARITY = {
    "proba_atol": 1e-5,
    "atol": 1e-4,
    "rtol": 1e-4,
    "quantized_proba_atol": 0.05,
    "quantized_rtol": 0.05,
    "quantized_label_agreement": 0.98,
}


def _edge(quantize: str = "none", **parity: float) -> dict[str, Any]:
    return {"format": "onnx", "quantize": quantize, "opset": 17, "parity": {**PARITY, **parity}}


def _export(model: Any, x: pd.DataFrame, loc: Path, task: str, **kw: Any) -> dict[str, Any]:
    contract = kw.pop("contract", {})
    report: dict[str, Any] = onnx_export.export_package(
        model,
        x,
        task=task,
        features=kw.pop("features", list(x.columns)),
        edge=kw.pop("edge", _edge()),
        contract_columns=contract,
        location=str(loc),
        model_info={"model_name": "m", "version": "1"},
        single_runs=kw.pop("single_runs", 20),
        **kw,
    )
    return report


@pytest.fixture()
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLC_PSEUDONYM_KEY", KEY)
    return KEY


def _credit(tmp_path: Path, rows: int = 360) -> tuple[Any, pd.DataFrame, pd.Series, dict[str, Any]]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    contract = complete("validate", {})["contract"]["columns"]
    frame = pd.read_csv(ROOT / "examples" / "credit" / "data" / "applications.csv").head(rows)
    frame = cast_to_contract(frame, contract)
    y = frame.pop("default")
    ctx = StepContext(project_dir=tmp_path)
    transform = build_transform(complete("features", {}), list(frame.columns), ctx)
    model = Pipeline(
        [
            ("transform", transform),
            ("model", HistGradientBoostingClassifier(max_iter=20, max_depth=3, random_state=0)),
        ]
    )
    model.fit(frame.iloc[:260], y.iloc[:260])
    return model, frame.iloc[260:].reset_index(drop=True), y, contract


def test_credit_pipeline_matches_predict_proba_with_a_pseudonymise_prestep(
    tmp_path: Path, key: str
) -> None:
    model, test, _, contract = _credit(tmp_path)
    loc = tmp_path / "pkg"
    report = _export(model, test, loc, "classification", contract=contract)
    # Raw columns in, one input each, typed from the contract; email goes through the pre-step.
    types = {i["name"]: i["type"] for i in report["inputs"]}
    assert types["region"] == "tensor(string)" and types["age"] == "tensor(int64)"
    assert "email" not in types and "email_pseudonym" in types
    assert any("Pseudonymiser" in t for t in report["transforms_prestep"])
    prestep = (loc / "prestep.json").read_text()
    assert KEY not in prestep and "env:MLC_PSEUDONYM_KEY" in prestep
    score = onnx_export.load_package(loc)
    got = score(test)
    expected = model.predict_proba(test)
    assert np.abs(got["proba"] - expected).max() <= 1e-5
    assert (got["label"] == model.predict(test)).all()
    assert report["parity"]["passed"] and report["parity"]["probe_rows"] > 0
    assert report["parity"]["max_abs_proba_diff"] <= 1e-5
    assert report["attempts"][0]["precision"] == "float32"
    assert (
        report["attempts"][-1]["passed"]
        and report["precision"] == report["attempts"][-1]["precision"]
    )
    meta = artifacts.read_meta(str(loc))
    assert meta["format"] == "onnx" and meta["type"] == "model"
    assert meta["hash"] == artifacts.sha256((loc / "model.onnx").read_bytes())
    assert report["sha256"]["model.onnx"] == meta["hash"]
    lat = report["latency"]
    assert lat["onnx_single_row_ms"] > 0 and lat["model_batch_ms"] > 0
    # The same model gives the same bytes.
    again = _export(model, test, tmp_path / "pkg2", "classification", contract=contract)
    assert (tmp_path / "pkg2" / "model.onnx").read_bytes() == (loc / "model.onnx").read_bytes()
    assert again["sha256"]["model.onnx"] == report["sha256"]["model.onnx"]


def test_regression_with_bucketize_and_derived_passes_and_reports_the_max_difference(
    tmp_path: Path,
) -> None:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline

    params = complete("features", {}, spec=DIABETES)
    params["transforms"] = [
        *params["transforms"],
        {"op": "bucketize", "columns": ["bp"], "bins": [80.0, 95.0, 110.0]},
        {"op": "log", "columns": ["s5"], "offset": 1.0},
    ]
    contract = complete("validate", {}, spec=DIABETES)["contract"]["columns"]
    frame = cast_to_contract(
        pd.read_csv(ROOT / "examples" / "diabetes" / "data" / "diabetes.csv"), contract
    )
    y = frame.pop("progression")
    transform = build_transform(params, list(frame.columns), StepContext(project_dir=tmp_path))
    model = Pipeline([("transform", transform), ("model", Ridge(alpha=1.0))])
    model.fit(frame.iloc[:300], y.iloc[:300])
    test = frame.iloc[300:].reset_index(drop=True)
    report = _export(model, test, tmp_path / "pkg", "regression", contract=contract)
    parity = report["parity"]
    assert parity["passed"] and parity["rows"] == len(test)
    got = onnx_export.load_package(tmp_path / "pkg")(test)["prediction"]
    want = model.predict(test)
    diff = np.abs(got - want)
    assert parity["max_abs_diff"] == pytest.approx(diff.max(), rel=1e-9, abs=1e-15)
    assert parity["max_rel_diff"] == pytest.approx((diff / np.abs(want)).max(), rel=1e-9)
    assert np.all(diff <= 1e-4 + 1e-4 * np.abs(want))
    assert any("DerivedFeatures" in t for t in report["transforms_converted"])


def test_a_derived_column_the_graph_cannot_compute_moves_to_the_prestep(tmp_path: Path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from mlc.runtime.steps._transforms import DerivedFeatures

    x, y = _tree_data()
    model = Pipeline(
        [
            ("derive", DerivedFeatures((("r", "abs(a) + b"), ("s", "b * 2 - c / 4")))),
            ("columns", ColumnTransformer([("scale", StandardScaler(), ["r", "s", "c"])])),
            ("model", LogisticRegression()),
        ]
    ).fit(x.iloc[:200], y.iloc[:200])
    test = x.iloc[200:].reset_index(drop=True)
    report = _export(model, test, tmp_path / "pkg", "classification")
    assert report["transforms_prestep"] == ["derive (DerivedFeatures)"]
    assert {i["name"] for i in report["inputs"]} == {"r", "s", "c"}
    got = onnx_export.load_package(tmp_path / "pkg")(test)
    assert np.abs(got["proba"] - model.predict_proba(test)).max() <= 1e-5
    assert (got["label"] == model.predict(test)).all()


def _tree_data(n: int = 300) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(3)
    x = pd.DataFrame(
        {"a": rng.normal(size=n) * 10, "b": rng.uniform(0, 1, n), "c": rng.normal(size=n)}
    )
    y = ((x["a"] > 1.3) ^ (x["b"] > 0.55)).astype(int)
    return x, y


def _tree_model(estimator: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    columns = ColumnTransformer(
        [("scale", StandardScaler(), ["a", "c"]), ("passthrough", "passthrough", ["b"])]
    )
    return Pipeline([("columns", columns), ("model", estimator)])


def test_tree_threshold_probes_are_added_and_checked(tmp_path: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.tree import DecisionTreeClassifier

    x, y = _tree_data()
    for est in (
        DecisionTreeClassifier(max_depth=5, random_state=0),
        HistGradientBoostingClassifier(max_iter=15),
    ):
        model = _tree_model(est).fit(x.iloc[:200], y.iloc[:200])
        test = x.iloc[200:].reset_index(drop=True)
        loc = tmp_path / type(est).__name__
        report = _export(model, test, loc, "classification")
        parity = report["parity"]
        assert parity["passed"] and parity["probe_rows"] > 0
        assert parity["rows"] == len(test) + parity["probe_rows"]
        assert set(parity["probe_columns"]) <= {"a", "b", "c"} and parity["probe_columns"]
        probes, _ = onnx_export.probe_rows(
            onnx_export.split(model, set()), test, {c: "number" for c in x.columns}
        )
        assert len(probes) == parity["probe_rows"]
        if hasattr(est, "tree_"):
            # Independently: every split threshold, unscaled to its raw column, is probed.
            scaler = model.named_steps["columns"].named_transformers_["scale"]
            tree = est.tree_
            for f, t in zip(tree.feature, tree.threshold, strict=True):
                if f < 0:
                    continue
                if f < 2:
                    col, raw = ("a", "c")[f], t * scaler.scale_[f] + scaler.mean_[f]
                else:
                    col, raw = "b", t
                assert np.isclose(probes[col].to_numpy(), raw, rtol=0, atol=1e-9).any()
        score = onnx_export.load_package(loc)
        got = score(probes)
        assert (got["label"] == model.predict(probes)).all()
        assert np.abs(got["proba"] - model.predict_proba(probes)).max() <= 1e-5


def test_float32_graph_that_flips_at_thresholds_is_refused_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    from sklearn.tree import DecisionTreeClassifier

    x, y = _tree_data()
    model = _tree_model(DecisionTreeClassifier(max_depth=6, random_state=0))
    model.fit(x.iloc[:200], y.iloc[:200])
    test = x.iloc[200:].reset_index(drop=True)
    loc = tmp_path / "out" / "pkg"
    with pytest.raises(StepError) as err:
        _export(model, test, loc, "classification", precision="float32")
    text = str(err.value)
    assert "probe row" in text and "max |Δ probability|" in text and "original label" in text
    assert not (tmp_path / "out").exists()  # not even the parent folder or a temp folder
    # A zero tolerance on float32 probabilities fails too (second failure case).
    with pytest.raises(StepError, match="does not match"):
        _export(
            _tree_model(
                __import__("sklearn.linear_model", fromlist=["x"]).LogisticRegression()
            ).fit(x.iloc[:200], y.iloc[:200]),
            test,
            loc,
            "classification",
            precision="float32",
            edge=_edge(proba_atol=0.0),
        )
    assert not loc.exists()


def test_unsupported_estimator_and_misplaced_prestep_are_step_errors(
    tmp_path: Path, key: str
) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.neighbors import NearestCentroid
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from mlc.runtime.steps._transforms import Pseudonymiser

    x, y = _tree_data()
    model = _tree_model(NearestCentroid()).fit(x, y)
    with pytest.raises(StepError, match="NearestCentroid") as err:
        _export(model, x, tmp_path / "a", "classification")
    assert "exportable" in (err.value.hint or "")
    assert onnx_export.unsupported(model) == ["NearestCentroid"]
    assert onnx_export.unsupported(["NearestCentroid", "StandardScaler", "Pseudonymiser"]) == [
        "NearestCentroid"
    ]
    late = Pipeline([("scale", StandardScaler()), ("pseudo", Pseudonymiser())])
    bad = Pipeline(
        [
            ("columns", ColumnTransformer([("p", late, ["a"]), ("b", "passthrough", ["b"])])),
            ("model", __import__("sklearn.linear_model", fromlist=["x"]).LogisticRegression()),
        ]
    ).fit(x, y)
    with pytest.raises(StepError, match="Pseudonymiser"):
        _export(bad, x, tmp_path / "b", "classification")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_dynamic_quantization_is_smaller_and_its_parity_reported(tmp_path: Path) -> None:
    from sklearn.neural_network import MLPClassifier

    x, y = _tree_data(400)
    model = _tree_model(
        MLPClassifier(hidden_layer_sizes=(128, 64), max_iter=300, random_state=0)
    ).fit(x.iloc[:300], y.iloc[:300])
    test = x.iloc[300:].reset_index(drop=True)
    loc = tmp_path / "pkg"
    with pytest.raises(StepError, match="quantised graph does not match"):
        _export(
            model, test, loc, "classification", edge=_edge("dynamic", quantized_proba_atol=1e-4)
        )
    assert not loc.exists()
    report = _export(
        model, test, loc, "classification", edge=_edge("dynamic", quantized_proba_atol=0.2)
    )
    quant = loc / "model.quant.onnx"
    assert quant.is_file()
    assert quant.stat().st_size <= (loc / "model.onnx").stat().st_size
    assert report["bytes"]["model.quant.onnx"] == quant.stat().st_size
    q = report["quantized"]["parity"]
    # Independent: run the quantised graph on the test rows and compare with the model.
    sess = onnx_export.session(quant.read_bytes())
    labels, proba = sess.run(None, onnx_export.feeds(test, report["inputs"]))
    expected = model.predict_proba(test)
    assert q["max_abs_proba_diff"] == pytest.approx(np.abs(proba - expected).max(), abs=1e-12)
    assert q["label_agreement"] == pytest.approx(float((labels == model.predict(test)).mean()))
    assert report["sha256"]["model.quant.onnx"] == artifacts.sha256(quant.read_bytes())


def test_export_step_logs_to_the_registered_mlflow_run_and_lineage(tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from mlc.runtime.steps import register

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=120), "b": rng.integers(0, 5, 120)})
    frame["y"] = (frame["a"] + 0.3 * frame["b"] > 0.5).astype(int)
    x = frame[["a", "b"]]
    model = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(
        x, frame["y"]
    )
    contract = {
        "a": {"dtype": "float", "nullable": False},
        "b": {"dtype": "int", "nullable": False},
        "y": {"dtype": "int", "nullable": False},
    }
    locs = {n: str(tmp_path / n) for n in ("model", "metrics", "verdict", "test", "mv", "pkg")}
    artifacts.save_object(locs["model"], model, "model")
    artifacts.save_json(locs["metrics"], "metrics", {"metrics": {"roc_auc": 0.9}}, "metrics")
    artifacts.save_json(locs["verdict"], "verdict", {"passed": True, "checks": []}, "verdict")
    artifacts.save_dataframe(locs["test"], frame.iloc[80:])
    ctx = StepContext(
        project_dir=tmp_path,
        run_id="run-1",
        extra={"spec_hash": "s" * 64, "data_hash": "d" * 64, "code_version": "test"},
    )
    reg_params: dict[str, Any] = {
        "model_name": "toy",
        "promotion": {"policy": "auto", "min_improvement": 0.0},
        "approvers": [],
        "contract": {"columns": contract},
        "target": "y",
        "task": "classification",
        "model": {"name": "LogisticRegression", "params": {}},
        "tuning_storage": None,
    }
    register.run(
        reg_params,
        {k: locs[k] for k in ("model", "metrics", "verdict")},
        {"model_version": locs["mv"]},
        ctx,
    )
    params = {
        "mode": "edge",
        "model_name": "toy",
        "edge": _edge(),
        "contract": {"columns": contract, "on_failure": "stop"},
        "target": "y",
        "task": "classification",
        "features": ["a", "b"],
    }
    summary = export_step.run(
        params,
        {"model_version": locs["mv"], "model": locs["model"], "test": locs["test"]},
        {"package": locs["pkg"]},
        ctx,
    )
    doc = artifacts.load_json(locs["mv"], "model_version")
    client = MlflowClient(tracking_uri=doc["tracking_uri"], registry_uri=doc["tracking_uri"])
    logged = {Path(f.path).name for f in client.list_artifacts(doc["mlflow_run_id"], "onnx")}
    assert logged == {"model.onnx", "export.json"}
    mv = client.get_model_version("toy", doc["version"])
    sha = artifacts.sha256((Path(locs["pkg"]) / "model.onnx").read_bytes())
    assert mv.tags["mlc.onnx_sha256"] == sha and mv.tags["mlc.onnx_parity"] == "passed"
    assert summary["onnx_sha256"] == sha[:12] and summary["version"] == doc["version"]
    records = lineage.exports(ctx.state)
    assert records[-1]["onnx_sha256"] == sha and records[-1]["version"] == doc["version"]
    report = json.loads((Path(locs["pkg"]) / "export.json").read_text())
    assert report["model"]["model_name"] == "toy" and report["model"]["version"] == doc["version"]
    got = onnx_export.load_package(locs["pkg"])(frame.iloc[80:])
    assert np.abs(got["proba"] - model.predict_proba(frame.iloc[80:][["a", "b"]])).max() <= 1e-5


@pytest.mark.slow
def test_lightning_mlp_exports_through_torch_onnx(tmp_path: Path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from mlc.runtime.lightning_mlp import MLPEstimator

    rng = np.random.default_rng(5)
    n = 240
    x = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "g": rng.choice(["u", "v", "w"], n).astype(object),
        }
    )
    y = ((x["a"] - x["b"] > 0) | (x["g"] == "w")).astype(int)
    columns = ColumnTransformer(
        [
            ("scale", StandardScaler(), ["a", "b"]),
            ("onehot", OneHotEncoder(sparse_output=False, handle_unknown="ignore"), ["g"]),
        ]
    )
    est = MLPEstimator(hidden=(16,), max_epochs=3, batch_size=32, accelerator="cpu", seed=0)
    model = Pipeline([("columns", columns), ("model", est)]).fit(x.iloc[:180], y.iloc[:180])
    test = x.iloc[180:].reset_index(drop=True)
    loc = tmp_path / "pkg"
    report = _export(
        model,
        test,
        loc,
        "classification",
        edge=_edge("dynamic", quantized_label_agreement=0.9),
        contract={"g": {"dtype": "category", "nullable": False, "allowed": ["u", "v", "w"]}},
    )
    assert report["estimator"] == "MLPEstimator" and report["parity"]["passed"]
    got = onnx_export.load_package(loc)(test)
    assert np.abs(got["proba"] - model.predict_proba(test)).max() <= 1e-5
    assert (got["label"] == model.predict(test)).all()
    assert (loc / "model.quant.onnx").is_file()


@pytest.mark.slow
def test_lightning_mlp_regression_after_mlc_transforms_matches_predict(tmp_path: Path) -> None:
    import onnx
    from sklearn.pipeline import Pipeline

    from mlc.runtime.lightning_mlp import MLPEstimator

    # The diabetes transforms: skl2onnx names the imputed-and-scaled column `variable`, the
    # name of the regression output.
    params = complete("features", {}, spec=DIABETES)
    contract = complete("validate", {}, spec=DIABETES)["contract"]["columns"]
    frame = cast_to_contract(
        pd.read_csv(ROOT / "examples" / "diabetes" / "data" / "diabetes.csv").head(300), contract
    )
    y = frame.pop("progression")
    transform = build_transform(params, list(frame.columns), StepContext(project_dir=tmp_path))
    est = MLPEstimator(
        task="regression", hidden=(16,), max_epochs=3, batch_size=32, accelerator="cpu", seed=0
    )
    model = Pipeline([("transform", transform), ("model", est)]).fit(frame.iloc[:220], y.iloc[:220])
    test = frame.iloc[220:].reset_index(drop=True)
    loc = tmp_path / "pkg"
    report = _export(model, test, loc, "regression", contract=contract)
    parity = report["parity"]
    assert report["estimator"] == "MLPEstimator" and report["precision"] == "float32"
    assert parity["passed"] and parity["rows"] == len(test)
    graph = onnx.load(str(loc / "model.onnx")).graph
    produced = [name for node in graph.node for name in node.output]
    assert len(produced) == len(set(produced)) and [o.name for o in graph.output] == ["variable"]
    got = onnx_export.load_package(loc)(test)["prediction"]
    want = model.predict(test)
    diff = np.abs(got - want)
    assert parity["max_abs_diff"] == pytest.approx(diff.max(), rel=1e-9, abs=1e-15)
    assert np.all(diff <= PARITY["atol"] + PARITY["rtol"] * np.abs(want))


def test_mlp_head_names_are_freed_in_the_preprocessing_graph(tmp_path: Path) -> None:
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 2)).astype(np.float32)
    x[::7, 0] = np.nan
    pipe = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]).fit(x)
    types = [("x", FloatTensorType([None, 2]))]
    prep = onnx_export._sklearn_graph(pipe, types, 17, None)
    names = {n for node in prep.graph.node for n in node.output}
    assert "variable" in names
    onnx_export._free_head_names(prep, "regression")
    names = {n for node in prep.graph.node for n in node.output}
    assert "variable" not in names and prep.graph.output[0].name != "variable"
    (got,) = onnx_export.session(prep.SerializeToString()).run(None, {"x": x})
    assert np.abs(got - pipe.transform(x)).max() <= 1e-5
    # A raw column cannot be moved off an output name: the graph reads it by that name.
    clash = onnx_export._sklearn_graph(pipe, [("label", FloatTensorType([None, 2]))], 17, None)
    with pytest.raises(StepError, match="'label'") as info:
        onnx_export._free_head_names(clash, "classification")
    assert "rename the column" in (info.value.hint or "")
