"""`mlc serve` end to end: a credit project's champion served by a real `mlc serve` process on a
free loopback port, answering like the model loaded back from MLflow, refusing bad requests with
4xx bodies, and exporting every serving series the monitoring target's rules query."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from support import EXAMPLES, REPO

from mlc.compiler.api import compile_spec
from mlc.runtime import metrics_contract

pytestmark = pytest.mark.slow

MLC = str(REPO / ".venv" / "bin" / "mlc")
KEY = "serve-e2e-key"
FAST = ["tuning.trials=2", "tuning.cv_folds=2", "tuning.parallelism=1"]
# recreate: the champion alone (the spec's canary needs a challenger that differs)
RECREATE = ["~deployment.strategy", "+deployment.strategy={kind:recreate}"]


def _env() -> dict[str, str]:
    # a native crash in a subprocess (one SIGSEGV of `mlc monitor` was seen once in CI and not
    # reproduced in 25 runs here) then prints its Python stack into the assertion's stderr
    return {
        **os.environ,
        "MLC_PSEUDONYM_KEY": KEY,
        "OMP_NUM_THREADS": "1",
        "PYTHONFAULTHANDLER": "1",
    }


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _call(port: int, path: str, body: Any = None) -> tuple[int, Any, str]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            text = answer.read().decode()
            status = answer.status
    except urllib.error.HTTPError as exc:
        text, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(text), text
    except json.JSONDecodeError:
        return status, None, text


def _champion(project: Path) -> Any:
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


def test_mlc_serve_answers_like_the_registered_model_and_exports_what_rules_query(
    tmp_path: Path,
) -> None:
    project = tmp_path / "credit"
    shutil.copytree(EXAMPLES / "credit", project, ignore=shutil.ignore_patterns(".mlc", "out"))
    run = subprocess.run(
        [MLC, "run", "mlc.yaml", "-q", *FAST],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    port = _port()
    server = subprocess.Popen(
        [MLC, "serve", "mlc.yaml", *RECREATE, "--port", str(port)],
        cwd=project,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"mlc serve exited {server.returncode}: {server.stderr.read()}")
            try:
                if _call(port, "/v2/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.25)
        else:
            pytest.fail("mlc serve not ready in 90 s")

        rows = pd.read_csv(project / "data" / "applications.csv").head(25)
        features = rows.drop(columns=["default"])
        expected = _champion(project).predict_proba(features)
        # JSON carries a missing value as null (a NaN literal is not JSON)
        plain = features.astype(object)
        plain[features.isna()] = None
        status, body, _ = _call(
            port,
            "/invocations",
            {
                "dataframe_split": {
                    "columns": list(features.columns),
                    "data": plain.values.tolist(),
                }
            },
        )
        assert status == 200, body
        got = np.asarray(body["probabilities"], dtype=float)
        assert np.abs(got - expected).max() <= 1e-9

        v2 = {
            "inputs": [
                {
                    "name": col,
                    "shape": [len(features)],
                    "datatype": {"O": "BYTES", "i": "INT64"}.get(features[col].dtype.kind, "FP64"),
                    "data": plain[col].tolist(),
                }
                for col in features.columns
            ]
        }
        status, body, _ = _call(port, "/v2/models/credit-risk/infer", v2)
        assert status == 200, body
        (proba,) = [o for o in body["outputs"] if o["name"] == "probabilities"]
        assert np.abs(np.asarray(proba["data"]).reshape(expected.shape) - expected).max() <= 1e-9

        # bad requests: 4xx bodies that name the place; the server stays up
        bad = plain.head(2).copy()
        bad.loc[bad.index[1], "age"] = 400
        status, body, _ = _call(
            port, "/v1/models/credit-risk:predict", {"instances": bad.to_dict("records")}
        )
        assert status == 422 and "age" in body["error"]
        assert _call(port, "/v2/models/nope/infer", v2)[0] == 404
        assert _call(port, "/v2/health/live")[0] == 200

        # every serving series the monitoring target's rules query is exported
        compile_spec(project / "mlc.yaml", ["monitoring"], tmp_path / "out", RECREATE)
        rules_text = "\n".join(
            json.dumps(doc)
            for path in (tmp_path / "out" / "monitoring").rglob("*.yaml")
            for doc in yaml.safe_load_all(path.read_text())
        )
        queried = set(re.findall(r"\bmlc_[a-z_]+", rules_text))
        serving = {
            metrics_contract.REQUESTS_TOTAL,
            metrics_contract.REQUEST_ERRORS_TOTAL,
            metrics_contract.REQUEST_DURATION_BUCKET,
        }
        assert serving & queried, queried
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            exported = answer.read().decode()
        for series in sorted(serving & queried):
            assert re.search(rf'^{series}\{{[^}}]*model="credit-risk"', exported, re.M), series
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    assert server.returncode == 0, server.stderr.read()[-2000:] if server.stderr else ""
    from mlc.runtime.serving import read_log

    logged = read_log(project / ".mlc" / "predictions")
    assert len(logged) >= 50  # the two scoring calls above, 25 rows each

    # the log is current data for `mlc monitor`; labels that arrive later join on
    # (request_id, row); the performance it reports is the metric on exactly those rows
    first = logged[logged["request_id"] == logged["request_id"].iloc[0]]
    truth = rows.reset_index(drop=True)["default"]
    labels = pd.DataFrame(
        {
            "request_id": first["request_id"],
            "row": first["row"],
            "default": truth[first["row"]].values,
        }
    )
    labels.to_csv(tmp_path / "labels.csv", index=False)
    watched = subprocess.run(
        [
            MLC,
            "monitor",
            "mlc.yaml",
            *RECREATE,
            "--from-log",
            "--labels",
            str(tmp_path / "labels.csv"),
        ],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert watched.returncode in (0, 10), watched.stderr[-3000:]
    report = json.loads((project / ".mlc" / "monitor" / "signal" / "report.json").read_text())
    assert report["performance"]["rows"] == len(first)
    from sklearn.metrics import roc_auc_score

    expected_auc = roc_auc_score(truth[first["row"]], expected[first["row"], 1])
    assert report["performance"]["values"]["roc_auc"] == pytest.approx(expected_auc, abs=1e-12)

    # --workers 2: two processes answer on the one port, and a scrape of either reports the
    # whole server's requests
    port = _port()
    pool = subprocess.Popen(
        [MLC, "serve", "mlc.yaml", *RECREATE, "--port", str(port), "--workers", "2"],
        cwd=project,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert pool.poll() is None, pool.stderr.read() if pool.stderr else ""
            try:
                if _call(port, "/v2/health/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "mlc serve --workers 2 not ready in 120 s"
            time.sleep(0.25)
        one = {"dataframe_records": plain.head(1).to_dict("records")}
        codes = [_call(port, "/invocations", one)[0] for _ in range(60)]
        assert codes == [200] * 60
        time.sleep(2.5)  # each worker shares its counts every second
        totals = []
        for _ in range(4):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
                text = answer.read().decode()
            found = re.findall(
                rf'^{metrics_contract.REQUESTS_TOTAL}\{{[^}}]*code="200"[^}}]*\}} (\S+)$',
                text,
                re.M,
            )
            totals.append(sum(float(v) for v in found))
        assert totals == [60.0] * 4, totals
        children = subprocess.run(
            ["pgrep", "-P", str(pool.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) == 2
    finally:
        pool.send_signal(signal.SIGTERM)
        try:
            pool.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pool.kill()
    assert pool.returncode == 0, pool.stderr.read()[-2000:] if pool.stderr else ""
