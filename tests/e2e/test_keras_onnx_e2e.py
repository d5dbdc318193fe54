"""The diabetes example's Keras overlay in edge mode through `mlc run`, then `mlc serve`.

The run trains, registers and exports the champion to ONNX (the parity gate on the test rows);
the package and the server that serves it are checked against the registered model loaded back
from MLflow, with the gate's own regression tolerance.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
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
# auto promotion: the run leaves a champion for `mlc serve` (the base spec promotes by hand)
OVERRIDES = [
    "+framework=keras",
    "training.keras.epochs=20",
    "+serving=edge",
    "feedback.promotion.policy=auto",
]
ATOL, RTOL = 1e-4, 1e-4  # deployment.edge.parity defaults for regression


def _env(project: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(project)}


def _mlc(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLC, *args], cwd=project, env=_env(project), capture_output=True, text=True, timeout=300
    )


def _registered(project: Path) -> Any:
    import mlflow

    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    store = f"sqlite:///{(project / '.mlc' / 'mlflow.db').resolve()}"
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    try:
        return mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


def _port() -> int:
    import socket

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


def _close(got: Any, want: np.ndarray) -> bool:
    diff = np.abs(np.asarray(got, dtype=float) - want)
    return bool(np.all(diff <= ATOL + RTOL * np.abs(want)))


def test_the_keras_overlay_exports_onnx_that_scores_and_serves_like_the_registered_model(
    tmp_path: Path,
) -> None:
    from mlc.runtime import onnx_export

    project = tmp_path / "diabetes"
    shutil.copytree(EXAMPLES / "diabetes", project, ignore=shutil.ignore_patterns(".mlc", "out"))
    run = _mlc(project, "run", "mlc.yaml", "-q", *OVERRIDES)
    assert run.returncode == 0, run.stderr[-3000:]
    (record,) = list((project / ".mlc" / "runs").glob("*.json"))
    steps = {s["step_id"]: s for s in json.loads(record.read_text())["steps"]}
    package = Path(steps["export"]["outputs"]["package"])
    report = json.loads((package / "export.json").read_text())
    assert report["estimator"] == "KerasEstimator" and report["parity"]["passed"]
    assert report["precision"] == "float32" and report["parity"]["test_rows"] > 0

    data = pd.read_csv(project / "data" / "diabetes.csv")
    features = data.drop(columns=["progression"])
    expected = np.asarray(_registered(project).predict(features), dtype=float).ravel()
    scored = onnx_export.load_package(package)(features)["prediction"]
    assert _close(scored, expected)

    shown = _mlc(project, "serve", "mlc.yaml", *OVERRIDES, "--show-plan")
    assert shown.returncode == 0, shown.stderr[-2000:]
    (track,) = json.loads(shown.stdout)["tracks"]
    assert Path(track["onnx"]) == package.resolve()  # served from the package
    port = _port()
    server = subprocess.Popen(
        [MLC, "serve", "mlc.yaml", *OVERRIDES, "--port", str(port)],
        cwd=project,
        env=_env(project),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlc serve exited {server.returncode}: {server.stderr.read()}")
            try:
                status, body = _invoke(port, features.head(20))
                break
            except OSError:
                assert time.monotonic() < deadline, "mlc serve not ready in 60 s"
                time.sleep(0.3)
        assert status == 200, body
        assert _close(body["predictions"], expected[:20])
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
