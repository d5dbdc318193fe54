"""Reruns: `--only`, `--from` on unchanged inputs, and what a cached rerun shows (issue 11.10).

The same inputs and seed must give the same model bytes (else a rerun "trains" a new model,
registers it and moves the champion), `--only STEP` runs that step from cached inputs without
demanding results of the steps after it, and a cached rerun's gate table names the champion.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.runtime import ir_of, run_pipeline

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext
from mlc.runtime.steps import get
from mlc.runtime.steps.register import champion_info

REPO = Path(__file__).resolve().parents[2]
MLC = [sys.executable, "-c", "from mlc.compiler.cli import main; main()"]
FAST = ("tuning.trials=2", "tuning.cv_folds=2")
ENV = {"MLC_PSEUDONYM_KEY": "test-key", "OMP_NUM_THREADS": "1"}


def _copy(example: str, tmp_path: Path) -> Path:
    project = tmp_path / example
    shutil.copytree(
        REPO / "examples" / example, project, ignore=shutil.ignore_patterns(".mlc", "out")
    )
    return project / "mlc.yaml"


def _files(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def _train_again(ir: Any, root: Path, out: Path, ctx: StepContext) -> dict[str, Any]:
    """The train step once more, on the inputs the first pipeline run left under `root`."""
    step = next(s for s in ir.steps if s.id == "train")
    inputs = {n: str(root / a) for n, a in step.inputs.items()}
    summary: dict[str, Any] = get("train")(dict(step.params), inputs, {"model": str(out)}, ctx)
    return summary


# -- the same seed gives the same bytes ------------------------------------------------------


def test_sklearn_fit_twice_with_the_same_seed_saves_identical_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLC_PSEUDONYM_KEY", "test-key")
    spec = _copy("credit", tmp_path)
    ir = ir_of(spec, FAST)
    root = tmp_path / "art"
    ctx = StepContext(project_dir=spec.parent, state_dir=tmp_path / "state")
    first = run_pipeline(ir, root, ctx, until="train")["train"]
    # Another deadline, as every run has: it must not leak into the saved model.
    later = StepContext(
        project_dir=spec.parent, state_dir=tmp_path / "state", deadline=time.monotonic() + 900
    )
    second = _train_again(ir, root, tmp_path / "again", later)
    assert second["hash"] == first["hash"]
    assert _files(tmp_path / "again") == _files(root / "train.model")

    # A fresh interpreter with another string hash seed (set order, interning) agrees too.
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from mlc.runtime.context import StepContext\n"
        "from support.runtime import ir_of\n"
        "from test_reruns import FAST, _train_again\n"
        "spec, root, out = map(Path, sys.argv[1:])\n"
        "ctx = StepContext(project_dir=spec.parent, state_dir=root.parent / 'state')\n"
        "print(json.dumps(_train_again(ir_of(spec, FAST), root, out, ctx)['hash']))\n"
    )
    # The thread count stays this process's: HistGradientBoosting keeps it in the model.
    env = {
        **os.environ,
        "MLC_PSEUDONYM_KEY": "test-key",
        "PYTHONHASHSEED": "12345",
        "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO / "tests" / "e2e")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", script, str(spec), str(root), str(tmp_path / "other")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == first["hash"]
    assert _files(tmp_path / "other") == _files(root / "train.model")


def test_lightning_fit_twice_with_the_same_seed_saves_identical_bytes(tmp_path: Path) -> None:
    spec = _copy("diabetes", tmp_path)
    ir = ir_of(spec, ("training.lightning.max_epochs=2", "training.lightning.accelerator=cpu"))
    root = tmp_path / "art"
    soon = time.monotonic() + 600
    ctx = StepContext(project_dir=spec.parent, state_dir=tmp_path / "state", deadline=soon)
    first = run_pipeline(ir, root, ctx, until="train")["train"]
    assert first["framework"] == "lightning" and first["epochs"] == 2
    # The seconds left differ on every run; before, they became the estimator's max_time.
    later = StepContext(project_dir=spec.parent, state_dir=tmp_path / "state", deadline=soon + 300)
    second = _train_again(ir, root, tmp_path / "again", later)
    assert second["hash"] == first["hash"]
    assert _files(tmp_path / "again") == _files(root / "train.model")
    model = artifacts.load_object(str(tmp_path / "again"))
    assert model.steps[-1][1].max_time == ir.step("train").params.get("max_time")


def test_equal_strings_and_sets_pickle_the_same_whatever_their_identity() -> None:
    shared = "drop"
    built = "".join(["dr", "op"])  # equal, but another object
    assert built is not shared
    one = artifacts.dump_object({"a": shared, "b": shared, "s": {"x", "y", "z"}})
    two = artifacts.dump_object({"a": shared, "b": built, "s": {"z", "y", "x"}})
    assert one == two
    import io

    import joblib

    assert joblib.load(io.BytesIO(one)) == {"a": "drop", "b": "drop", "s": {"x", "y", "z"}}


# -- mlc run: --only, --from, the champion on a cached rerun -----------------------------------


def _mlc(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MLC, *args],
        cwd=project,
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _versions(project: Path) -> list[tuple[str, str]]:
    """(version, model hash) of every registered version, queried through MLflow itself."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{(project / '.mlc' / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    found = client.search_model_versions("name='credit-risk'")
    return sorted((str(v.version), (v.tags or {}).get("mlc.model_hash", "")) for v in found)


