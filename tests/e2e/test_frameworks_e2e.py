"""Each framework overlay of the diabetes example through `mlc run`, end to end in a subprocess.

Per framework: train (its own early stopping on the validation split), evaluate, explain, the
gate, register (the champion, auto-promoted by the batch overlay), batch scoring with the
champion; then the ONNX edge export with its parity gate (torch-backend Keras's edge run, export
and serving from the package are in tests/e2e/test_keras_onnx_e2e.py; the tensorflow-backend
case exports through tf2onnx here). XGBoost is also served by `mlc
serve`, as is a Spark MLlib model (`+framework=spark_ml`, trained in Spark on the spark
engine). The batch's predictions and the server's answers are checked against the registered
model loaded back from MLflow.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support import EXAMPLES, REPO

pytestmark = pytest.mark.slow

MLC = str(REPO / ".venv" / "bin" / "mlc")
MODEL = "diabetes-progression"
# small settings: the overlays' own, fewer epochs for the networks
SMALL = {
    "xgboost": [],
    "lightgbm": [],
    "keras": ["training.keras.epochs=30"],
    "keras_tensorflow": ["training.keras.epochs=30", "training.keras.backend=tensorflow"],
    "lightning_module": ["training.lightning.max_epochs=30", "training.lightning.accelerator=cpu"],
}
# the overlay each case runs (the case's own name where not listed)
OVERLAY = {"keras_tensorflow": "keras"}
ESTIMATOR = {
    "keras_tensorflow": "KerasEstimator",
    "xgboost": "XGBRegressor",
    "lightgbm": "LGBMRegressor",
    "lightning_module": "MLPEstimator",
}
REQUIREMENT = {
    "xgboost": "xgboost==",
    "lightgbm": "lightgbm==",
    "keras": "keras==",
    "keras_tensorflow": "tensorflow-cpu==",
    "lightning_module": "lightning==",
}


def _env(project: Path) -> dict[str, str]:
    # the user's LightningModule lives in the project (models/regressor.py)
    path = os.pathsep.join(filter(None, [str(project), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}


def _mlc(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLC, *args],
        cwd=project,
        env=_env(project),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


_LOAD = """
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

