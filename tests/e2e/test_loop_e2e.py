"""The closed loop with real processes: `mlc run` → `mlc serve` (champion) → shifted traffic with
labels arriving later → `mlc loop` → retrain on the new rows → gate against the champion on the
same holdout → canary in the live server → automatic promotion, 0 failed requests; `mlc
lineage` explains v2 by the drift report and `mlc audit verify` passes. Then a faulty
challenger is canaried by the same live server and rolled back automatically while the champion
keeps serving."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from support import EXAMPLES, REPO, TESTS

pytestmark = pytest.mark.slow

MLC = str(REPO / ".venv" / "bin" / "mlc")
KEY = "loop-e2e-key"
TOKEN = "loop-e2e-admin"
SPEC = [
    "tuning.trials=2",
    "tuning.cv_folds=2",
    "tuning.parallelism=1",
    "deployment.strategy.steps=[50,100]",
    "deployment.strategy.bake_time=2",
    "deployment.strategy.rollback=[{metric:error_rate,op:'>',threshold:0.05}]",
    "+deployment.serving={min_requests:40,reload_interval:1,log_segment_rows:500,"
    "log_segment_seconds:3600}",
    "+feedback.retrain={cooldown:0}",
    # the loop is under test, not the example's absolute bar on a shifted population
    "evaluation.gates.0.threshold=0.7",
]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "MLC_PSEUDONYM_KEY": KEY,
        "MLC_SERVE_ADMIN_TOKEN": TOKEN,
        "OMP_NUM_THREADS": "1",
        # the faulty challenger's class unpickles in the server
        "PYTHONPATH": str(TESTS / "runtime"),
    }


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mlc(project: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLC, *args],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Traffic:
    """One keep-alive client sending shifted rows one at a time until stopped."""

    def __init__(self, port: int, rows: list[dict[str, Any]], types: dict[str, str]) -> None:
        self.port, self.rows, self.types = port, rows, types
        self.codes: list[int] = []
        self.versions: list[str] = []
        self.sent: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        i = 0
        while not self._stop.is_set():
            row = self.rows[i % len(self.rows)]
            body = {
                "inputs": [
                    {"name": k, "shape": [1], "datatype": self.types[k], "data": [v]}
                    for k, v in row.items()
                ]
            }
            request_id = f"req-{i}"
            try:
                conn.request(
                    "POST",
                    "/v2/models/credit-risk/infer",
                    json.dumps(body),
                    {"content-type": "application/json", "x-request-id": request_id},
                )
                reply = conn.getresponse()
                reply.read()
                self.codes.append(reply.status)
                self.versions.append(reply.getheader("x-mlc-model-version") or "")
            except OSError:
                self.codes.append(-1)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.sent.append(request_id)
            i += 1
        conn.close()

    def wait_for(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while len(self.codes) < count:
            assert time.monotonic() < deadline, f"only {len(self.codes)} requests in {timeout} s"
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def _datatype(kind: str) -> str:
    """The V2 datatype of a column by its dtype kind (a null keeps its column's type)."""
    return {"b": "BOOL", "i": "INT64", "f": "FP64"}.get(kind, "BYTES")


def _status(port: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/admin/rollout", headers={"authorization": f"Bearer {TOKEN}"})
    doc = json.loads(conn.getresponse().read())
    conn.close()
    return dict(doc)


def _client(project: Path) -> Any:
    from mlflow import MlflowClient

    uri = f"sqlite:///{project / '.mlc' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _register_faulty(project: Path, champion: str) -> str:
    """A challenger that fails on one region's rows (a bad release that passed offline)."""
    import mlflow
    import mlflow.sklearn

    if str(TESTS / "runtime") not in sys.path:
        sys.path.insert(0, str(TESTS / "runtime"))  # as the server's PYTHONPATH has it
    from rollout_faulty import FailsOnRegion

    uri = f"sqlite:///{project / '.mlc' / 'mlflow.db'}"
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        model = mlflow.sklearn.load_model(f"models:/credit-risk/{champion}")
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                FailsOnRegion(model, "west"), name="model", serialization_format="cloudpickle"
            )
        version = str(mlflow.register_model(info.model_uri, "credit-risk").version)
    finally:
        if before:
            mlflow.set_tracking_uri(before)
            mlflow.set_registry_uri(before)
    _client(project).set_registered_model_alias("credit-risk", "challenger", version)
    return version


def test_drift_retrain_canary_promote_then_a_faulty_challenger_rolls_back(tmp_path: Path) -> None:
    project = tmp_path / "credit"
    shutil.copytree(EXAMPLES / "credit", project, ignore=shutil.ignore_patterns(".mlc", "out"))
    first = _mlc(project, "run", "mlc.yaml", "-q", *SPEC)
    assert first.returncode == 0, first.stderr[-3000:]
    client = _client(project)
    assert str(client.get_model_version_by_alias("credit-risk", "champion").version) == "1"

    data = pd.read_csv(project / "data" / "applications.csv")
    shifted = data.assign(income=data["income"] * 3.0, debt=data["debt"] * 0.5)
    types = {c: _datatype(shifted[c].dtype.kind) for c in shifted.columns if c != "default"}
    features = shifted.drop(columns=["default"]).astype(object)
    features = features.where(features.notna(), None)
    rows = [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in features.to_dict("records")
    ]
    port = _port()
    server = subprocess.Popen(
        [MLC, "serve", "mlc.yaml", *SPEC, "--port", str(port)],
        cwd=project,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    traffic: Traffic | None = None
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/v2/health/ready")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "mlc serve not ready in 120 s"
            time.sleep(0.25)
        assert _status(port)["state"] == "idle"  # v1 holds both aliases: nothing to judge

        traffic = Traffic(port, rows, types)
        traffic.wait_for(1100)  # at least two log segments of 500 rows are closed
        from mlc.runtime.serving import read_log

        # labels arrive for the logged requests (a segment closes early where a column's type
        # changes, e.g. the first null: so count what is closed)
        logged = read_log(project / ".mlc" / "predictions")
        numbers = sorted(int(r.removeprefix("req-")) for r in set(logged["request_id"]))
        assert len(numbers) >= 500
        labels = project / "labels"
        labels.mkdir()
        arrived = pd.DataFrame(
            {
                "request_id": [f"req-{i}" for i in numbers],
                "row": 0,
                "default": [int(data["default"].iloc[i % len(data)]) for i in numbers],
            }
        )
        arrived.to_csv(labels / "batch-1.csv", index=False)

        looped = _mlc(
            project,
            "loop",
            "mlc.yaml",
            *SPEC,
            "--serve-url",
            f"http://127.0.0.1:{port}",
            "--wait",
            "180",
            "--json",
        )
        assert looped.returncode == 0, looped.stdout[-2000:] + looped.stderr[-3000:]
        outcome = json.loads(looped.stdout[looped.stdout.index("{") :])
        assert outcome["outcome"] == "registered", outcome
        assert outcome["version"] == "2"
        assert outcome["evidence"]["data"]["production_rows"] == len(numbers)
        assert "income" in outcome["evidence"]["drifted"]
        assert outcome["rollout"]["outcome"] == "promote", outcome["rollout"]
        assert str(client.get_model_version_by_alias("credit-risk", "champion").version) == "2"
        served_before = len(traffic.codes)
        traffic.wait_for(served_before + 100)
        assert set(traffic.versions[-50:]) == {"2"}
        assert [c for c in traffic.codes if c != 200] == []  # 0 failed requests throughout

        # a faulty challenger: the same live server canaries it and rolls it back by itself
        bad = _register_faulty(project, "2")
        deadline = time.monotonic() + 120
        while True:
            status = _status(port)
            last = status.get("last_decision") or {}
            if last.get("decision") == "rollback":
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
        assert last["evidence"]["candidate"]["version"] == bad
        assert last["by"] == "auto"
        assert str(client.get_model_version_by_alias("credit-risk", "champion").version) == "2"
        after = len(traffic.codes)
        traffic.wait_for(after + 100)
        assert set(traffic.codes[after:]) == {200}
        assert set(traffic.versions[after + 10 :]) == {"2"}
    finally:
        if traffic is not None:
            traffic.stop()
        server.terminate()
        server.wait(timeout=60)

    lineage = _mlc(project, "lineage", "--json")
    assert lineage.returncode == 0, lineage.stderr
    v2 = next(r for r in json.loads(lineage.stdout) if r["version"] == "2")
    assert v2["reason"]["decision"] == "retrain"
    assert len(v2["reason"]["drift_report_sha256"]) == 64
    shown = _mlc(project, "lineage")
    assert (
        f"trained because: retrained on {len(numbers)} labelled production row(s)" in shown.stdout
    )
    verified = _mlc(project, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    events = [
        json.loads(line)["event"]
        for line in (project / ".mlc" / "audit.jsonl").read_text().splitlines()
    ]
    for event in ("loop.retrain", "loop.outcome", "rollout.start", "rollout.promote"):
        assert event in events, event
    assert "rollout.rollback" in events