def _trained_hash(project: Path) -> str:
    """The hash of the model the newest run's train step produced (or took from the cache)."""
    runs = sorted((project / ".mlc" / "runs").glob("*.json"))
    record = json.loads(runs[-1].read_text())
    train = next(s for s in record["steps"] if s["step_id"] == "train")
    return str(artifacts.read_meta(train["outputs"]["model"])["hash"])


@pytest.mark.slow
def test_reruns_of_unchanged_inputs_keep_the_model_and_name_the_champion(tmp_path: Path) -> None:
    project = _copy("credit", tmp_path).parent
    first = _mlc(project, "run", "mlc.yaml", *FAST)
    assert first.returncode == 0, first.stderr
    trained = _trained_hash(project)
    registered = _versions(project)
    assert [v for v, _ in registered] == ["1"] and registered[0][1]

    # --only evaluate after a full run: evaluate runs, nothing later is demanded.
    only = _mlc(project, "run", "mlc.yaml", *FAST, "--only", "evaluate")
    assert only.returncode == 0, only.stderr
    assert "has no cached result" not in only.stderr
    assert "1 executed" in only.stderr

    # --from train on unchanged inputs: the same bytes, so no new version.
    again = _mlc(project, "run", "mlc.yaml", *FAST, "--from", "train")
    assert again.returncode == 0, again.stderr
    assert _trained_hash(project) == trained
    assert _versions(project) == registered
    champion = champion_info("credit-risk", f"sqlite:///{project / '.mlc' / 'mlflow.db'}")
    assert champion is not None and champion["version"] == "1"

    # A fully cached rerun's gate table names the champion, which the candidate now is.
    cached = _mlc(project, "run", "mlc.yaml", *FAST)
    assert cached.returncode == 0, cached.stderr
    assert "0 executed" in cached.stderr
    assert "no champion yet" not in cached.stderr
    assert "candidate is the champion" in cached.stderr and "(v1)" in cached.stderr

    # --only gate / --only register run that step alone; the registry is unchanged.
    for step in ("gate", "register"):
        alone = _mlc(project, "run", "mlc.yaml", *FAST, "--only", step)
        assert alone.returncode == 0, alone.stderr
        assert "1 executed" in alone.stderr
    assert _versions(project) == registered


def test_only_without_the_cached_inputs_names_the_step_to_run_first(tmp_path: Path) -> None:
    project = _copy("credit", tmp_path).parent
    result = _mlc(project, "run", "mlc.yaml", *FAST, "--only", "evaluate")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    # The first step evaluate reads from, directly or not, that has no cached result.
    assert "step 'ingest-applications'" in result.stderr
    assert "--from ingest-applications" in result.stderr


def test_the_runs_deadline_still_caps_lightning_training() -> None:
    import numpy as np

    from mlc.runtime.lightning_mlp import MLPEstimator

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    model = MLPEstimator(hidden=(4,), max_epochs=10**6, batch_size=16, accelerator="cpu")
    model.fit(x, y, time_limit=1.0)
    assert model.stopped_ == "max_time" and model.epochs_ < 10**6
    assert model.max_time is None  # the deadline is not a parameter of the saved model
