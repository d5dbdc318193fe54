"""train: the feature transform and an estimator in one scikit-learn `Pipeline`.

`framework: sklearn` finds the estimator by short name in the usual sklearn modules or by dotted
path; `lightning` uses `mlc.runtime.lightning_mlp.MLPEstimator` (accelerator, devices,
precision and strategy from params; a user `LightningModule` from `lightning.module` trains
through the same estimator); `xgboost` / `lightgbm` / `keras` go through
`mlc.runtime.frameworks` (the library's scikit-learn class, checked parameters, early stopping
on the validation split); `custom` calls the user's `module:function(X, y, params)`.
Tuned best params (input `params`) override the spec's params.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import time
from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts
from mlc.runtime.context import BudgetExceeded, StepContext, StepError
from mlc.runtime.frameworks import BOOSTING, require
from mlc.runtime.steps._data import import_entry, load_frame, load_sample, need, out, split_xy

if TYPE_CHECKING:
    from mlc.compiler.ir.params import (
        DistributedParams,
        EarlyStoppingParams,
        LightningParams,
        TrainParams,
        TuneParams,
    )

STEP = "train"
SKLEARN_MODULES = ("ensemble", "linear_model", "tree", "svm", "neighbors", "naive_bayes")


def _sklearn_names() -> dict[str, str]:
    from sklearn.base import BaseEstimator

    names: dict[str, str] = {}
    for mod in SKLEARN_MODULES:
        module = importlib.import_module(f"sklearn.{mod}")
        for name in getattr(module, "__all__", dir(module)):
            obj = getattr(module, name, None)
            if inspect.isclass(obj) and issubclass(obj, BaseEstimator):
                names.setdefault(name, f"sklearn.{mod}")
    return names


def estimator_class(name: str, step: str = STEP) -> Any:
    """The estimator class for a short sklearn name or a dotted path (`pkg.mod.Class`).

    Raises:
        StepError: with a "did you mean" when the name is unknown.
    """
    if "." in name or ":" in name:
        return import_entry(name, step, "model")
    names = _sklearn_names()
    if name in names:
        return getattr(importlib.import_module(names[name]), name)
    close = difflib.get_close_matches(name, list(names), n=3)
    raise StepError(
        step,
        f"unknown model '{name}'",
        ("did you mean " + " or ".join(f"'{c}'" for c in close) + "?")
        if close
        else "use a scikit-learn estimator name or a dotted path 'pkg.mod.Class'",
    )


def make_estimator(
    params: TrainParams | TuneParams, model_params: dict[str, Any], step: str = STEP
) -> Any:
    """An unfitted estimator for the spec's framework (all but `custom`) with `model_params`."""
    framework = params["framework"]
    model = params["model"]
    name = model["name"] if model is not None else None
    if framework in BOOSTING:
        from mlc.runtime.frameworks import boost

        return boost.make_estimator(
            framework, name, params["task"], model_params, params["seed"], step
        )
    if framework == "keras":
        from mlc.runtime.frameworks import keras_model

        return keras_model.make_estimator(params, model_params, step)
    if framework == "lightning":
        require("lightning", step)
        from mlc.runtime.lightning_mlp import MLPEstimator, launch_plan

        light: LightningParams = params["lightning"]
        dist: DistributedParams = params["distributed"]
        options: dict[str, Any] = {
            "task": params["task"],
            "learning_rate": light["learning_rate"],
            "batch_size": light["batch_size"],
            "max_epochs": light["max_epochs"],
            "precision": light["precision"],
            "accelerator": light["accelerator"],
            "devices": dist["devices"],
            "strategy": dist["strategy"],
            "max_time": params["max_time"],
            "seed": params["seed"],
        }
        early = light["early_stopping"]
        if early is not None:
            options["early_stopping_patience"] = early["patience"]
            options["early_stopping_min_delta"] = early["min_delta"]
        module = light["module"]
        if module is not None:
            from mlc.runtime.frameworks import lightning_module

            # The module's own parameters go to its constructor, not to the trainer.
            lightning_module.load_class(module, step)
            options.update(module=module, module_params=dict(model_params))
        elif name != "tabular_mlp":
            raise StepError(
                step,
                f"unknown Lightning model '{name}'",
                "the built-in Lightning module is 'tabular_mlp'",
            )
        else:
            options.update(model_params)
        if "hidden" in options:
            options["hidden"] = tuple(options["hidden"])
        try:
            launch_plan(str(options["strategy"]), options["devices"], str(options["accelerator"]))
        except ValueError as exc:
            raise StepError(step, str(exc), "set training.distributed") from exc
        try:
            return MLPEstimator(**options)
        except TypeError as exc:
            raise StepError(step, f"bad tabular_mlp params: {exc}") from exc
    cls = estimator_class(str(name), step)
    kwargs = dict(model_params)
    accepted: set[str] = set()
    var_keyword = False
    # Builtins and C classes have no signature: their params pass through unchecked.
    with contextlib.suppress(TypeError, ValueError):
        for p in inspect.signature(cls).parameters.values():
            if p.kind == p.VAR_KEYWORD:
                var_keyword = True
            else:
                accepted.add(p.name)
    if "random_state" in accepted and "random_state" not in kwargs:
        kwargs["random_state"] = params["seed"]
    library = cls.__module__.partition(".")[0]
    if var_keyword and library in BOOSTING:
        # XGBoost/LightGBM by dotted path: `**kwargs` names are checked against the library.
        from mlc.runtime.frameworks import boost

        boost.check_params(library, cls, kwargs, step)
        return cls(**kwargs)
    unknown = [k for k in kwargs if accepted and not var_keyword and k not in accepted]
    if unknown:
        raise StepError(
            step,
            f"model '{name}' has no parameter(s) " + ", ".join(sorted(unknown)),
            "valid: " + ", ".join(sorted(accepted)),
        )
    return cls(**kwargs)


