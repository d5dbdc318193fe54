"""The kfp monitor pipeline runs under kfp.local: `mlc monitor` decides, and only a retrain
decision calls the Kubeflow Pipelines API with the kfp client — here a local HTTP receiver
answering the three calls the client makes to start a run (health, experiment, run), which
records what it was sent; with nothing listening, the run fails with a clear message."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from mlc.compiler.api import compile_spec

REPO = Path(__file__).resolve().parents[2]
CREDIT = REPO / "examples" / "credit"
FAST = ["tuning.trials=2", "tuning.cv_folds=2", "training.model.params.max_iter=60"]

pytestmark = pytest.mark.slow

_RUNNER = """
import json, sys, kfp.components, kfp.local
package, root, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=root,
               raise_on_error=False)
kfp.components.load_component_from_file(package)(**args)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "MLC_PSEUDONYM_KEY": "kfp-monitor-key", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kfp-monitor") / "credit"
    shutil.copytree(CREDIT, root, ignore=shutil.ignore_patterns(".mlc", "out"))
    run = subprocess.run(
        [str(REPO / ".venv/bin/mlc"), "run", "mlc.yaml", "-q", *FAST],
        cwd=root,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    # the image carries the compiled packages at <project>/kfp/, as the monitor expects
    compile_spec(root / "mlc.yaml", ["kfp"], root, FAST)
    return root


Call = tuple[str, str, dict[str, Any]]


class _KfpApi(http.server.BaseHTTPRequestHandler):
    """The few Kubeflow Pipelines v2beta1 calls the kfp client makes to start a run."""

    calls: list[Call] = []

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length)) if length else {}
        self.calls.append((self.command, self.path, body))
        path = self.path.split("?")[0]
        if path.endswith("/healthz"):
            out: dict[str, Any] = {"commit_sha": "test", "tag_name": "2.5.0", "multi_user": False}
        elif path == "/apis/v2beta1/experiments" and self.command == "GET":
            out = {"experiments": [{"experiment_id": "e-1", "display_name": "credit-risk"}]}
        elif path == "/apis/v2beta1/runs" and self.command == "POST":
            out = {"run_id": "r-123", "display_name": body.get("display_name")}
        else:
            self.send_error(404)
            return
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def kfp_api() -> Iterator[tuple[str, list[Call]]]:
    calls: list[Call] = []
    handler = type("Handler", (_KfpApi,), {"calls": calls})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", _free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", calls
    finally:
        server.shutdown()
        server.server_close()


def _shifted(project: Path, tmp: Path) -> Path:
    shifted = pd.read_csv(project / "data" / "applications.csv").sample(500, random_state=2)
    shifted["income"] *= 3
    shifted["debt"] *= 3
    path = tmp / "shifted.csv"
    shifted.to_csv(path, index=False)
    return path


def _run_monitor(project: Path, tmp: Path, current: Path, host: str) -> tuple[Path, str]:
    record = json.loads(next((project / ".mlc" / "runs").glob("*.json")).read_text())
    args = {
        "project_dir": str(project),
        "current": str(current),
        # right after the run: the weekly retrain schedule is not due
        "now": record["started"],
        "kfp_host": host,
        "overrides": json.dumps(FAST),
    }
    root = tmp / "kfp-root"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _RUNNER,
            str(project / "kfp/monitor.yaml"),
            str(root),
            json.dumps(args),
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    (run,) = list(root.iterdir())
    return run, proc.stdout + proc.stderr


def test_no_retrain_completes_without_calling_kfp(
    project: Path, tmp_path: Path, kfp_api: tuple[str, list[Call]]
) -> None:
    host, calls = kfp_api
    run, output = _run_monitor(project, tmp_path, project / "data" / "applications.csv", host)
    decision = json.loads(next(run.rglob("decision.json")).read_text())
    assert decision["retrain"] is False, decision
    assert not (run / "start-training").exists(), output[-3000:]
    assert calls == [], "the kfp API was called without a retrain decision"
    assert "SUCCESS" in output and "FAILURE" not in output, output[-2000:]


def test_retrain_starts_the_training_pipeline_through_the_kfp_client(
    project: Path, tmp_path: Path, kfp_api: tuple[str, list[Call]]
) -> None:
    host, calls = kfp_api
    run, output = _run_monitor(project, tmp_path, _shifted(project, tmp_path), host)
    decision = json.loads(next(run.rglob("decision.json")).read_text())
    assert decision["retrain"] is True, decision
    (created,) = [
        body for method, path, body in calls if (method, path) == ("POST", "/apis/v2beta1/runs")
    ]
    # the training package compiled beside the monitor, with the project as its parameter
    training = next(yaml.safe_load_all((project / "kfp" / "pipeline.yaml").read_text()))
    sent = created["pipeline_spec"]["pipeline_spec"]
    assert sent["pipelineInfo"]["name"] == "credit-risk"
    assert sent["root"] == training["root"] and sent["components"] == training["components"]
    assert created["runtime_config"]["parameters"] == {"project_dir": str(project)}
    assert created["display_name"] == "credit-risk-retrain"
    assert created["experiment_id"] == "e-1"
    assert "mlc: started training run r-123" in output, output[-3000:]


def test_retrain_without_a_reachable_api_fails_clearly(project: Path, tmp_path: Path) -> None:
    host = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    run, output = _run_monitor(project, tmp_path, _shifted(project, tmp_path), host)
    decision = json.loads(next(run.rglob("decision.json")).read_text())
    assert decision["retrain"] is True, decision
    assert (
        f"retraining was decided but the training pipeline credit-risk could not be started on "
        f"{host}" in output
    ), output[-3000:]
    assert "Pipeline" in output and "FAILURE" in output
