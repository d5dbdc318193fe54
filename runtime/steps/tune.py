"""tune: Optuna search with a cross-validated objective on the train split.

The study lives in sqlite under the project's state folder (or `storage` when given) and is
named by a hash of what defines it (search space, model, metric and direction, task and target,
cross-validation folds and seed, the train data and the fitted transform), so a rerun of the
same search continues the same study (`tuning.trials` is the study's total: a rerun runs only
the difference, and says so) and a changed definition starts a new one. Trials report each fold,
so pruners can stop poor trials early. A trial that raises or scores NaN (a fold with one class)
fails; the step fails, naming the first cause, when no trial of the study completed. The search
stops cleanly at the trial count, the timeout or the run's deadline, and records how many trials
it ran.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts
from mlc.runtime.context import BudgetExceeded, StepContext, StepError
from mlc.runtime.steps import _study_storage
from mlc.runtime.steps._data import load_sample, need, out, split_xy
from mlc.runtime.steps._metrics import score
from mlc.runtime.steps.train import fit_trial, make_estimator

if TYPE_CHECKING:
    from mlc.compiler.ir.params import SearchParamParams, TuneParams

STEP = "tune"


def _suggest(trial: Any, space: dict[str, SearchParamParams]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, p in sorted(space.items()):
        if p["type"] == "float":
            values[name] = trial.suggest_float(name, p["low"], p["high"], log=p["log"])
        elif p["type"] == "int":
            values[name] = trial.suggest_int(
                name, p["low"], p["high"], step=p["step"], log=p["log"]
            )
        else:
            values[name] = trial.suggest_categorical(name, list(p["choices"]))
    return values


def _distributions(space: dict[str, SearchParamParams]) -> dict[str, Any]:
    """The search space as Optuna distributions, so `study.ask` samples every value at once."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for name, p in sorted(space.items()):
        if p["type"] == "float":
            out[name] = FloatDistribution(p["low"], p["high"], log=p["log"])
        elif p["type"] == "int":
            log = p["log"]
            # Optuna allows no step other than 1 on a log scale.
            out[name] = IntDistribution(p["low"], p["high"], log=log, step=1 if log else p["step"])
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


# Trials that fail before any trial of the study completed: past this many, the search stops
# (a fold with one class or a wrong parameter fails every trial alike; more tries waste time).
_FAILURES_BEFORE_STOP = 3


