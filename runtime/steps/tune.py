"""tune: Optuna search with a cross-validated objective on the train split.

The study lives in sqlite under the project's state folder (or `storage` when given) and is
named from what it searches, so a rerun of the same search continues the same study. Trials
report each fold, so pruners can stop poor trials early. The search stops cleanly at the trial
count, the timeout or the run's deadline, and records how many trials it ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps._data import load_frame, need, out, split_xy
from mlc.runtime.steps._metrics import LOWER_IS_BETTER, score
from mlc.runtime.steps.train import make_estimator

STEP = "tune"


def _suggest(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, p in sorted(space.items()):
        if p["type"] == "float":
            values[name] = trial.suggest_float(name, p["low"], p["high"], log=p.get("log", False))
        elif p["type"] == "int":
            values[name] = trial.suggest_int(
                name, p["low"], p["high"], step=p.get("step", 1), log=p.get("log", False)
            )
        else:
            values[name] = trial.suggest_categorical(name, list(p["choices"]))
    return values


def _distributions(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The search space as Optuna distributions, so `study.ask` samples every value at once."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for name, p in sorted(space.items()):
        if p["type"] == "float":
            out[name] = FloatDistribution(p["low"], p["high"], log=p.get("log", False))
        elif p["type"] == "int":
            log = p.get("log", False)
            out[name] = IntDistribution(
                p["low"], p["high"], log=log, step=1 if log else p.get("step", 1)
            )
        else:
            out[name] = CategoricalDistribution(list(p["choices"]))
    return out


def _sampler(name: str, seed: int) -> Any:
    import optuna

    samplers = {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
    }
    return samplers[name](seed=seed)


def _pruner(name: str) -> Any:
    import optuna

    return {
        "none": optuna.pruners.NopPruner,
        "median": optuna.pruners.MedianPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    }[name]()


def _optimize(
    study: Any,
    objective: Any,
    n_trials: int,
    budget: float | None,
    parallelism: int,
    distributions: dict[str, Any],
) -> None:
    """Run `n_trials` in batches of `parallelism`, asked and told in a fixed order.

    Optuna's own `n_jobs` lets threads race for the seeded sampler, so the same seed gives
    different studies; asking a whole batch first (every value sampled in `ask`, in this
    thread) and telling results in ask order keeps a parallel study reproducible (a local run
    and a Kubeflow run of one spec agree).
    """
    from concurrent.futures import ThreadPoolExecutor

    import optuna

    started = time.monotonic()
    done = 0
    # Each trial's estimator may start its own OpenMP pool (HistGradientBoosting does); with
    # several trials at once, cap each so the pools do not oversubscribe the cores (seen here as
    # multi-second stalls after tuning).
    per_trial = max(1, (os.cpu_count() or 1) // parallelism)

    def limited(trial: Any) -> float:
        if parallelism == 1:
            return float(objective(trial))
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=per_trial, user_api="openmp"):
            return float(objective(trial))

    with ThreadPoolExecutor(max_workers=parallelism) as pool:
        while done < n_trials:
            if budget is not None and time.monotonic() - started >= budget:
                return
            batch = [study.ask(distributions) for _ in range(min(parallelism, n_trials - done))]
            futures = [pool.submit(limited, trial) for trial in batch]
            for trial, future in zip(batch, futures, strict=True):
                try:
                    value = future.result()
                except optuna.TrialPruned:
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    continue
                except BaseException:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    for other in futures:
                        other.cancel()
                    raise
                study.tell(trial, value)
            done += len(batch)


def run(
    params: dict[str, Any], inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Search `params["search_space"]`; write `best_params` and the `study` report."""
    import optuna
    from sklearn.base import clone
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.pipeline import Pipeline

    from mlc.runtime.steps._data import bind_secrets

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    train = load_frame(inputs, "train", STEP)
    x, y = split_xy(train, params["target"], STEP)
    transform = artifacts.load_object(need(inputs, "transform", STEP))
    bind_secrets(transform, ctx)
    task = params.get("task", "classification")
    objective = params["objective"]
    metric, direction = objective["metric"], objective.get("direction", "maximize")
    if (metric in LOWER_IS_BETTER) != (direction == "minimize"):
        ctx.logger.warning(
            "step 'tune': objective %s is optimised in direction %s", metric, direction
        )
    seed = int(params.get("seed", 42))
    folds = int(params.get("cv_folds", 3))
    splitter = (
        StratifiedKFold(folds, shuffle=True, random_state=seed)
        if task == "classification"
        else KFold(folds, shuffle=True, random_state=seed)
    )
    base_params = (params.get("model") or {}).get("params") or {}
    space = params["search_space"]
    train_hash = artifacts.read_meta(inputs["train"]).get("hash", "")
    identity = (
        json.dumps(
            {
                k: params.get(k)
                for k in ("search_space", "model", "objective", "framework", "cv_folds", "seed")
            },
            sort_keys=True,
        )
        + train_hash
    )
    study_name = (
        params.get("study_name") or "tune-" + hashlib.sha256(identity.encode()).hexdigest()[:16]
    )
    storage = params.get("storage") or f"sqlite:///{(ctx.state / 'optuna.db').resolve()}"
    try:
        study = optuna.create_study(
            study_name=study_name,
            storage=storage,
            direction=direction,
            load_if_exists=True,
            sampler=_sampler(params.get("sampler", "tpe"), seed),
            pruner=_pruner(params.get("pruner", "median")),
        )
    except Exception as exc:  # storage errors come from SQLAlchemy and optuna alike
        raise StepError(STEP, f"cannot open the Optuna study in {storage}: {exc}") from exc
    states = optuna.trial.TrialState

    def finished() -> int:
        return sum(t.state in (states.COMPLETE, states.PRUNED) for t in study.trials)

    before = finished()

    def objective_fn(trial: Any) -> float:
        model_params = {**base_params, **_suggest(trial, space)}
        values = []
        for fold, (tr, va) in enumerate(splitter.split(x, y)):
            pipe = Pipeline(
                [
                    ("transform", clone(transform)),
                    ("model", make_estimator(params, model_params, STEP)),
                ]
            )
            bind_secrets(pipe, ctx)
            pipe.fit(x.iloc[tr], y.iloc[tr])
            values.append(score(metric, task, pipe, x.iloc[va], y.iloc[va]))
            trial.report(sum(values) / len(values), fold)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(sum(values) / len(values))

    wanted = max(0, int(params.get("trials", 20)) - before)
    timeout = params.get("timeout")
    left = ctx.seconds_left()
    limits = [float(v) for v in (timeout, left) if v is not None]
    budget = min(limits) if limits else None
    started = time.monotonic()
    stopped = "trials"
    if budget is not None and budget <= 0:
        stopped = "deadline"
    elif wanted:
        try:
            _optimize(
                study,
                objective_fn,
                wanted,
                budget,
                max(1, int(params.get("parallelism", 1))),
                _distributions(space),
            )
        except StepError:
            raise
        except Exception as exc:  # a failing trial means the model or space is wrong
            raise StepError(
                STEP,
                f"a tuning trial failed: {type(exc).__name__}: {exc}",
                "check tuning.search_space against the model's parameters",
            ) from exc
        if finished() - before < wanted:
            stopped = (
                "timeout"
                if timeout is not None and (left is None or float(timeout) <= left)
                else "deadline"
            )
    spent = round(time.monotonic() - started, 3)
    complete = [t for t in study.trials if t.state == states.COMPLETE]
    best = study.best_trial if complete else None
    best_params = dict(best.params) if best else {}
    doc = {
        "study": study_name,
        "metric": metric,
        "direction": direction,
        "best_params": best_params,
        "best_value": best.value if best else None,
        "trials_total": len(study.trials),
        "trials_complete": len(complete),
        "trials_pruned": sum(t.state == states.PRUNED for t in study.trials),
        "trials_this_run": finished() - before,
        "stopped": stopped,
        "seconds": spent,
    }
    artifacts.save_json(
        out(outputs, "best_params", STEP),
        "params",
        {"best_params": best_params, "best_value": doc["best_value"], "metric": metric},
        "params",
    )
    artifacts.save_json(out(outputs, "study", STEP), "study", doc, "report")
    if stopped != "trials":
        ctx.logger.warning(
            "step 'tune': stopped at the %s after %d trials", stopped, doc["trials_this_run"]
        )
    return doc
