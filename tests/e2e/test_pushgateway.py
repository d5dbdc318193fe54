"""Drift gauges pushed to a real Prometheus Pushgateway, and `mlc monitor` end to end on a log.

The Pushgateway is Debian's `prometheus-pushgateway`, started on a free loopback port with a
temporary persistence file; its `/metrics` is scraped to read back what was pushed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.tools import require_tool

from mlc.runtime import drift, metrics_contract, profile

REPO = Path(__file__).resolve().parents[2]
MLC = [sys.executable, "-c", "from mlc.compiler.cli import main; main()"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[str]:
    binary = require_tool("prometheus-pushgateway")
    port = _free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--persistence.file={tmp_path / 'push.db'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    pytest.fail(f"pushgateway did not start: {err[-2000:]}")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _scrape(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def _value(text: str, series: str, **labels: str) -> float:
    """The value of the sample of `series` carrying (at least) `labels`."""
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(series)}\{{([^}}]*)\}} (\S+)$", line)
        if not m:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1)))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(2))
    raise AssertionError(f"no {series} {labels} in:\n{text}")


def test_pushed_gauges_read_back_from_the_pushgateway(pushgateway: str) -> None:
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 3000), "c": rng.choice(["a", "b"], 3000)})
    cur = pd.DataFrame({"x": rng.normal(1, 1, 1000), "c": rng.choice(["a", "b"], 1000)})
    rows = drift.profile_drift(profile.build(ref), cur, ["x", "c"], "psi", 0.2, categorical="chi2")
    text = drift.prometheus_text(
        "credit-risk",
        rows,
        {"roc_auc": 0.75},
        prediction={"score": 0.125},
        rows={"current": 1000, "labelled": 40, "reference": 3000},
        timestamp=1_700_000_000.0,
    )
    drift.push(pushgateway, text, "mlc-monitor", "a/b c")  # an instance that needs base64
    got = _scrape(pushgateway)
    grouping = {"job": "mlc-monitor", "instance": "a/b c"}
    by_feature = {r["feature"]: r["score"] for r in rows}
    for feature, score in by_feature.items():
        assert _value(
            got, metrics_contract.FEATURE_DRIFT_SCORE, feature=feature, **grouping
        ) == pytest.approx(score, rel=1e-5)
    assert _value(got, metrics_contract.MODEL_PERFORMANCE, metric="roc_auc") == 0.75
    assert _value(got, metrics_contract.PREDICTION_DRIFT_SCORE, **grouping) == 0.125
    assert _value(got, metrics_contract.MONITOR_ROWS, sample="labelled", **grouping) == 40
    assert _value(got, metrics_contract.MONITOR_LAST_RUN, **grouping) == 1.7e9
    # a second push replaces the group's gauges (PUT), it does not add to them
    drift.push(pushgateway, drift.prometheus_text("credit-risk", rows[:1]), "mlc-monitor", "a/b c")
    again = _scrape(pushgateway)
    assert not re.search(rf"^{metrics_contract.MONITOR_ROWS}\{{", again, re.M)
    assert _value(again, metrics_contract.FEATURE_DRIFT_SCORE, feature=rows[0]["feature"]) > 0


def test_an_unreachable_pushgateway_is_a_clear_error() -> None:
    with pytest.raises(drift.PushError, match="cannot reach the Pushgateway"):
        drift.push(f"http://127.0.0.1:{_free_port()}", "x 1\n", "j", "i", timeout=2)


def _mlc(project: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MLC_PSEUDONYM_KEY": "demo-key",
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "200",
        **extra_env,
    }
    return subprocess.run(
        [*MLC, *args], cwd=project, env=env, capture_output=True, text=True, timeout=900
    )


def _log(folder: Path, frame: pd.DataFrame, times: np.ndarray, version: str) -> None:
    """A prediction log as `mlc serve` writes it: closed segments of the served rows."""
    from mlc.runtime.serving.predlog import PredictionLog

    log = PredictionLog(folder, segment_rows=400, segment_seconds=0)
    records = frame.to_dict("records")
    log.append(
        [
            {
                "request_id": f"r{i}",
                "row": 0,
                "time": float(t),
                "track": "stable",
                "model_version": version,
                "shadow": False,
                "latency_ms": 1.0,
                **rec,
            }
            for i, (rec, t) in enumerate(zip(records, times, strict=True))
        ]
    )
    log.close()


@pytest.mark.slow
def test_monitor_reads_the_window_against_the_stored_profile(
    pushgateway: str, tmp_path: Path
) -> None:
    project = tmp_path / "credit"
    shutil.copytree(
        REPO / "examples" / "credit", project, ignore=shutil.ignore_patterns(".mlc", "out")
    )
    run = _mlc(project, "run", "mlc.yaml", "tuning.trials=2")
    assert run.returncode == 0, run.stderr[-3000:]
    record = json.loads(next((project / ".mlc" / "runs").glob("*.json")).read_text())
    (reg,) = [s for s in record["steps"] if s["kind"] == "register"]
    stored = Path(reg["outputs"]["model_version"]) / profile.FILE
    doc = profile.read(str(stored))
    version = json.loads((stored.parent / "model_version.json").read_text())["version"]
    # the same profile is on the version's MLflow run
    from mlflow import MlflowClient

    mlflow_run = json.loads((stored.parent / "model_version.json").read_text())["mlflow_run_id"]
    client = MlflowClient(tracking_uri=record["tracking_uri"])
    logged = client.download_artifacts(mlflow_run, profile.MLFLOW_PATH, str(tmp_path))
    assert Path(logged).read_bytes() == stored.read_bytes()

    data = pd.read_csv(project / "data" / "applications.csv")
    features = [c for c in data.columns if c != "default"]
    now = 1_800_000_000.0
    recent = data.sample(600, random_state=3)[features].copy()
    recent["income"] = recent["income"] * 1.8  # production drifted in the window
    old = data.sample(600, random_state=4)[features]  # logged two days ago: outside the window
    folder = project / ".mlc" / "predictions"
    _log(
        folder,
        pd.concat([old, recent]),
        np.r_[np.full(600, now - 2 * 86400), np.full(600, now)],
        version,
    )
    (folder / ".seg-999999.parquet.tmp").write_bytes(b"torn")  # a kill mid-segment
    (folder / "seg-20300101T000000Z-000998.parquet").write_text("not parquet")  # foreign
    when = pd.Timestamp(now, unit="s", tz="UTC").isoformat()
    textfile = tmp_path / "textfile" / "mlc.prom"
    watched = _mlc(
        project, "monitor", "mlc.yaml", "tuning.trials=2", "--from-log", "--now", when,
        "--textfile", str(textfile), "--pushgateway", pushgateway,
    )  # fmt: skip
    assert watched.returncode in (0, 10), watched.stdout + watched.stderr
    report = json.loads((project / ".mlc" / "monitor" / "signal" / "report.json").read_text())
    assert report["rows_current"] == 600 and report["reference"]["source"] == "profile"
    assert "600 of 1200 logged row(s) in the window" in report["window"]
    assert "torn" in report["window"] and "not this log's Parquet" in report["window"]
    assert f"v{version}" in watched.stdout and "reference profile" in watched.stdout
    rows = {r["feature"]: r for r in report["drift"]}
    assert rows["income"]["drifted"] and rows["income"]["method"] == "psi"
    # independent: PSI by hand from the stored bins and the window's incomes
    entry = doc["features"]["income"]
    ref_counts = np.asarray(entry["counts"], dtype=float)
    cur_counts = np.bincount(
        np.searchsorted(entry["edges"], recent["income"].to_numpy(), side="right"),
        minlength=len(ref_counts),
    )
    p = ref_counts / ref_counts.sum() + drift.EPSILON
    q = cur_counts / cur_counts.sum() + drift.EPSILON
    assert rows["income"]["score"] == pytest.approx(float(np.sum((q - p) * np.log(q / p))), 1e-12)
    assert report["prediction_drift"]["feature"] == profile.PREDICTION
    prom = textfile.read_text()
    assert _value(prom, metrics_contract.MONITOR_ROWS, sample="current") == 600
    pushed = _scrape(pushgateway)
    assert _value(
        pushed, metrics_contract.FEATURE_DRIFT_SCORE, feature="income", job="mlc-monitor"
    ) == pytest.approx(rows["income"]["score"], rel=1e-5)

    # a window with a handful of rows: insufficient data, never a retrain
    few = _mlc(
        project, "monitor", "mlc.yaml", "tuning.trials=2", "monitoring.min_rows=1000",
        "--from-log", "--now", when,
    )  # fmt: skip
    assert few.returncode == 0, few.stdout + few.stderr
    assert "insufficient data" in few.stdout

    # `mlc loop` pushes the same gauges to the Pushgateway its environment names (as the
    # emitted CronJob sets MLC_PUSHGATEWAY_URL), even on a pass that decides nothing
    group = f"{pushgateway}/metrics/job/mlc-monitor/instance/credit-risk"
    urllib.request.urlopen(urllib.request.Request(group, method="DELETE"), timeout=5).close()
    assert metrics_contract.MONITOR_ROWS not in _scrape(pushgateway)
    before = time.time()
    looped = _mlc(
        project, "loop", "mlc.yaml", "tuning.trials=2", "monitoring.min_rows=1000",
        "--now", when, "--json", MLC_PUSHGATEWAY_URL=pushgateway,
    )  # fmt: skip
    assert looped.returncode == 0, looped.stdout + looped.stderr
    assert json.loads(looped.stdout)["outcome"] == "insufficient_data"
    pushed = _scrape(pushgateway)
    # too few rows to judge drift: the pass pushes what it counted, and when
    grouping = {"job": "mlc-monitor", "instance": "credit-risk"}
    assert _value(pushed, metrics_contract.MONITOR_ROWS, sample="current", **grouping) == 600
    assert _value(pushed, metrics_contract.MONITOR_LAST_RUN, **grouping) >= int(before)
    # a Pushgateway that is gone is a warning on the pass, not a failed pass
    gone = _mlc(
        project, "loop", "mlc.yaml", "tuning.trials=2", "monitoring.min_rows=1000",
        "--now", when, "--json", "--pushgateway", f"http://127.0.0.1:{_free_port()}",
    )  # fmt: skip
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert "cannot reach the Pushgateway" in gone.stderr
    assert "cannot reach the Pushgateway" in json.loads(gone.stdout)["evidence"]["push_error"]