def _summarise(exc: BaseException) -> str:
    """An exception in one line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text.removeprefix(f"step '{STEP}': ")
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Run:
    """What one `_optimize` call did: trials asked, failures (trial number, cause), why it ended."""

    def __init__(self) -> None:
        self.asked = 0
        self.failures: list[tuple[int, str]] = []
        self.gave_up = False
        self.full = False
        """A shared study already held its trials (other workers ran them)."""


def _optimize(
    study: Any,
    objective: Any,
    n_trials: int,
    budget: float | None,
    parallelism: int,
    distributions: dict[str, Any],
) -> _Run:
    """Run `n_trials` in batches of `parallelism`, asked and told in a fixed order.

    Optuna's own `n_jobs` lets threads race for the seeded sampler, so the same seed gives
    different studies; asking a whole batch first (every value sampled in `ask`, in this
    thread) and telling results in ask order keeps a parallel study reproducible (a local run
    and a Kubeflow run of one spec agree). A trial that raises is told FAIL and recorded; the
    search gives up after `_FAILURES_BEFORE_STOP` failures while no trial has completed.
    """
    from concurrent.futures import ThreadPoolExecutor

    import optuna

    started = time.monotonic()
    done = 0
    result = _Run()
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

    complete = optuna.trial.TrialState.COMPLETE
    with ThreadPoolExecutor(max_workers=parallelism) as pool:
        while done < n_trials:
            if budget is not None and time.monotonic() - started >= budget:
                return result
            batch = [study.ask(distributions) for _ in range(min(parallelism, n_trials - done))]
            futures = [pool.submit(limited, trial) for trial in batch]
            for trial, future in zip(batch, futures, strict=True):
                try:
                    value = future.result()
                except optuna.TrialPruned:
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    continue
                except Exception as exc:  # a trial's model, data or metric can raise anything
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    result.failures.append((trial.number, _summarise(exc)))
                    continue
                except BaseException:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    for other in futures:
                        other.cancel()
                    raise
                study.tell(trial, value)
            done += len(batch)
            result.asked = done
            if len(result.failures) >= _FAILURES_BEFORE_STOP and not any(
                t.state == complete for t in study.get_trials(deepcopy=False)
            ):
                result.gave_up = True
                return result
    return result


def run(
    params: TuneParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Search `params["search_space"]`; write `best_params` and the `study` report."""
    import optuna
    from sklearn.base import clone
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.pipeline import Pipeline

    from mlc.runtime.steps._data import bind_secrets

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    train, sampled = load_sample(inputs, "train", STEP, params.get("sample"), params["seed"])
    x, y = split_xy(train, params["target"], STEP)
    transform = artifacts.load_object(need(inputs, "transform", STEP))
    bind_secrets(transform, ctx)
    task = params["task"]
    objective = params["objective"]
    metric, direction = objective["metric"], objective["direction"]
    # only a hint: the objective's own direction decides
    natural = params["metric_direction"]
    if (natural == "lower") != (direction == "minimize"):
        ctx.logger.warning(
            "step 'tune': objective %s is optimised in direction %s", metric, direction
        )
    seed = params["seed"]
    folds = params["cv_folds"]
    splitter = (
        StratifiedKFold(folds, shuffle=True, random_state=seed)
        if task == "classification"
        else KFold(folds, shuffle=True, random_state=seed)
    )
    model = params["model"]
    base_params = model["params"] if model is not None else {}
    space = params["search_space"]
    # Everything that changes what a trial's value means: the same key resumes, any change
    # starts a new study (a study's old values would otherwise steer the sampler and the best).
    identity = json.dumps(
        {
            "search_space": params["search_space"],
            "model": model,
            "framework": params["framework"],
            "task": task,
            "target": params["target"],
            "seed": seed,
            "metric": metric,
            "direction": direction,
            "cv_folds": folds,
            # early stopping changes what a trial scores (only keyed in where it applies, so
            # the studies of other frameworks keep their names)
            **(
                {"boost": params["boost"]} if params["framework"] in ("xgboost", "lightgbm") else {}
            ),
            **({"keras": params["keras"]} if params["framework"] == "keras" else {}),
            "train": artifacts.read_meta(inputs["train"]).get("hash", ""),
            # a sample is other rows (keyed in only when set: unsampled studies keep their names)
            **({"sample": sampled} if sampled is not None else {}),
            "transform": artifacts.read_meta(inputs["transform"]).get("hash", ""),
        },
        sort_keys=True,
    )
    study_name = "tune-" + hashlib.sha256(identity.encode()).hexdigest()[:16]
    where = _study_storage.resolve(params["storage"], ctx, STEP)
    sampler = (
        _study_storage.trial_seeded(lambda s: _sampler(params["sampler"], s), seed)
        if where.shared
        else _sampler(params["sampler"], seed)
    )
    try:
        study = optuna.create_study(
            study_name=study_name,
            storage=where.storage,
            direction=direction,
            load_if_exists=True,
            sampler=sampler,
            pruner=_pruner(params["pruner"]),
        )
    except Exception as exc:  # storage errors come from SQLAlchemy and optuna alike
        shown = where.shown or str(where.storage)
        raise StepError(
            STEP, f"cannot open the Optuna study in {shown}: {where.masked(str(exc))}"
        ) from None
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
            fit_trial(pipe, x.iloc[tr], y.iloc[tr], params)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                value = score(metric, task, pipe, x.iloc[va], y.iloc[va])
            if not math.isfinite(value):
                # Optuna would record a NaN as a silent failure; say why it is NaN instead.
                why = "; ".join(sorted({str(w.message) for w in caught})) or "no warning given"
                classes = y.iloc[va].nunique()
                raise ValueError(
                    f"fold {fold + 1} of {folds} scored {metric} = {value} "
                    f"({len(va)} rows, {classes} class(es) in the fold): {why}"
                )
            values.append(value)
            trial.report(sum(values) / len(values), fold)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(sum(values) / len(values))

    wanted = max(0, params["trials"] - before)
    timeout = params["timeout"]
    left = ctx.seconds_left()
    limits = [float(v) for v in (timeout, left) if v is not None]
    budget = min(limits) if limits else None
    started = time.monotonic()
    stopped = "trials"
    ran = _Run()
    if budget is not None and budget <= 0:
        stopped = "deadline"
    elif wanted and where.shared:
        _study_storage.optimize_shared(
            study,
            objective_fn,
            params["trials"],
            budget,
            max(1, params["parallelism"]),
            _distributions(space),
            ran,
            _FAILURES_BEFORE_STOP,
        )
        if ran.gave_up:
            stopped = "failures"
        elif not ran.full and _study_storage.live_trials(study) < params["trials"]:
            stopped = (
                "timeout"
                if timeout is not None and (left is None or float(timeout) <= left)
                else "deadline"
            )
    elif wanted:
        ran = _optimize(
            study,
            objective_fn,
            wanted,
            budget,
            max(1, params["parallelism"]),
            _distributions(space),
        )
        if ran.gave_up:
            stopped = "failures"
        elif ran.asked < wanted:
            stopped = (
                "timeout"
                if timeout is not None and (left is None or float(timeout) <= left)
                else "deadline"
            )
    spent = round(time.monotonic() - started, 3)
    complete = [t for t in study.trials if t.state == states.COMPLETE]
    failed_total = sum(
        t.state == states.FAIL and not t.user_attrs.get(_study_storage.SURPLUS)
        for t in study.trials
    )
    if not complete:
        if ran.failures:
            number, cause = ran.failures[0]
            raise StepError(
                STEP,
                f"no tuning trial completed: {len(ran.failures)} of {ran.asked} trial(s) this "
                f"run failed; the first (trial {number}): {cause}",
                "a fold with too few rows of a class fails every trial: add data, lower "
                "tuning.cv_folds, or check tuning.search_space against the model's parameters",
            )
        # Out of time before any trial finished: training on untuned defaults would hide it.
        raise BudgetExceeded(
            STEP,
            f"no tuning trial completed (stopped at the {stopped}, study '{study_name}' has "
            f"{len(study.trials)} trial(s), {failed_total} failed)",
            "raise tuning.timeout or training.max_time, or tuning.trials",
        )
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
        "trials_failed": failed_total,
        "trials_this_run": finished() - before,
        "trials_failed_this_run": len(ran.failures),
        "resumed": before > 0,
        "trials_before": before,
        "stopped": stopped,
        "seconds": spent,
    }
    if ran.failures:
        doc["first_failure"] = f"trial {ran.failures[0][0]}: {ran.failures[0][1]}"
    if before and not wanted:
        doc["note"] = (
            f"resumed study '{study_name}', which already has {before} finished trial(s) "
            f"(tuning.trials: {params['trials']} counts the study's total): "
            "no new trials run, its best parameters reused"
        )
    elif before:
        doc["note"] = (
            f"resumed study '{study_name}' with {before} finished trial(s); "
            f"ran {doc['trials_this_run']} more to reach tuning.trials: {params['trials']}"
        )
    artifacts.save_json(
        out(outputs, "best_params", STEP),
        "params",
        {"best_params": best_params, "best_value": doc["best_value"], "metric": metric},
        "params",
    )
    artifacts.save_json(out(outputs, "study", STEP), "study", doc, "report")
    if "note" in doc:
        ctx.logger.warning("step 'tune': %s", doc["note"])
    if ran.failures:
        ctx.logger.warning(
            "step 'tune': %d of %d trial(s) failed; the first: %s",
            len(ran.failures),
            ran.asked,
            doc["first_failure"],
        )
    if stopped not in ("trials", "failures"):
        ctx.logger.warning(
            "step 'tune': stopped at the %s after %d trials", stopped, doc["trials_this_run"]
        )
    if sampled is not None:
        doc["sample"] = sampled
    return doc
