"""The spec's `tracking` section against a real `mlflow server` on loopback: `mlc run` and a
kfp.local run of the compiled package register into the server (not a sqlite file beside the
project or inside a component), and `mlc batch` and a real `mlc serve` load the model from it."""

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

import pandas as pd
import pytest
from support import EXAMPLES, REPO

from mlc.compiler.api import compile_spec

pytestmark = pytest.mark.slow

MLC = str(REPO / ".venv" / "bin" / "mlc")
FAST = ["tuning.trials=2", "tuning.cv_folds=2", "tuning.parallelism=1"]
RECREATE = ["~deployment.strategy", "+deployment.strategy={kind:recreate}"]
KFP_RUNNER = """
import sys, kfp.components, kfp.local
package, project, root = sys.argv[1:4]
kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=root,
               raise_on_error=True)
kfp.components.load_component_from_file(package)(project_dir=project)
"""


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

        # the kfp package, run by kfp.local, registers into the same server (on a cluster each
        # component is a pod: a sqlite file inside it would be lost with it) ...
        kfp_spec = [*spec, "name=credit-kfp"]
        compile_spec(project / "mlc.yaml", ["kfp"], tmp_path / "out", [*FAST, *kfp_spec])
        kfp_project = tmp_path / "kfp-project"
        shutil.copytree(project / "data", kfp_project / "data")
        ran = subprocess.run(
            [
                sys.executable,
                "-c",
                KFP_RUNNER,
                str(tmp_path / "out" / "kfp" / "pipeline.yaml"),
                str(kfp_project),
                str(tmp_path / "kfp-root"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
        registered = client.get_model_version_by_alias("credit-kfp", "champion")
        assert registered.version == "1"
        assert not list(kfp_project.rglob("mlflow.db"))

        # ... and a real `mlc serve` loads that version from it and answers
        serve_port = _port()
        served = subprocess.Popen(
            [MLC, "serve", "mlc.yaml", *kfp_spec, *RECREATE, "--port", str(serve_port)],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            row = pd.read_csv(project / "data" / "applications.csv").head(1)
            body = {
                "dataframe_records": json.loads(
                    row.drop(columns=["default"]).to_json(orient="records")
                )
            }
            deadline = time.monotonic() + 120
            while True:
                assert served.poll() is None, served.stderr.read() if served.stderr else ""
                try:
                    request = urllib.request.Request(
                        f"http://127.0.0.1:{serve_port}/invocations",
                        data=json.dumps(body).encode(),
                        headers={"content-type": "application/json"},
                    )
                    with urllib.request.urlopen(request, timeout=10) as answer:
                        assert answer.headers["x-mlc-model-version"] == "1"
                        assert len(json.loads(answer.read())["predictions"]) == 1
                        break
                except OSError:
                    assert time.monotonic() < deadline, "mlc serve did not answer in 120 s"
                    time.sleep(0.5)
        finally:
            served.terminate()
            served.wait(timeout=60)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