project, features, out = sys.argv[1:4]
store = f"sqlite:///{(Path(project) / '.mlc' / 'mlflow.db').resolve()}"
mlflow.set_tracking_uri(store)
mlflow.set_registry_uri(store)
uri = "models:/diabetes-progression@champion"
model = mlflow.pyfunc.load_model(uri)
np.save(out, np.asarray(model.predict(pd.read_parquet(features)), dtype=float))
print(Path(mlflow.pyfunc.get_model_dependencies(uri)).read_text())
"""


def _registered(project: Path, features: pd.DataFrame) -> tuple[np.ndarray, str]:
    """The champion's predictions on `features`, loaded back from the project's MLflow store,
    and its requirements. In a fresh process: Keras takes one backend per process, and the
    cases train under different ones."""
    rows, out = project / "rows.parquet", project / "predictions.npy"
    features.to_parquet(rows)
    loaded = subprocess.run(
        [sys.executable, "-c", _LOAD, str(project), str(rows), str(out)],
        capture_output=True,
        text=True,
        env=_env(project),
        timeout=300,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    return np.load(out), loaded.stdout


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _invoke(port: int, rows: pd.DataFrame) -> tuple[int, Any]:
    body = {"dataframe_split": {"columns": list(rows.columns), "data": rows.values.tolist()}}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _serve_and_compare(
    project: Path, overrides: list[str], rows: pd.DataFrame, expected: Any
) -> None:
    port = _port()
    server = subprocess.Popen(
        [MLC, "serve", "mlc.yaml", *overrides, "--port", str(port)],
        cwd=project,
        env=_env(project),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlc serve exited {server.returncode}: {server.stderr.read()}")
            try:
                status, body = _invoke(port, rows)
                break
            except OSError:
                assert time.monotonic() < deadline, "mlc serve not ready in 120 s"
                time.sleep(0.5)
        assert status == 200, body
        np.testing.assert_allclose(np.asarray(body["predictions"]), expected, rtol=1e-6)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.parametrize("framework", list(SMALL))
def test_a_framework_overlay_trains_registers_scores_exports_and_serves(
    framework: str, tmp_path: Path
) -> None:
    project = tmp_path / "diabetes"
    shutil.copytree(EXAMPLES / "diabetes", project, ignore=shutil.ignore_patterns(".mlc", "out"))
    overrides = [f"+framework={OVERLAY.get(framework, framework)}", *SMALL[framework]]
    run = _mlc(project, "run", "mlc.yaml", "-q", *overrides, "+serving=batch")
    assert run.returncode == 0, run.stderr[-3000:]
    data = pd.read_csv(project / "data" / "diabetes.csv")
    features = data.drop(columns=["progression"])
    expected, requirements = _registered(project, features)
    assert REQUIREMENT[framework] in requirements
    rmse = float(np.sqrt(((expected - data["progression"]) ** 2).mean()))
    assert rmse < 80  # the gate held rmse <= 65 on the test split
    batch = pd.read_parquet(project / "out" / "batch" / "predictions.parquet")
    scored = batch.set_index("patient_id")["prediction"].reindex(data["patient_id"])
    np.testing.assert_allclose(scored.to_numpy(dtype=float), expected, rtol=1e-6)

    # torch-backend Keras is exported and served in test_keras_onnx_e2e; on tensorflow the
    # export goes through tf2onnx
    if framework != "keras":
        edge = _mlc(project, "run", "mlc.yaml", "-q", *overrides, "+serving=edge")
        assert edge.returncode == 0, edge.stderr[-3000:]
        exports = [
            json.loads(p.read_text())
            for p in (project / ".mlc" / "cache").glob("*.package/export.json")
        ]
        assert len(exports) == 1 and exports[0]["parity"]["passed"]
        assert exports[0]["estimator"] == ESTIMATOR[framework]
        if framework in ("xgboost", "lightgbm"):
            assert exports[0]["parity"]["probe_rows"] > 0  # probes on the split thresholds
    if framework == "xgboost":
        _serve_and_compare(project, overrides, features.head(10), expected[:10])


def test_a_spark_mllib_model_trains_gates_registers_scores_and_serves(tmp_path: Path) -> None:
    """`+framework=spark_ml`: MLlib fits in Spark on the spark engine's hash split, the gate
    judges it, the registered copy scores batches in Spark and serves without a JVM."""
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    from support.tools import require_tool

    require_tool("java")
    import hashlib

    project = tmp_path / "diabetes"
    shutil.copytree(EXAMPLES / "diabetes", project, ignore=shutil.ignore_patterns(".mlc", "out"))
    overrides = ["+framework=spark_ml", "+split=hash"]
    run = _mlc(project, "run", "mlc.yaml", "-q", *overrides, "+serving=batch")
    assert run.returncode == 0, run.stderr[-3000:]
    data = pd.read_csv(project / "data" / "diabetes.csv")
    features = data.drop(columns=["progression"])
    expected, requirements = _registered(project, features)
    assert "pyspark" not in requirements  # the registered copy is numpy

    # the evaluate step's rmse, recomputed on the test rows the documented hash picks
    # (sha256 of "seed:key", first 13 hex digits over 2**52; below test_size is test)
    def fraction(key: int) -> float:
        return int(hashlib.sha256(f"7:{key}".encode()).hexdigest()[:13], 16) / 2**52

    test = data["patient_id"].map(fraction) < 0.2
    rmse = float(np.sqrt(((expected[test] - data["progression"][test]) ** 2).mean()))
    record = json.loads(sorted((project / ".mlc" / "runs").glob("*.json"))[-1].read_text())
    steps = {s["kind"]: s for s in record["steps"]}
    assert steps["evaluate"]["summary"]["metrics"]["rmse"] == pytest.approx(rmse, rel=1e-9)
    assert steps["gate"]["summary"]["passed"] is True and rmse <= 65
    assert steps["train"]["summary"]["framework"] == "spark_ml"

    batch = pd.read_parquet(project / "out" / "batch" / "predictions.parquet")
    scored = batch.set_index("patient_id")["prediction"].reindex(data["patient_id"])
    np.testing.assert_allclose(scored.to_numpy(dtype=float), expected, rtol=1e-6)
    _serve_and_compare(project, overrides, features.head(10), expected[:10])
