"""`mlc run` on the credit example, end to end, through the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlc.runtime import audit, lineage
from mlc.runtime.steps.register import champion_info

REPO = Path(__file__).resolve().parents[2]
MLC = [sys.executable, "-c", "from mlc.compiler.cli import main; main()"]
FAST = ["tuning.trials=2", "tuning.cv_folds=2"]

pytestmark = pytest.mark.slow


def _mlc(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLC_PSEUDONYM_KEY": "test-key", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*MLC, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture
def credit(tmp_path: Path) -> Path:
    project = tmp_path / "credit"
    shutil.copytree(
        REPO / "examples" / "credit", project, ignore=shutil.ignore_patterns(".mlc", "out")
    )
    return project


def test_credit_runs_registers_champion_then_rerun_is_a_full_cache_hit(credit: Path) -> None:
    first = _mlc(credit, "run", "mlc.yaml", *FAST)
    assert first.returncode == 0, first.stderr
    state = credit / ".mlc"
    uri = f"sqlite:///{(state / 'mlflow.db').resolve()}"
    champion = champion_info("credit-risk", uri)
    assert champion is not None and champion["version"] == "1"
    assert champion["metrics"]["roc_auc"] > 0.75

    second = _mlc(credit, "run", "mlc.yaml", *FAST)
    assert second.returncode == 0, second.stderr
    assert "0 executed, 12 cached" in second.stderr

    cards = list((state / "cache").glob("*.card/card.md"))
    assert len(cards) == 1
    card = cards[0].read_text()
    assert "# Model card: credit-risk" in card and "## Fairness" in card
    assert "**PASSED**" in card
    card_json = json.loads(cards[0].with_name("card.json").read_text())
    assert card_json["lineage"]["spec_hash"] and card_json["data"]["hash"]

    verify = _mlc(credit, "audit", "verify")
    assert verify.returncode == 0 and "chain intact" in verify.stdout
    events = [r["event"] for r in audit.read(state)]
    for event in ("run.start", "gate.verdict", "registration", "promotion", "run.end"):
        assert event in events
    records = lineage.query(state, "credit-risk")
    assert [r["version"] for r in records] == ["1"]
    shown = _mlc(credit, "lineage", "credit-risk")
    assert "credit-risk v1" in shown.stdout
    runs = _mlc(credit, "runs", "--json")
    assert [r["status"] for r in json.loads(runs.stdout)] == ["succeeded", "succeeded"]


def test_failing_gate_exits_3_and_promotes_nothing(credit: Path) -> None:
    result = _mlc(
        credit,
        "run",
        "mlc.yaml",
        *FAST,
        "evaluation.gates=[{metric: roc_auc, op: '>=', threshold: 0.99}]",
    )
    assert result.returncode == 3, result.stderr
    assert "FAILED" in result.stderr and "Traceback" not in result.stderr
    state = credit / ".mlc"
    assert champion_info("credit-risk", f"sqlite:///{(state / 'mlflow.db').resolve()}") is None
    assert not [r for r in audit.read(state) if r["event"] == "registration"]
    record = json.loads(sorted((state / "runs").glob("*.json"))[-1].read_text())
    assert {s["step_id"]: s["status"] for s in record["steps"]}["register"] == "skipped"


def test_lightning_example_trains_with_ddp_and_registers_a_loadable_model(tmp_path: Path) -> None:
    # Two spawned DDP workers on CPU (gloo): `mlc run` itself must not be re-run per rank, and
    # the registered pipeline (skops-saved, torch weights inside) must load and predict.
    project = tmp_path / "diabetes"
    shutil.copytree(
        REPO / "examples" / "diabetes", project, ignore=shutil.ignore_patterns(".mlc", "out")
    )
    run = _mlc(
        project,
        "run",
        "mlc.yaml",
        "training.lightning.accelerator=cpu",
        "training.lightning.max_epochs=30",
        "+training.distributed.strategy=ddp",
        "+training.distributed.devices=2",
    )
    assert run.returncode == 0, run.stderr
    assert "Starting with 2 processes" in run.stderr + run.stdout
    assert len(list((project / ".mlc" / "runs").glob("*.json"))) == 1

    import mlflow
    import pandas as pd

    # Both URIs: `models:/` resolves through the registry URI, which an in-process register
    # step of another test in this worker may have pointed elsewhere.
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    store = f"sqlite:///{(project / '.mlc' / 'mlflow.db').resolve()}"
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    try:
        model = mlflow.pyfunc.load_model("models:/diabetes-progression@challenger")
        requirements = Path(
            mlflow.pyfunc.get_model_dependencies("models:/diabetes-progression@challenger")
        ).read_text()
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    rows = pd.read_csv(project / "data" / "diabetes.csv").head(20)
    predicted = model.predict(rows.drop(columns=["progression"]))
    assert len(predicted) == 20
    error = float(((predicted - rows["progression"]) ** 2).mean() ** 0.5)
    assert error < 80  # the gate held rmse <= 65 on the test split
    assert "torch==" in requirements and "lightning==" in requirements
