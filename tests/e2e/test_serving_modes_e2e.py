"""`mode: batch` and `mode: edge` end to end on a copy of the credit example: `mlc run` scores
the batch with the champion (and `mlc batch` scores ad hoc), or exports an ONNX package that
scores like the registered model; both checked against the model loaded back from MLflow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import EXAMPLES, REPO

pytestmark = pytest.mark.slow

MLC = str(REPO / ".venv" / "bin" / "mlc")
FAST = ["tuning.trials=2", "tuning.cv_folds=2", "tuning.parallelism=1"]
KEY = "serving-modes-test-key"


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "credit"
    shutil.copytree(EXAMPLES / "credit", project, ignore=shutil.ignore_patterns(".mlc", "out"))
    return project


def _mlc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLC_PSEUDONYM_KEY": KEY, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [MLC, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def _champion(project: Path) -> object:
    import mlflow.sklearn

    from mlc.runtime.context import StepContext
    from mlc.runtime.steps._data import bind_secrets

    uri = f"sqlite:///{project / '.mlc' / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        model = mlflow.sklearn.load_model("models:/credit-risk@champion")
    finally:
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
        mlflow.set_registry_uri(os.environ["MLFLOW_TRACKING_URI"])
    bind_secrets(model, StepContext(project_dir=project, secrets={"MLC_PSEUDONYM_KEY": KEY}))
    return model


def test_batch_mode_scores_with_the_champion_and_mlc_batch_scores_ad_hoc(
    tmp_path: Path,
) -> None:
    project = _project(tmp_path)
    run = _mlc("run", "mlc.yaml", "-q", *FAST, "+serving=batch", cwd=project)
    assert run.returncode == 0, run.stderr[-3000:]
    predictions = pd.read_parquet(project / "out" / "batch" / "predictions.parquet")
    raw = pd.read_csv(project / "data" / "applications.csv")
    model = _champion(project)
    features = raw.drop(columns=["default"])
    expected = model.predict_proba(features)  # type: ignore[attr-defined]
    assert list(predictions["applicant_id"]) == list(raw["applicant_id"])
    assert np.abs(predictions[["proba_0", "proba_1"]].to_numpy() - expected).max() <= 1e-9
    assert set(predictions["model_version"]) == {"1"}
    summary = json.loads((project / "out" / "batch" / "summary.json").read_text())
    assert summary["rows_scored"] == len(raw) and summary["rows_quarantined"] == 0

    # ad hoc: a file with one row breaking the contract (age out of range) is quarantined
    bad = raw.head(300).copy()
    bad.loc[7, "age"] = 400
    bad.to_csv(tmp_path / "new.csv", index=False)
    adhoc = _mlc(
        "batch", "--input", str(tmp_path / "new.csv"), "-o", str(tmp_path / "o"), cwd=project
    )
    assert adhoc.returncode == 0, adhoc.stderr[-3000:]
    assert "scored 299 of 300 rows with credit-risk v1 (alias champion)" in adhoc.stderr
    quarantined = pd.read_parquet(tmp_path / "o" / "quarantine.parquet")
    # quarantined rows are kept as read (text): a value that broke its type stays visible
    assert list(quarantined["applicant_id"].astype(int)) == [int(bad.loc[7, "applicant_id"])]

    # bad requests: a missing alias names the ones that exist; a missing input names the path
    alias = _mlc(
        "batch",
        "-i",
        str(tmp_path / "new.csv"),
        "-o",
        str(tmp_path / "x"),
        "--alias",
        "prod",
        cwd=project,
    )
    assert alias.returncode == 2 and "no alias 'prod'" in alias.stderr
    assert "champion -> v1" in alias.stderr and "Traceback" not in alias.stderr
    missing = _mlc("batch", "-i", "nope.csv", "-o", str(tmp_path / "y"), cwd=project)
    assert missing.returncode == 2 and "nope.csv" in missing.stderr
    assert not (tmp_path / "x").exists() or not (tmp_path / "x" / "predictions.parquet").exists()


def test_edge_mode_exports_an_onnx_package_that_scores_like_the_registered_model(
    tmp_path: Path,
) -> None:
    from mlc.runtime import onnx_export

    project = _project(tmp_path)
    run = _mlc("run", "mlc.yaml", "-q", *FAST, "+serving=edge", cwd=project)
    assert run.returncode == 0, run.stderr[-3000:]
    (record,) = list((project / ".mlc" / "runs").glob("*.json"))
    steps = {s["step_id"]: s for s in json.loads(record.read_text())["steps"]}
    package = Path(steps["export"]["outputs"]["package"])
    report = json.loads((package / "export.json").read_text())
    assert report["parity"]["passed"] and report["model"]["version"] == "1"
    assert (package / "model.quant.onnx").is_file()
    assert "prestep.json" in report["sha256"]  # pseudonymisation runs beside the graph
    assert KEY not in (package / "prestep.json").read_text()

    raw = pd.read_csv(project / "data" / "applications.csv").head(400)
    features = raw.drop(columns=["default"])
    from mlc.runtime.steps._transforms import Pseudonymiser

    # the pre-step's key comes from the environment at scoring time, as on a device
    Pseudonymiser().bind_key(KEY)
    scored = onnx_export.load_package(package)(features)
    expected = _champion(project).predict_proba(features)  # type: ignore[attr-defined]
    assert np.abs(np.asarray(scored["proba"]) - expected).max() <= 1e-5
    assert (np.asarray(scored["label"]).ravel() == expected.argmax(axis=1)).all()
