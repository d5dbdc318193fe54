"""`mlc monitor` scores a model someone approved, says which, and never crashes on labels
(issue 11 item 3).

One real `mlc run` of the credit example with a gate no model can pass: nothing is registered
and there is no champion. Monitoring must refuse, unless the run's candidate is asked for
(`--model-version RUN_ID`), and then say it scores a model whose gate failed. With the label in
the current data and no `monitoring.performance`, the rows are scored with the evaluation
metrics (a `TypeError`, exit 1, before). The last tests add a run that passes (the champion) and
one more that fails: the champion is scored, not the newest run's model. They need the earlier
tests' state, so they come last in the file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
MLC = [sys.executable, "-c", "from mlc.compiler.cli import main; main()"]
IMPOSSIBLE_GATE = "evaluation.gates=[{metric: accuracy, op: '>=', threshold: 0.9999}]"
FAST = ["tuning.trials=2", "~governance.fairness.mitigation", IMPOSSIBLE_GATE]
"""Small, and a plain sklearn model (no fairness wrapper) to score independently below."""

pytestmark = pytest.mark.slow


def _mlc(project: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MLC_PSEUDONYM_KEY": "demo-key",
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [*MLC, *map(str, args)], cwd=project, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The credit example after one run whose gate failed (exit 3)."""
    project = tmp_path_factory.mktemp("monitor-fixes") / "credit"
    shutil.copytree(
        REPO / "examples" / "credit", project, ignore=shutil.ignore_patterns(".mlc", "out")
    )
    run = _mlc(project, "run", "mlc.yaml", *FAST)
    assert run.returncode == 3, run.stdout + run.stderr
    return project


@pytest.fixture
def labelled(failed: Path, tmp_path: Path) -> Path:
    sample = pd.read_csv(failed / "data" / "applications.csv").sample(400, random_state=3)
    path = tmp_path / "labelled.csv"
    sample.to_csv(path, index=False)
    return path


def _record(project: Path) -> dict[str, Any]:
    """The first run's record (the one whose gate failed)."""
    path = min((project / ".mlc" / "runs").glob("*.json"))
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def _now(project: Path) -> str:
    # the evaluation time of the run: the weekly schedule trigger is not due
    return str(_record(project)["started"])