def early_stopping(params: TrainParams | TuneParams) -> EarlyStoppingParams | None:
    """The early-stopping settings of the spec's framework (None: it trains to the end)."""
    framework = params["framework"]
    if framework == "lightning":
        return params["lightning"]["early_stopping"]
    if framework in BOOSTING:
        return params["boost"]["early_stopping"]
    if framework == "keras":
        return params["keras"]["early_stopping"]
    return None


def fit_trial(pipe: Any, x: Any, y: Any, params: TrainParams | TuneParams) -> None:
    """Fit a tuning trial's pipeline on a fold's training rows (boosting early-stops on part)."""
    early = early_stopping(params)
    if params["framework"] in BOOSTING and early is not None:
        from mlc.runtime.frameworks import boost

        boost.fit_fold(pipe, x, y, params["framework"], early, params["seed"])
    else:
        pipe.fit(x, y)


def _validation_rows(params: TrainParams, inputs: dict[str, str]) -> tuple[Any, Any] | None:
    """The validation split's features and labels when the model early-stops on them."""
    if early_stopping(params) is None:
        return None
    if "validation" not in inputs:
        raise StepError(STEP, "early stopping needs the validation split as an input")
    frame = load_frame(inputs, "validation", STEP)
    if len(frame) == 0:
        raise StepError(
            STEP,
            "early stopping needs validation rows, and the validation split is empty",
            "raise data.split.validation_size",
        )
    return split_xy(frame, params["target"], STEP)


