"""The tune step when trials fail, and how a stored study is resumed (issue 11 item 6).

Real Optuna studies in sqlite under tmp_path, real scikit-learn fits on small generated tables.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from support.runtime import complete

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps import get


def _prepare(tmp_path: Path, y: np.ndarray, seed: int = 0) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=len(y)), "b": rng.normal(size=len(y)), "y": y})
    artifacts.save_dataframe(str(tmp_path / "train"), df)
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


def _params(**changes: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "framework": "sklearn",
        "task": "classification",
        "target": "y",
        "model": {"name": "LogisticRegression", "params": {"max_iter": 200}},
        "seed": 1,
        "objective": {"metric": "roc_auc", "direction": "maximize"},
        "search_space": {"C": {"type": "float", "low": 0.01, "high": 10.0, "log": True}},
        "trials": 3,
        "cv_folds": 3,
        "sampler": "random",
        "pruner": "none",
    }
    params.update(changes)
    # The rest (engine, timeout, parallelism, storage, …) as the compiler writes them.
    return complete("tune", {"parallelism": 1, "timeout": None, "storage": None, **params})


def _ctx(tmp_path: Path) -> StepContext:
    return StepContext(project_dir=tmp_path, state_dir=tmp_path / "state")


def _outs(tmp_path: Path, tag: str) -> dict[str, str]:
    return {"best_params": str(tmp_path / f"bp-{tag}"), "study": str(tmp_path / f"st-{tag}")}


def test_every_trial_failing_fails_the_step_with_the_first_cause(tmp_path: Path) -> None:
    # 2 positives in 60 rows: with 3 stratified folds one validation fold holds no positive,
    # so ROC AUC is undefined there (NaN), in every trial alike.
    y = np.zeros(60, dtype=int)
    y[[7, 31]] = 1
    inputs = _prepare(tmp_path, y)
    ctx = _ctx(tmp_path)
    with pytest.raises(StepError) as err:
        get("tune")(_params(trials=10), inputs, _outs(tmp_path, "a"), ctx)
    text = str(err.value)
    assert "no tuning trial completed" in text
    assert "3 of 3 trial(s) this run failed" in text  # gave up early, not 10 alike failures
    assert "roc_auc = nan" in text and "1 class(es) in the fold" in text
    assert "Only one class is present in y_true" in text
    assert "deadline" not in text
    studies = optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 'state' / 'optuna.db'}")
    (summary,) = studies
    trials = optuna.load_study(
        study_name=summary.study_name, storage=f"sqlite:///{tmp_path / 'state' / 'optuna.db'}"
    ).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL] * 3


def test_a_failing_parameter_is_reported_and_the_completed_trials_win(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    y = np.arange(90) % 2
    inputs = _prepare(tmp_path, y)
    # A solver scikit-learn does not have: those trials raise, the others complete.
    space = {"solver": {"type": "categorical", "choices": ["lbfgs", "no-such-solver"]}}
    with caplog.at_level(logging.WARNING):
        doc = get("tune")(
            _params(
                search_space=space,
                trials=8,
                objective={"metric": "accuracy", "direction": "maximize"},
            ),
            inputs,
            _outs(tmp_path, "p"),
            _ctx(tmp_path),
        )
    assert doc["trials_complete"] >= 1 and doc["best_params"] == {"solver": "lbfgs"}
    assert doc["trials_failed_this_run"] == doc["trials_total"] - doc["trials_complete"] >= 1
    assert "Error" in doc["first_failure"] and "solver" in doc["first_failure"]
    assert any("trial(s) failed; the first" in r.getMessage() for r in caplog.records)


def test_a_stored_study_is_resumed_visibly_and_keyed_on_its_definition(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    y = np.arange(90) % 2
    inputs = _prepare(tmp_path, y)
    ctx = _ctx(tmp_path)
    tune = get("tune")
    first = tune(_params(trials=2), inputs, _outs(tmp_path, "1"), ctx)
    assert (first["resumed"], first["trials_this_run"], first["trials_total"]) == (False, 2, 2)
    assert "note" not in first
    with caplog.at_level(logging.WARNING):
        again = tune(_params(trials=2), inputs, _outs(tmp_path, "2"), ctx)
    assert again["study"] == first["study"]
    assert (again["resumed"], again["trials_before"], again["trials_this_run"]) == (True, 2, 0)
    assert "already has 2 finished trial(s)" in again["note"]
    assert again["best_params"] == first["best_params"]
    assert any("no new trials run" in r.getMessage() for r in caplog.records)
    more = tune(_params(trials=3), inputs, _outs(tmp_path, "3"), ctx)
    assert (more["study"], more["trials_this_run"], more["trials_total"]) == (first["study"], 1, 3)
    assert "ran 1 more" in more["note"]
    # Any change to what defines the study starts a new one.
    changes = [
        {"search_space": {"C": {"type": "float", "low": 0.1, "high": 5.0, "log": False}}},
        {"objective": {"metric": "accuracy", "direction": "maximize"}},
        {"cv_folds": 2},
        {"model": {"name": "LogisticRegression", "params": {"max_iter": 300}}},
    ]
    names = {first["study"]}
    for change in changes:
        fresh = tune(_params(trials=1, **change), inputs, _outs(tmp_path, "c"), ctx)
        assert not fresh["resumed"] and fresh["trials_this_run"] == 1, change
        names.add(fresh["study"])
    other_data = _prepare(tmp_path / "other", y, seed=9)
    fresh = tune(_params(trials=1), other_data, _outs(tmp_path, "d"), ctx)
    names.add(fresh["study"])
    assert len(names) == len(changes) + 2
