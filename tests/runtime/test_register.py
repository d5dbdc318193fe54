"""register: a real MLflow sqlite store, real sklearn pipelines, aliases, bad stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mlc.runtime import artifacts, audit, lineage
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps import register

CONTRACT = {
    "columns": {
        "a": {"dtype": "float", "nullable": False},
        "b": {"dtype": "int", "nullable": True},
        "y": {"dtype": "int", "nullable": False},
    }
}
PARAMS = {
    "model_name": "toy",
    "promotion": {"policy": "auto", "min_improvement": 0.0},
    "approvers": ["risk@example.com"],
    "contract": CONTRACT,
    "target": "y",
    "task": "classification",
    "model": {"name": "LogisticRegression", "params": {}},
    "tuning_storage": None,
}


def _inputs(folder: Path, seed: int, passed: bool, auc: float) -> dict[str, str]:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"a": rng.normal(size=60), "b": rng.integers(0, 5, 60)})
    y = (x["a"] > 0).astype(int)
    model = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(C=1 + seed))])
    model.fit(x, y)
    locs = {
        name: str(folder / f"{name}-{seed}-{passed}")
        for name in ("model", "metrics", "verdict", "fairness")
    }
    artifacts.save_object(locs["model"], model, "model")
    artifacts.save_json(
        locs["metrics"], "metrics", {"metrics": {"roc_auc": auc, "accuracy": 0.9}}, "metrics"
    )
    artifacts.save_json(
        locs["verdict"], "verdict", {"passed": passed, "checks": []}, "verdict", passed=passed
    )
    artifacts.save_json(locs["fairness"], "fairness", {"by_group": {"f": 0.5, "m": 0.52}}, "report")
    return locs


def _run(
    tmp: Path,
    inputs: dict[str, str],
    tag: str,
    uri: str | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    ctx = StepContext(
        project_dir=tmp,
        run_id=f"run-{tag}",
        tracking_uri=uri,
        extra={"spec_hash": "s" * 64, "data_hash": "d" * 64, "code_version": "mlc test"},
    )
    out = {"model_version": str(tmp / f"mv-{tag}")}
    return register.run(params or PARAMS, inputs, out, ctx)


def test_register_logs_run_sets_aliases_and_never_loses_versions(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    first = _run(tmp_path, _inputs(tmp_path, 1, True, 0.80), "1")
    assert first == {
        "model": "toy",
        "version": "1",
        "aliases": ["challenger", "champion"],
        "new": True,
        "note": "registered version 1",
    }
    second = _run(tmp_path, _inputs(tmp_path, 2, False, 0.70), "2")
    assert second["version"] == "2" and second["aliases"] == ["challenger"]
    # The bytes of version 1 again: no new version, and no alias moves back onto it.
    again = _run(tmp_path, _inputs(tmp_path, 1, True, 0.80), "3")
    assert again["version"] == "1" and again["new"] is False
    assert again["aliases"] == ["champion"] and "aliases unchanged" in again["note"]
    doc = artifacts.load_json(str(tmp_path / "mv-3"), "model_version")
    assert doc["new_version"] is False and doc["aliases"] == ["champion"]

    uri = StepContext(project_dir=tmp_path).effective_tracking_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = sorted(int(v.version) for v in client.search_model_versions("name = 'toy'"))
    assert versions == [1, 2]
    assert str(client.get_model_version_by_alias("toy", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("toy", "challenger").version) == "2"
    champion = client.get_model_version_by_alias("toy", "champion")
    run = client.get_run(champion.run_id)
    assert run.data.metrics["roc_auc"] == pytest.approx(0.80)
    assert run.data.tags["mlc.spec_hash"] == "s" * 64
    assert run.data.tags["mlc.data_hash"] == "d" * 64
    assert client.list_artifacts(champion.run_id, "reports")

    import mlflow.pyfunc
    import pandas as pd

    with register._mlflow_uris_restored():  # the step itself leaves them as they were
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        loaded = mlflow.pyfunc.load_model("models:/toy@champion")
    assert loaded.metadata.get_input_schema().input_names() == ["a", "b"]
    preds = loaded.predict(pd.DataFrame({"a": [1.0, -1.0], "b": [1, 2]}))
    assert list(preds) == [1, 0]
    assert (tmp_path / ".mlc" / "mlartifacts").is_dir()
    assert not (tmp_path / "mlruns").exists()

    # the fast sqlite read and the MLflow client agree on the champion
    fast = register.champion_info("toy", uri)
    slow = register._champion_from_client("toy", uri)
    assert fast == slow
    assert fast is not None and fast["version"] == "1"
    assert fast["metrics"]["roc_auc"] == pytest.approx(0.80)
    assert register.champion_info("nothing", uri) is None

    events = [r["event"] for r in audit.read(tmp_path / ".mlc")]
    assert events.count("registration") == 2 and events.count("promotion") == 2
    assert audit.verify(tmp_path / ".mlc").ok
    assert [r["version"] for r in lineage.query(tmp_path / ".mlc", "toy")] == ["1", "2"]


def test_manual_promotion_leaves_champion_alone(tmp_path: Path) -> None:
    params = {**PARAMS, "promotion": {"policy": "manual"}}
    result = _run(tmp_path, _inputs(tmp_path, 1, True, 0.8), "1", params=params)
    assert result["aliases"] == ["challenger"]
    uri = StepContext(project_dir=tmp_path).effective_tracking_uri()
    assert register.champion_info("toy", uri) is None
    promo = [r for r in audit.read(tmp_path / ".mlc") if r["event"] == "promotion"][-1]
    assert promo["details"]["pending_approval"] is True


def test_unwritable_store_is_a_step_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    uri = f"sqlite:///{blocker}/mlflow.db"
    with pytest.raises(StepError, match=r"step 'register': the MLflow store .* cannot"):
        _run(tmp_path, _inputs(tmp_path, 1, True, 0.8), "1", uri=uri)


def test_locked_store_is_a_step_error_and_keeps_versions(tmp_path: Path) -> None:
    _run(tmp_path, _inputs(tmp_path, 1, True, 0.8), "1")
    db = tmp_path / ".mlc" / "mlflow.db"
    holder = sqlite3.connect(db, timeout=0.1)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StepError, match="locked"):
            _run(tmp_path, _inputs(tmp_path, 2, True, 0.9), "2")
    finally:
        holder.rollback()
        holder.close()
    uri = StepContext(project_dir=tmp_path).effective_tracking_uri()
    info = register.champion_info("toy", uri)
    assert info is not None and info["version"] == "1"


def test_requirements_name_what_loading_the_model_needs() -> None:
    from importlib.metadata import version

    plain = register.pip_requirements()
    names = {r.split("==")[0] for r in plain}
    assert {"scikit-learn", "mlflow-skinny", "skops"} <= names
    assert not names & {"torch", "lightning"}
    lightning = register.pip_requirements(["mlc.runtime.lightning_mlp.MLPEstimator"])
    pins = dict(r.split("==") for r in lightning)
    # The local build label (+cpu) names no build an index has.
    assert pins["torch"] == version("torch").split("+")[0] and "+" not in pins["torch"]
    assert pins["lightning"] == version("lightning")


def test_mlflow_progress_lines_are_dropped_and_the_rest_passed_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sys

    with register._mlflow_chatter_muted():
        sys.stderr.write("Successfully registered model 'credit-risk'.\n")
        sys.stderr.write("Created version '3' of model 'credit-risk'.\n")
        sys.stderr.write("UserWarning: something the user should see\n")
    assert capsys.readouterr().err == "UserWarning: something the user should see\n"


def test_register_leaves_the_process_wide_mlflow_uris_as_they_were(tmp_path: Path) -> None:
    import mlflow

    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    with register._mlflow_uris_restored():
        mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")
        mlflow.set_registry_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before
