"""kfp target end to end: the compiled package runs under kfp.local like `mlc run` does.

Real kfp, real runtime, no Docker or network: kfp's subprocess runner executes every component
function, which calls `python -m mlc.runtime step …` in this environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlc.compiler.api import compile_spec

REPO = Path(__file__).resolve().parents[2]
CREDIT = REPO / "examples" / "credit"
# One tuning thread: the runtime's tune step with `parallelism` > 1 runs Optuna trials in threads
# that share the seeded sampler, so which trial draws which values depends on thread timing.
FAST = [
    "tuning.trials=2",
    "tuning.cv_folds=2",
    "tuning.parallelism=1",
    "training.model.params.max_iter=60",
]

pytestmark = pytest.mark.slow

_RUNNER = """
import sys, kfp.components, kfp.local
package, project, root = sys.argv[1:4]
kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=root,
               raise_on_error=False)
kfp.components.load_component_from_file(package)(project_dir=project)
"""


def _project(tmp: Path) -> Path:
    project = tmp / "project"
    project.mkdir()
    shutil.copytree(CREDIT / "data", project / "data")
    return project


def _env() -> dict[str, str]:
    return {**os.environ, "MLC_PSEUDONYM_KEY": "kfp-local-test-key", "OMP_NUM_THREADS": "1"}


def _run_kfp(tmp: Path, overrides: list[str]) -> tuple[Path, Path]:
    compile_spec(CREDIT / "mlc.yaml", ["kfp"], tmp / "out", overrides)
    project, root = _project(tmp), tmp / "kfp-root"
    # A separate process: kfp.local's runner is process-wide state.
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _RUNNER,
            str(tmp / "out/kfp/pipeline.yaml"),
            str(project),
            str(root),
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    (run,) = list(root.iterdir())
    return run, project


def _meta(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "_meta.json").read_text())
    return data


def _find(root: Path, task: str, output: str) -> list[Path]:
    return sorted(p for p in root.rglob(output) if p.parent.name == task and p.is_dir())


def test_kfp_local_matches_mlc_run(tmp_path: Path) -> None:
    # mode batch: the batch-predict component after register scores like `mlc run` does
    run, _ = _run_kfp(tmp_path / "kfp", [*FAST, "+serving=batch"])
    (metrics,) = _find(run, "evaluate", "metrics")
    kfp_metrics = _meta(metrics)["metrics"]
    # The passing branch registered the model; the exit handler wrote the audit record.
    assert _find(run, "register", "model_version"), "register did not run"
    (record,) = _find(run, "mlc-exit-handler", "record")
    audit = json.loads((record / "audit.json").read_text())
    assert audit["event"] == "run.end" and audit["details"]["state"] == "SUCCEEDED"

    local = tmp_path / "local"
    local.mkdir()
    local_project = _project(local)
    shutil.copy(CREDIT / "mlc.yaml", local_project / "mlc.yaml")
    shutil.copytree(CREDIT / "env", local_project / "env")
    shutil.copytree(CREDIT / "serving", local_project / "serving")
    proc = subprocess.run(
        [
            str(REPO / ".venv/bin/mlc"),
            "run",
            str(local_project / "mlc.yaml"),
            "-q",
            *FAST,
            "+serving=batch",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (record,) = list((local_project / ".mlc" / "runs").glob("*.json"))
    steps = {s["step_id"]: s for s in json.loads(record.read_text())["steps"]}
    local_metrics = _meta(Path(steps["evaluate"]["outputs"]["metrics"]))["metrics"]
    assert kfp_metrics.keys() == local_metrics.keys()
    for name, value in kfp_metrics.items():
        assert value == pytest.approx(local_metrics[name], rel=1e-9, abs=1e-12), name
    (scored,) = _find(run, "batch-predict", "predictions")
    kfp_pred = pd.read_parquet(scored / "predictions.parquet")
    local_pred = pd.read_parquet(local_project / "out" / "batch" / "predictions.parquet")
    assert len(kfp_pred) == len(local_pred) == 2000
    assert list(kfp_pred["applicant_id"]) == list(local_pred["applicant_id"])
    assert (kfp_pred["prediction"] == local_pred["prediction"]).all()
    for col in ("proba_0", "proba_1"):
        assert (kfp_pred[col] - local_pred[col]).abs().max() <= 1e-9


def test_failing_gate_takes_else_branch(tmp_path: Path) -> None:
    # An unreachable AUC gate; no explanation step, to keep the run short.
    gates = "evaluation.gates=[{metric: roc_auc, op: '>=', threshold: 0.999}]"
    run, _ = _run_kfp(tmp_path, [*FAST, gates, "~governance.explainability"])
    (verdict,) = _find(run, "gate", "verdict")
    assert _meta(verdict)["passed"] is False
    assert not list(run.rglob("model_version")), "a model was registered past a failing gate"
    assert (run / "gate-rejected").is_dir()