def test_no_version_that_passed_its_gate_is_refused(
    failed: Path, labelled: Path, tmp_path: Path
) -> None:
    out = tmp_path / "monitor"
    proc = _mlc(
        failed, "monitor", "--current", labelled, "--now", _now(failed), "--out", out, *FAST
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    run_id = _record(failed)["run_id"]
    assert (
        f"mlc monitor: error: no version of 'credit-risk' passed its gate (the newest run, "
        f"{run_id}, ended gate_failed): there is no approved model to monitor" in proc.stderr
    )
    assert "--model-version RUN_ID" in proc.stderr
    assert "drift against the training data" not in proc.stdout
    assert not out.exists()


def test_an_unknown_version_says_what_there_is(failed: Path, labelled: Path) -> None:
    proc = _mlc(failed, "monitor", "--current", labelled, "--model-version", "7", *FAST)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "'7' is neither a version of 'credit-risk'" in proc.stderr
    assert "(registered: none)" in proc.stderr


def _registered_model(project: Path, run_id: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The run's candidate model (what register would ship), found through the IR."""
    from mlc.compiler.api import check
    from mlc.compiler.ir import StepKind
    from mlc.runtime.context import StepContext
    from mlc.runtime.steps._data import load_model

    ir = check(project / "mlc.yaml", FAST).ir
    register = ir.first(StepKind.REGISTER)
    assert register is not None
    art = ir.artifact(register.inputs["model"])
    record = json.loads((project / ".mlc" / "runs" / f"{run_id}.json").read_text())
    (step,) = [s for s in record["steps"] if s["step_id"] == art.producer]
    ctx = StepContext(project_dir=project, state_dir=project / ".mlc")
    monkeypatch.setenv("MLC_PSEUDONYM_KEY", "demo-key")
    return load_model({"model": step["outputs"][art.name]}, "model", "test", ctx)


def test_labels_without_monitoring_performance_are_scored_with_the_evaluation_metrics(
    failed: Path, labelled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    run_id = _record(failed)["run_id"]
    proc = _mlc(
        failed,
        "monitor",
        "mlc.yaml",
        "--current",
        labelled,
        "--now",
        _now(failed),
        "--model-version",
        run_id,
        *FAST,
        "~monitoring.performance",
    )
    assert proc.returncode in (0, 10), proc.stdout + proc.stderr
    assert "internal error" not in proc.stderr
    assert proc.stdout.splitlines()[0] == (
        f"model: credit-risk, the candidate of run {run_id} (not registered, gate FAILED): "
        "asked for with --model-version"
    )
    report = json.loads((failed / ".mlc" / "monitor" / "signal" / "report.json").read_text())
    perf = report["performance"]
    assert perf["metric"] is None and perf["floor"] is None and perf["rows"] == 400
    # independently: sklearn on the candidate model's predictions for the same rows
    frame = pd.read_csv(labelled)
    x, y = frame.drop(columns=["default"]), frame["default"]
    model = _registered_model(failed, run_id, monkeypatch)
    proba = model.predict_proba(x)
    expected = {
        "roc_auc": roc_auc_score(y, proba[:, 1]),
        "accuracy": accuracy_score(y, model.predict(x)),
        "f1": f1_score(y, model.predict(x)),
        "log_loss": log_loss(y, proba),
    }
    assert perf["values"] == pytest.approx(expected, abs=1e-9)
    line = next(row for row in proc.stdout.splitlines() if row.startswith("performance on"))
    assert f"accuracy {expected['accuracy']:.4g}" in line and "floor" not in line
    # every file the README says `mlc monitor` writes is where it says (issue 11 item 16)
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("`mlc monitor` scores new data") :]
    named = re.findall(r"`((?:signal|decision|current)/[\w./]*)`", section[: section.index("\n\n")])
    assert {"signal/report.json", "decision/decision.json", "decision/to_label.csv"} <= set(named)
    for rel in named:
        assert (failed / ".mlc" / "monitor" / rel).exists(), rel


def test_without_a_champion_the_newest_version_that_passed_is_scored(tmp_path: Path) -> None:
    """A manual promotion policy registers passed versions without `champion`: the newest of
    them is scored, never the newer run whose gate failed (records as `mlc run` writes them)."""
    from mlc.compiler.api import check
    from mlc.compiler.cli.monitor import _BadInput, _pick_run

    ir = check(REPO / "examples" / "credit" / "mlc.yaml").ir
    runs = tmp_path / ".mlc" / "runs"
    runs.mkdir(parents=True)
    history = [
        ("20260101-000000-aaaaaaa", "succeeded", "1"),
        ("20260102-000000-bbbbbbb", "succeeded", "2"),
        ("20260103-000000-ccccccc", "gate_failed", None),
    ]
    for run_id, status, version in history:
        register: dict[str, Any] = {"step_id": "register", "kind": "register", "outputs": {}}
        if version is None:
            register.update(status="skipped", summary=None)
        else:
            register.update(status="ran", summary={"model": "credit-risk", "version": version})
        record = {"run_id": run_id, "status": status, "steps": [register]}
        (runs / f"{run_id}.json").write_text(json.dumps(record))
    # a store that does not exist holds no champion
    uri = f"sqlite:///{tmp_path / '.mlc' / 'mlflow.db'}"
    record, model, champ = _pick_run(ir, tmp_path / ".mlc", "credit-risk", uri)
    assert champ is None and record["run_id"] == "20260102-000000-bbbbbbb"
    assert (model["version"], model["alias"], model["passed"]) == ("2", None, True)
    assert model["why"] == "the newest version whose gate passed (there is no champion)"
    _, older, _ = _pick_run(ir, tmp_path / ".mlc", "credit-risk", uri, "1")
    assert (older["version"], older["why"]) == ("1", "asked for with --model-version")
    _, failed_one, _ = _pick_run(ir, tmp_path / ".mlc", "credit-risk", uri, history[2][0])
    assert (failed_one["version"], failed_one["passed"]) == (None, False)
    (runs / "20260101-000000-aaaaaaa.json").unlink()
    (runs / "20260102-000000-bbbbbbb.json").unlink()
    with pytest.raises(_BadInput, match="no version of 'credit-risk' passed its gate"):
        _pick_run(ir, tmp_path / ".mlc", "credit-risk", uri)


@pytest.fixture(scope="module")
def champion(failed: Path) -> tuple[Path, str]:
    """After the failed run: one that passes (version 1, champion), then one more that fails."""
    passing = [f for f in FAST if f != IMPOSSIBLE_GATE]
    run = _mlc(failed, "run", "mlc.yaml", *passing)
    assert run.returncode == 0, run.stdout + run.stderr
    (record,) = [
        json.loads(p.read_text())
        for p in (failed / ".mlc" / "runs").glob("*.json")
        if json.loads(p.read_text())["status"] == "succeeded"
    ]
    again = _mlc(failed, "run", "mlc.yaml", *FAST)
    assert again.returncode == 3, again.stdout + again.stderr
    return failed, str(record["run_id"])


def test_the_champion_is_scored_not_the_newest_run(
    champion: tuple[Path, str], labelled: Path
) -> None:
    project, run_id = champion
    passing = [f for f in FAST if f != IMPOSSIBLE_GATE]
    proc = _mlc(
        project, "monitor", "--current", labelled, "--now", _now_of(project, run_id), *passing
    )
    assert proc.returncode in (0, 10), proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0] == (
        f"model: credit-risk v1 (alias champion, run {run_id}, gate passed): the champion"
    )


def _now_of(project: Path, run_id: str) -> str:
    record = json.loads((project / ".mlc" / "runs" / f"{run_id}.json").read_text())
    return str(record["started"])
