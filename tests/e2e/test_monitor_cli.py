"""`mlc monitor` end to end on the credit example, through the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
MLC = [sys.executable, "-c", "from mlc.compiler.cli import main; main()"]
FAST = ["tuning.trials=2"]

pytestmark = pytest.mark.slow


def _mlc(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MLC_PSEUDONYM_KEY": "demo-key",
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "160",
    }
    return subprocess.run(
        [*MLC, *args], cwd=project, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def credit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("monitor") / "credit"
    shutil.copytree(
        REPO / "examples" / "credit", project, ignore=shutil.ignore_patterns(".mlc", "out")
    )
    run = _mlc(project, "run", "mlc.yaml", *FAST)
    assert run.returncode == 0, run.stderr
    return project


def _monitor(project: Path, current: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # a fixed evaluation time right after the run: the weekly schedule is not due yet
    record = json.loads(next((project / ".mlc" / "runs").glob("*.json")).read_text())
    now = record["started"]
    return _mlc(project, "monitor", "mlc.yaml", "--current", str(current), "--now", now, *extra)


def test_monitor_on_training_like_data_needs_no_retraining(credit: Path, tmp_path: Path) -> None:
    sample = pd.read_csv(credit / "data" / "applications.csv").sample(500, random_state=1)
    path = tmp_path / "same.csv"
    sample.to_csv(path, index=False)
    result = _monitor(credit, path, *FAST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no retraining needed" in result.stdout
    report = json.loads((credit / ".mlc" / "monitor" / "signal" / "report.json").read_text())
    assert report["drifted"] == []
    assert {r["feature"] for r in report["drift"]} == {"income", "debt", "age", "debt_ratio"}
    assert all(r["score"] < 0.1 for r in report["drift"])
    assert report["performance"]["values"]["roc_auc"] > 0.72
    prom = (credit / ".mlc" / "monitor" / "signal" / "metrics.prom").read_text()
    assert 'mlc_feature_drift_score{feature="income",model="credit-risk"}' in prom
    decision = json.loads((credit / ".mlc" / "monitor" / "decision" / "decision.json").read_text())
    assert decision["retrain"] is False
    assert [c["kind"] for c in decision["checks"]] == [
        "drift",
        "performance_drop",
        "schedule",
        "data_volume",
    ]
    # active learning: batch_size 100 of the credit spec, most uncertain first
    assert len(decision["to_label"]) == 100
    scores = [p["score"] for p in decision["to_label"]]
    assert scores == sorted(scores, reverse=True)


def test_monitor_on_shifted_income_and_debt_recommends_retraining(
    credit: Path, tmp_path: Path
) -> None:
    shifted = pd.read_csv(credit / "data" / "applications.csv").sample(500, random_state=2)
    shifted["income"] *= 3
    shifted["debt"] *= 3
    path = tmp_path / "shifted.csv"
    shifted.to_csv(path, index=False)
    result = _monitor(credit, path, *FAST)
    assert result.returncode == 10, result.stdout + result.stderr
    assert "RETRAIN recommended" in result.stdout
    assert "drift in income" in result.stdout and "debt" in result.stdout
    decision = json.loads((credit / ".mlc" / "monitor" / "decision" / "decision.json").read_text())
    (drift,) = [c for c in decision["checks"] if c["kind"] == "drift"]
    assert drift["fired"] and drift["features"] == ["income", "debt"]

    # --retrain runs the pipeline (same training data: every step is a cache hit)
    again = _monitor(credit, path, *FAST, "--retrain")
    assert again.returncode == 0, again.stderr
    assert "12 cached" in again.stderr


def test_monitor_names_missing_contract_columns(credit: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(credit / "data" / "applications.csv").drop(columns=["income", "age"])
    path = tmp_path / "broken.csv"
    frame.to_csv(path, index=False)
    result = _monitor(credit, path)
    assert result.returncode == 2
    assert "missing contract column(s): age, income" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    words = pd.read_csv(credit / "data" / "applications.csv").head(50).assign(debt="a lot")
    words.to_csv(path, index=False)
    typed = _monitor(credit, path)
    assert typed.returncode == 2
    assert "not numeric as the contract says: debt" in typed.stderr


def test_monitor_reports_a_missing_file_and_a_missing_labels_column(
    credit: Path, tmp_path: Path
) -> None:
    missing = _monitor(credit, tmp_path / "nope.csv")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    path = tmp_path / "unlabelled.csv"
    pd.read_csv(credit / "data" / "applications.csv").head(50).to_csv(path, index=False)
    bad = _monitor(credit, path, "--labels-column", "outcome")
    assert bad.returncode == 2 and "labels column 'outcome'" in bad.stderr
    assert "Traceback" not in missing.stderr + bad.stderr


def test_monitor_without_a_run_says_to_run_first(tmp_path: Path) -> None:
    project = tmp_path / "fresh"
    shutil.copytree(
        REPO / "examples" / "credit", project, ignore=shutil.ignore_patterns(".mlc", "out")
    )
    result = _mlc(
        project, "monitor", "mlc.yaml", "--current", str(project / "data" / "applications.csv")
    )
    assert result.returncode == 2
    assert "run `mlc run SPEC` first" in result.stderr


def test_a_corrupt_tracking_store_is_a_clear_exit_2_not_an_internal_error(
    credit: Path, tmp_path: Path
) -> None:
    store = tmp_path / "mlflow.db"
    store.write_bytes(b"garbage" * 100)
    result = _monitor(
        credit,
        credit / "data" / "applications.csv",
        f"+targets.local.tracking_uri=sqlite:///{store}",
    )
    assert result.returncode == 2, result.stderr
    assert "cannot be opened as a sqlite database" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def test_current_data_and_the_prediction_log_are_one_or_the_other(credit: Path) -> None:
    both = _mlc(credit, "monitor", "mlc.yaml", "--current", "data/applications.csv", "--from-log")
    assert both.returncode == 2 and "one of them" in both.stderr
    neither = _mlc(credit, "monitor", "mlc.yaml")
    assert neither.returncode == 2 and "one of them" in neither.stderr
    no_log = _mlc(credit, "monitor", "mlc.yaml", "--from-log")
    assert no_log.returncode == 2 and "prediction log" in no_log.stderr
