"""The spec's `tracking` section against a real `mlflow server` on loopback: `mlc run` registers
into the server (not a sqlite file beside the project), and `mlc batch` and `mlc serve` load the
model from it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support import EXAMPLES, REPO

pytestmark = pytest.mark.slow

MLC = str(REPO / ".venv" / "bin" / "mlc")
FAST = ["tuning.trials=2", "tuning.cv_folds=2", "tuning.parallelism=1"]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_runs_register_into_the_tracking_server_and_batch_loads_from_it(tmp_path: Path) -> None:
    port = _port()
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{server_dir / 'mlflow.db'}",
            "--artifacts-destination",
            str(server_dir / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=server_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server not up in 120 s")

        project = tmp_path / "credit"
        shutil.copytree(EXAMPLES / "credit", project, ignore=shutil.ignore_patterns(".mlc", "out"))
        env = {
            **os.environ,
            "MLC_PSEUDONYM_KEY": "tracking-test-key",
            "OMP_NUM_THREADS": "1",
            "MLC_TRACKING": uri,
        }
        spec = ["+tracking.uri=env:MLC_TRACKING"]
        run = subprocess.run(
            [MLC, "run", "mlc.yaml", "-q", *FAST, *spec],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert not (project / ".mlc" / "mlflow.db").exists()

        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        champion = client.get_model_version_by_alias("credit-risk", "champion")
        assert champion.version == "1"

        scored = subprocess.run(
            [
                MLC,
                "batch",
                "mlc.yaml",
                *spec,
                "-i",
                "data/applications.csv",
                "-o",
                str(tmp_path / "o"),
                "--json",
            ],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert scored.returncode == 0, scored.stderr[-3000:]
        summary = json.loads(scored.stdout)
        assert summary["version"] == "1" and summary["rows_scored"] == 2000

        plan = subprocess.run(
            [MLC, "serve", "mlc.yaml", *spec, "--show-plan"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert plan.returncode == 0, plan.stderr[-2000:]
        shown = json.loads(plan.stdout)
        assert shown["tracking_uri"] == uri
        assert "tracking-test-key" not in plan.stdout
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
