"""The gate's champion check scores the registered champion on the candidate's own test rows.

Each answer is recomputed here with scikit-learn on the same rows: higher-is-better (roc_auc),
lower-is-better (rmse) and a multi-class accuracy; the bootstrap interval is reproduced with
the same seeded resamples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score
from sklearn.pipeline import Pipeline

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext
from mlc.runtime.steps import gate

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _register(uri: str, name: str, model: Any) -> str:
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
    mv = mlflow.register_model(info.model_uri, name)
    MlflowClient(uri, uri).set_registered_model_alias(name, "champion", mv.version)
    return str(mv.version)


def _frame(task: str, n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    group = np.where(rng.random(n) < 0.5, "a", "b")
    if task == "regression":
        y = x @ np.array([2.0, -1.0, 0.5]) + rng.normal(0, 0.5, n)
    elif task == "multiclass":
        y = np.digitize(x[:, 0] + 0.3 * x[:, 1] + rng.normal(0, 0.4, n), [-0.5, 0.5])
    else:
        y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.8, n) > 0).astype(int)
    return pd.DataFrame({"f0": x[:, 0], "f1": x[:, 1], "f2": x[:, 2], "grp": group, "y": y})


def _fit(model: Any, frame: pd.DataFrame, columns: list[str]) -> Pipeline:
    pick = ColumnTransformer([("keep", "passthrough", columns)])
    return Pipeline([("pick", pick), ("est", model)]).fit(frame, frame["y"])


def _gate(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *,
    task: str,
    metric: str,
    direction: str,
    candidate: Any,
    champion: Any,
    test: pd.DataFrame,
    margin: float = 0.0,
    bootstrap: dict[str, Any] | None = None,
) -> dict[str, Any]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)  # a sqlite store's default artifact root is ./mlruns
    version = _register(uri, "m", champion)
    model_dir, test_dir = str(tmp_path / "model"), str(tmp_path / "test")
    metrics_dir, verdict_dir = str(tmp_path / "metrics"), str(tmp_path / "verdict")
    artifacts.save_object(model_dir, candidate, "model")
    artifacts.save_dataframe(test_dir, test)
    artifacts.save_json(metrics_dir, "metrics", {"metrics": {}}, "metrics")
    params = {
        "gates": [],
        "champion": {
            "compare": True,
            "metric": metric,
            "min_improvement": margin,
            "same_holdout": True,
            "bootstrap": bootstrap,
            "direction": direction,
        },
        "fairness": {
            "sensitive_attributes": ["grp"],
            "metric": "demographic_parity_difference",
            "threshold": 1.0,
            "mitigation": None,
            "direction": "lower",
        },
        "robustness": [],
        "model_name": "m",
        "target": "y",
        "task": "regression" if task == "regression" else "classification",
    }
    ctx = StepContext(
        state_dir=tmp_path,
        tracking_uri=uri,
        extra={"champion": {"version": version, "metrics": {metric: 0.5}}},
    )
    inputs = {"metrics": metrics_dir, "model": model_dir, "test": test_dir}
    gate.run(params, inputs, {"verdict": verdict_dir}, ctx)  # type: ignore[arg-type]
    verdict = artifacts.load_json(verdict_dir, "verdict")
    return next(c for c in verdict["checks"] if c["kind"] == "champion")


def test_roc_auc_of_both_models_on_the_same_rows(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    train, test = _frame("binary", seed=1), _frame("binary", seed=2)
    strong = _fit(LogisticRegression(), train, ["f0", "f1"])
    weak = _fit(LogisticRegression(), train, ["f2"])
    check = _gate(
        monkeypatch,
        tmp_path,
        task="binary",
        metric="roc_auc",
        direction="higher",
        candidate=strong,
        champion=weak,
        test=test,
        margin=0.05,
    )
    x, y = test.drop(columns=["y"]), test["y"]
    mine = roc_auc_score(y, strong.predict_proba(x)[:, 1])
    theirs = roc_auc_score(y, weak.predict_proba(x)[:, 1])
    assert check["value"] == pytest.approx(mine, abs=1e-12)
    assert check["champion"]["value"] == pytest.approx(theirs, abs=1e-12)
    assert check["champion"]["rows"] == len(test)
    assert check["passed"] is (mine - theirs >= 0.05) is True
    groups = {e["group"]: e for e in check["by_group"]["grp"]}
    rows_a = test["grp"] == "a"
    assert groups["a"]["challenger"] == pytest.approx(
        roc_auc_score(y[rows_a], strong.predict_proba(x[rows_a])[:, 1]), abs=1e-12
    )


def test_a_worse_challenger_fails_and_the_margin_counts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    train, test = _frame("binary", seed=1), _frame("binary", seed=2)
    strong = _fit(LogisticRegression(), train, ["f0", "f1"])
    weak = _fit(LogisticRegression(), train, ["f2"])
    check = _gate(
        monkeypatch,
        tmp_path,
        task="binary",
        metric="roc_auc",
        direction="higher",
        candidate=weak,
        champion=strong,
        test=test,
    )
    assert check["passed"] is False
    assert check["improvement"] < 0


def test_rmse_lower_is_better(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    train, test = _frame("regression", seed=3), _frame("regression", seed=4)
    full = _fit(LinearRegression(), train, ["f0", "f1", "f2"])
    part = _fit(LinearRegression(), train, ["f0"])
    check = _gate(
        monkeypatch,
        tmp_path,
        task="regression",
        metric="rmse",
        direction="lower",
        candidate=full,
        champion=part,
        test=test,
        margin=0.1,
    )
    x, y = test.drop(columns=["y"]), test["y"]
    mine = mean_squared_error(y, full.predict(x)) ** 0.5
    theirs = mean_squared_error(y, part.predict(x)) ** 0.5
    assert check["value"] == pytest.approx(mine, abs=1e-9)
    assert check["improvement"] == pytest.approx(theirs - mine, abs=1e-9)
    assert check["op"] == "<="
    assert check["threshold"] == pytest.approx(theirs - 0.1, abs=1e-9)
    assert check["passed"] is True


def test_multiclass_accuracy_with_a_bootstrap_interval(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    train, test = _frame("multiclass", seed=5), _frame("multiclass", seed=6)
    a = _fit(LogisticRegression(max_iter=500), train, ["f0", "f1"])
    b = _fit(LogisticRegression(max_iter=500), train, ["f0"])
    boot = {"samples": 200, "confidence": 0.9, "seed": 7}
    check = _gate(
        monkeypatch,
        tmp_path,
        task="multiclass",
        metric="accuracy",
        direction="higher",
        candidate=a,
        champion=b,
        test=test,
        bootstrap=boot,
    )
    x, y = test.drop(columns=["y"]), test["y"].to_numpy()
    pa, pb = a.predict(x), b.predict(x)
    assert check["value"] == pytest.approx(accuracy_score(y, pa), abs=1e-12)
    rng = np.random.default_rng(7)
    diffs = []
    for _ in range(200):
        rows = rng.integers(0, len(y), len(y))
        diffs.append(accuracy_score(y[rows], pa[rows]) - accuracy_score(y[rows], pb[rows]))
    low, high = np.quantile(diffs, [0.05, 0.95])
    assert check["interval"]["low"] == pytest.approx(low, abs=1e-12)
    assert check["interval"]["high"] == pytest.approx(high, abs=1e-12)
    assert check["passed"] is bool(accuracy_score(y, pa) >= accuracy_score(y, pb) and low >= 0)
