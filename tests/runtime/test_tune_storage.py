"""`tuning.storage` shared by parallel workers: a real PostgreSQL server and Optuna's journal.

Each worker is the tune step's own entry (`python -m mlc.runtime step tune …`), as each
iteration of the kfp target's `ParallelFor` runs it: same params, same study, started together.
The sequential reference is the same step in one process, with the same seed and sampler, in a
study of its own.

What "the same best trial" can honestly mean: a trial's sampler is seeded from the spec's seed
and the trial's number, so with `sampler: random` (and no pruner, whose decisions depend on what
other trials reported by then) the parallel study evaluates exactly the sequential study's
points, and so has the same best. TPE samples its first 10 trials at random, the same way; later
trials depend on which results had arrived, which parallel workers change: there the test holds
the parallel study to its trial count, distinct trials and the true best of what it evaluated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from support.postgres import postgres_server
from support.runtime import complete

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps import get
from mlc.runtime.steps._study_storage import SURPLUS

WORKERS = 3
COMPLETE = optuna.trial.TrialState.COMPLETE


def _prepare(tmp_path: Path) -> dict[str, str]:
    rng = np.random.default_rng(3)
    n = 150
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = (a + 0.5 * b + rng.normal(scale=1.0, size=n) > 0).astype(int)
    artifacts.save_dataframe(str(tmp_path / "train"), pd.DataFrame({"a": a, "b": b, "y": y}))
    get("features")(
        {
            "target": "y",
            "task": "classification",
            "transforms": [{"op": "scale", "columns": ["a", "b"], "method": "standard"}],
            "derived": [],
            "selection": {"include": None, "exclude": [], "method": "none", "k": None},
            "dtypes": {},
            "pii": [],
        },
        {"train": str(tmp_path / "train")},
        {"transform": str(tmp_path / "transform")},
        StepContext(),
    )
    return {"train": str(tmp_path / "train"), "transform": str(tmp_path / "transform")}


def _params(storage: str, trials: int, sampler: str, parallelism: int) -> dict[str, Any]:
    return complete(
        "tune",
        {
            "framework": "sklearn",
            "task": "classification",
            "target": "y",
            "model": {"name": "LogisticRegression", "params": {"max_iter": 200}},
            "seed": 5,
            "objective": {"metric": "roc_auc", "direction": "maximize"},
            "search_space": {
                "C": {"type": "float", "low": 0.001, "high": 10.0, "log": True},
                "fit_intercept": {"type": "categorical", "choices": [True, False]},
            },
            "trials": trials,
            "cv_folds": 3,
            "sampler": sampler,
            "pruner": "none",
            "parallelism": parallelism,
            "timeout": None,
            "storage": storage,
        },
    )


def _workers(
    tmp_path: Path, inputs: dict[str, str], params: dict[str, Any], env: dict[str, str]
) -> list[subprocess.CompletedProcess[str]]:
    """`WORKERS` tune steps started together on one study; their outcomes."""
    procs = []
    for i in range(WORKERS):
        argv = [
            sys.executable,
            "-m",
            "mlc.runtime",
            "step",
            "tune",
            "--params",
            json.dumps(params),
            "--project-dir",
            str(tmp_path),
            "--state-dir",
            str(tmp_path / f"state-{i}"),
            "--inputs",
            *(f"{k}={v}" for k, v in inputs.items()),
            "--outputs",
            f"best_params={tmp_path / f'bp-{i}'}",
            f"study={tmp_path / f'st-{i}'}",
        ]
        procs.append(
            subprocess.Popen(
                argv,
                cwd=tmp_path,
                env={**os.environ, **env},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    for d in done:
        assert d.returncode == 0, d.stderr[-3000:]
    return done


def _study(storage: Any) -> optuna.Study:
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def _evaluated(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    trials = [t for t in study.trials if not t.user_attrs.get(SURPLUS)]
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    return trials


def _cv_auc(inputs: dict[str, str], params: dict[str, Any]) -> float:
    """The tune objective computed here, independently: mean ROC AUC over the same folds."""
    df = artifacts.load_dataframe(inputs["train"])
    x, y = df[["a", "b"]], df["y"]
    transform = artifacts.load_object(inputs["transform"])
    values = []
    for tr, va in StratifiedKFold(3, shuffle=True, random_state=5).split(x, y):
        pipe = Pipeline(
            [("t", clone(transform)), ("m", LogisticRegression(max_iter=200, **params))]
        )
        pipe.fit(x.iloc[tr], y.iloc[tr])
        values.append(roc_auc_score(y.iloc[va], pipe.predict_proba(x.iloc[va])[:, 1]))
    return float(np.mean(values))


def _point(t: optuna.trial.FrozenTrial) -> tuple[float, bool]:
    return (round(t.params["C"], 12), bool(t.params["fit_intercept"]))


def test_parallel_workers_on_postgresql_find_the_sequential_best(tmp_path: Path) -> None:
    inputs = _prepare(tmp_path)
    trials = 9
    with postgres_server() as server:
        import sqlalchemy as sa

        engine = sa.create_engine(server.url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE sequential"))
        engine.dispose()
        shared_url = server.url
        sequential_url = server.url.rsplit("/", 1)[0] + "/sequential"
        env = {"OPTUNA_STORAGE": shared_url, "OPTUNA_SEQUENTIAL": sequential_url}

        runs = _workers(
            tmp_path, inputs, _params("env:OPTUNA_STORAGE", trials, "random", WORKERS), env
        )
        os.environ.update(env)
        try:
            get("tune")(
                _params("env:OPTUNA_SEQUENTIAL", trials, "random", 1),
                inputs,
                {"best_params": str(tmp_path / "bp-seq"), "study": str(tmp_path / "st-seq")},
                StepContext(project_dir=tmp_path, state_dir=tmp_path / "state-seq"),
            )
        finally:
            for key in env:
                os.environ.pop(key, None)

        parallel, sequential = _study(shared_url), _study(sequential_url)
        evaluated = _evaluated(parallel)
        # no lost trial (the spec's count, all complete) and no duplicated one (distinct points)
        assert [t.state for t in evaluated] == [COMPLETE] * trials
        assert len({_point(t) for t in evaluated}) == trials
        assert {_point(t) for t in evaluated} == {_point(t) for t in sequential.trials}
        assert parallel.best_trial.params == sequential.best_trial.params
        assert parallel.best_value == pytest.approx(sequential.best_value, abs=1e-12)
        assert parallel.best_value == max(t.value for t in evaluated)
        assert parallel.best_value == pytest.approx(
            _cv_auc(inputs, parallel.best_trial.params), abs=1e-9
        )
        # the password is in the workers' environment only: never printed
        for run in runs:
            assert server.password not in run.stdout + run.stderr
        for folder in tmp_path.glob("st-*"):
            for file in folder.iterdir():
                assert server.password not in file.read_text()

        # a wrong password: the step error names the storage with the password masked
        bad = shared_url.replace(server.password, "not-the-password")
        os.environ["OPTUNA_BAD"] = bad
        try:
            with pytest.raises(StepError) as err:
                get("tune")(
                    _params("env:OPTUNA_BAD", trials, "random", 1),
                    inputs,
                    {"best_params": str(tmp_path / "bp-bad"), "study": str(tmp_path / "st-bad")},
                    StepContext(project_dir=tmp_path, state_dir=tmp_path / "state-bad"),
                )
        finally:
            os.environ.pop("OPTUNA_BAD")
        text = str(err.value)
        assert "env:OPTUNA_BAD -> postgresql+psycopg://mlc:***@127.0.0.1" in text
        assert "not-the-password" not in text and "password authentication failed" in text


def test_parallel_tpe_workers_on_a_journal_file_share_the_trials(tmp_path: Path) -> None:
    inputs = _prepare(tmp_path)
    trials = 13  # past TPE's 10 random start-up trials
    journal = tmp_path / "shared" / "study.log"
    _workers(tmp_path, inputs, _params(f"journal://{journal}", trials, "tpe", 2), {})
    get("tune")(
        _params("journal://seq/study.log", trials, "tpe", 1),
        inputs,
        {"best_params": str(tmp_path / "bp-seq"), "study": str(tmp_path / "st-seq")},
        StepContext(project_dir=tmp_path, state_dir=tmp_path / "state-seq"),
    )

    def storage(path: Path) -> optuna.storages.JournalStorage:
        backend = optuna.storages.journal.JournalFileBackend(str(path))
        return optuna.storages.JournalStorage(backend)

    parallel = _study(storage(journal))
    sequential = _study(storage(tmp_path / "seq" / "study.log"))
    evaluated = _evaluated(parallel)
    assert sorted(t.number for t in evaluated if t.state == COMPLETE) == [
        t.number for t in evaluated
    ]
    assert [t.state for t in evaluated] == [COMPLETE] * trials
    # the start-up trials are sampled from their numbers alone: the same points either way
    first = {t.number: _point(t) for t in sequential.trials if t.number < 10}
    assert {t.number: _point(t) for t in evaluated if t.number < 10} == first
    assert parallel.best_value == max(t.value for t in evaluated)
    assert parallel.best_value == pytest.approx(
        _cv_auc(inputs, parallel.best_trial.params), abs=1e-9
    )


def test_a_storage_that_is_neither_url_nor_journal_nor_resolvable_is_a_step_error(
    tmp_path: Path,
) -> None:
    from mlc.runtime.steps._study_storage import resolve

    ctx = StepContext(project_dir=tmp_path, state_dir=tmp_path / "state")
    with pytest.raises(StepError, match="OPTUNA_MISSING is not set"):
        resolve("env:OPTUNA_MISSING", ctx, "tune")
    with pytest.raises(StepError, match="only an orchestrator resolves"):
        resolve("vault:secret/data/optuna#url", ctx, "tune")
    with pytest.raises(StepError, match="names no journal file"):
        resolve("journal://", ctx, "tune")
    # a relative journal path lands in the project folder
    assert resolve("journal://.mlc/s.log", ctx, "tune").shared
    assert (tmp_path / ".mlc").is_dir()


KILLED_WORKER = r"""
import sys, time
import optuna
from mlc.runtime.steps import _study_storage as ss