def run(
    params: TrainParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Fit transform + estimator on `train`; save the whole `Pipeline` as the `model` artifact.

    Raises:
        BudgetExceeded: when the run's deadline has passed before fitting, or fitting took
            longer than `max_time` (sklearn cannot be interrupted; Lightning stops itself).
    """
    from mlc.runtime.steps._data import bind_secrets

    # one-row calls of the trained model take its compiled row path (runtime/rowpath.py)
    from mlc.runtime.steps._transforms import RowPipeline as Pipeline

    if params["framework"] == "spark_ml":
        from mlc.runtime.spark import mllib

        return mllib.run(params, inputs, outputs, ctx)
    train, sampled = load_sample(inputs, "train", STEP, params.get("sample"), params["seed"])
    if sampled is not None:
        ctx.logger.info(
            "step 'train': training on a sample of %d of %d rows", sampled["rows"], sampled["of"]
        )
    x, y = split_xy(train, params["target"], STEP)
    transform = artifacts.load_object(need(inputs, "transform", STEP))
    bind_secrets(transform, ctx)
    tuned: dict[str, Any] = {}
    if "params" in inputs:
        tuned = dict(artifacts.load_json(inputs["params"], "params").get("best_params") or {})
    model = params["model"]
    model_params = {**(model["params"] if model is not None else {}), **tuned}
    framework = params["framework"]
    max_time = params["max_time"]
    left = ctx.seconds_left()
    if left is not None and left <= 0:
        raise BudgetExceeded(
            STEP,
            "the run's time budget was spent before training started",
            "raise budgets or training.max_time",
        )
    # The run's deadline caps Lightning's fit without becoming an estimator parameter: a
    # parameter is pickled with the model, and the seconds left differ on every run, so the
    # same seed and inputs would save different bytes.
    time_limit = left if left is not None and framework in ("lightning", "keras") else None
    started = time.monotonic()
    if framework == "custom":
        fn = import_entry(str(params["entry_point"]), STEP, "custom entry point")
        matrix = transform.fit_transform(x, y)
        try:
            estimator = fn(matrix, y.to_numpy(), model_params)
        except Exception as exc:  # the user's code may raise anything
            raise StepError(
                STEP,
                f"custom entry point '{params['entry_point']}' raised {type(exc).__name__}: {exc}",
            ) from exc
        if not hasattr(estimator, "predict"):
            raise StepError(
                STEP,
                f"custom entry point '{params['entry_point']}' returned "
                f"{type(estimator).__name__}, which has no predict()",
            )
        pipeline = Pipeline([("transform", transform), ("model", estimator)])
    else:
        estimator = make_estimator(params, model_params)
        validation = _validation_rows(params, inputs)
        try:
            if validation is None:
                pipeline = Pipeline([("transform", transform), ("model", estimator)])
                limit = {} if time_limit is None else {"model__time_limit": time_limit}
                pipeline.fit(x, y, **limit)
            else:
                # The transform is fitted on the training rows only, then applied to the
                # validation rows the estimator scores each epoch (what Pipeline.fit would do,
                # with the validation rows passed through the fitted transform).
                x_val, y_val = validation
                matrix = transform.fit_transform(x, y)
                val = (transform.transform(x_val), y_val)
                if framework in BOOSTING:
                    from mlc.runtime.frameworks import boost

                    boost.fit(estimator, framework, matrix, y, val, early_stopping(params))
                else:
                    estimator.fit(matrix, y, validation=val, time_limit=time_limit)
                pipeline = Pipeline([("transform", transform), ("model", estimator)])
        except StepError:
            raise
        except Exception as exc:  # estimator errors are the user's to fix: name them
            raise StepError(
                STEP,
                f"fitting {model['name'] if model is not None else None} failed: "
                f"{type(exc).__name__}: {exc}",
            ) from exc
    spent = round(time.monotonic() - started, 3)
    if framework not in ("lightning", "keras") and max_time is not None and spent > float(max_time):
        raise BudgetExceeded(
            STEP,
            f"training took {spent:.1f}s, over max_time {float(max_time):.0f}s",
            "raise training.max_time",
        )
    summary: dict[str, Any] = {
        "framework": framework,
        "rows": len(x),
        "seconds": spent,
        "params": model_params,
    }
    if sampled is not None:
        summary["sample"] = sampled
    est = pipeline.steps[-1][1]
    if framework in ("lightning", "keras"):
        summary.update(epochs=est.epochs_, stopped=est.stopped_, loss=est.final_loss_)
        if est.val_loss_ is not None:
            summary["val_loss"] = est.val_loss_
    elif framework in BOOSTING:
        from mlc.runtime.frameworks import boost

        summary.update(boost.rounds(est, framework))
    digest = artifacts.save_object(
        out(outputs, "model", STEP),
        pipeline,
        "model",
        framework=framework,
        task=params["task"],
        target=params["target"],
        params=model_params,
    )
    summary["hash"] = digest
    return summary