ss.HEARTBEAT_S = 1
storage = ss._rdb(sys.argv[1])
study = optuna.create_study(study_name="killed", storage=storage, load_if_exists=True,
                            sampler=optuna.samplers.RandomSampler(seed=3))

class Run:
    asked, failures, gave_up, full = 0, [], False, False

def objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    print("running", trial.number, flush=True)
    time.sleep(600)  # killed here
    return x

ss.optimize_shared(study, objective, 4, None, 1,
                   {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}, Run(), 3)
"""


def test_a_killed_workers_trial_is_failed_and_its_point_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    from mlc.runtime.steps import _study_storage

    with postgres_server() as server:
        url = server.url
        killed = subprocess.Popen(
            [sys.executable, "-c", KILLED_WORKER, url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert killed.stdout is not None
        line = killed.stdout.readline()  # blocks until its first trial runs
        assert line.startswith("running 0"), killed.stderr.read() if killed.stderr else ""
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)

        monkeypatch.setattr(_study_storage, "HEARTBEAT_S", 1)
        monkeypatch.setattr(_study_storage, "GRACE_S", 3)
        storage = _study_storage._rdb(url)
        study = optuna.load_study(study_name="killed", storage=storage)
        study.sampler = optuna.samplers.RandomSampler(seed=4)

        class Run:
            asked, failures, gave_up, full = 0, [], False, False

        def objective(trial: optuna.Trial) -> float:
            return trial.suggest_float("x", 0.0, 1.0)

        ran = Run()
        _study_storage.optimize_shared(
            study,
            objective,
            4,
            120.0,
            1,
            {"x": optuna.distributions.FloatDistribution(0.0, 1.0)},
            ran,
            3,
        )
        trials = study.get_trials(deepcopy=False)
        states = optuna.trial.TrialState
        done = [t for t in trials if t.state == states.COMPLETE]
        failed = [t for t in trials if t.state == states.FAIL]
        # the killed trial is failed, not lost; its point is evaluated by the live worker;
        # the study holds exactly its 4 trials, each point once
        assert [t.number for t in failed] == [0] and ran.full and not ran.failures
        assert len(done) == 4 and len({t.params["x"] for t in done}) == 4
        retried = [t for t in done if t.system_attrs.get("failed_trial") == 0]
        assert len(retried) == 1 and retried[0].params == failed[0].params
        assert all(t.value == t.params["x"] for t in done)
