"""XGBoost and LightGBM through their scikit-learn classes, with their own early stopping.

Parameters are checked against the library before training: the class's constructor
arguments, plus, for names it passes through `**kwargs`, what the library itself knows
(XGBoost's booster, probed with one round on two rows, says which parameters it does not use;
LightGBM lists every parameter and alias). Early stopping watches the validation split
(`eval_set`) with the library's own callback and keeps the best round's trees, so the model
saved, its ONNX graph and its predictions all use the same trees.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import re
import warnings
from typing import TYPE_CHECKING, Any

from mlc.runtime.context import StepError
from mlc.runtime.frameworks import require

if TYPE_CHECKING:
    from mlc.compiler.ir.params import EarlyStoppingParams

DEFAULT_MODELS = {
    ("xgboost", "classification"): "XGBClassifier",
    ("xgboost", "regression"): "XGBRegressor",
    ("lightgbm", "classification"): "LGBMClassifier",
    ("lightgbm", "regression"): "LGBMRegressor",
}
MODELS = {
    "xgboost": ("XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor"),
    "lightgbm": ("LGBMClassifier", "LGBMRegressor"),
}

# Booster parameters XGBoost takes through `**kwargs`: only the candidates for "did you mean"
# (the probe, not this list, decides what is known).
_XGB_BOOSTER = (
    "eta", "gamma", "max_depth", "min_child_weight", "max_delta_step", "subsample",
    "sampling_method", "colsample_bytree", "colsample_bylevel", "colsample_bynode", "lambda",
    "alpha", "tree_method", "scale_pos_weight", "updater", "refresh_leaf", "process_type",
    "grow_policy", "max_leaves", "max_bin", "num_parallel_tree", "monotone_constraints",
    "interaction_constraints", "max_cat_to_onehot", "max_cat_threshold", "multi_strategy",
    "objective", "eval_metric", "base_score", "seed", "nthread", "device", "verbosity",
    "booster", "num_class", "huber_slope", "quantile_alpha", "tweedie_variance_power",
    "rate_drop", "one_drop", "skip_drop", "sample_type", "normalize_type", "feature_selector",
    "top_k", "max_cached_hist_node", "disable_default_eval_metric",
)  # fmt: skip
_UNUSED = re.compile(r"Parameters: \{(.*?)\} are not used", re.S)


def model_class(framework: str, name: str | None, task: str, step: str) -> Any:
    """The library's scikit-learn class named `name` (by default the task's)."""
    module = require(framework, step)
    name = name or DEFAULT_MODELS[(framework, task)]
    short = name.rpartition(".")[2]
    if short not in MODELS[framework]:
        close = difflib.get_close_matches(short, MODELS[framework], n=2)
        raise StepError(
            step,
            f"unknown {framework} model '{name}'",
            ("did you mean " + " or ".join(f"'{c}'" for c in close) + "?")
            if close
            else "models: " + ", ".join(MODELS[framework]),
        )
    return getattr(module, short)


def _constructor_params(cls: Any) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        with contextlib.suppress(TypeError, ValueError):
            for p in inspect.signature(init).parameters.values():
                if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self":
                    names.add(p.name)
    return names


def _xgb_unknown(names: list[str], params: dict[str, Any]) -> list[str]:
    """Of `names` (passed through `**kwargs` to the booster), those XGBoost does not use."""
    import numpy as np
    import xgboost

    data = xgboost.DMatrix(np.array([[0.0], [1.0]]), label=np.array([0.0, 1.0]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            xgboost.train({k: params[k] for k in names}, data, num_boost_round=1)
        except xgboost.core.XGBoostError:
            return []  # a bad value, not a bad name: the fit reports it in full
    unused: set[str] = set()
    for w in caught:
        for group in _UNUSED.findall(str(w.message)):
            unused |= {n.strip().strip('"') for n in group.split(",") if n.strip()}
    return [n for n in names if n in unused]


def _lgb_known() -> set[str]:
    from lightgbm.basic import _ConfigAliases

    known: set[str] = set()
    for name, aliases in _ConfigAliases._get_all_param_aliases().items():
        known.add(name)
        known.update(aliases)
    return known


def check_params(framework: str, cls: Any, params: dict[str, Any], step: str) -> None:
    """Fail on parameters the library does not know, with the closest known names."""
    own = _constructor_params(cls)
    rest = [k for k in params if k not in own]
    if not rest:
        return
    if framework == "xgboost":
        unknown = _xgb_unknown(rest, params)
        candidates = own | set(_XGB_BOOSTER)
    else:
        known = _lgb_known()
        unknown = [k for k in rest if k not in known]
        candidates = own | known
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(candidates), n=3)
        if close:
            hints.append(f"'{name}': did you mean " + " or ".join(f"'{c}'" for c in close) + "?")
    raise StepError(
        step,
        f"{cls.__name__} has no parameter(s) " + ", ".join(sorted(unknown)),
        "; ".join(hints) or f"see the {framework} parameter reference",
    )


def make_estimator(
    framework: str,
    name: str | None,
    task: str,
    model_params: dict[str, Any],
    seed: int,
    step: str,
) -> Any:
    """An unfitted XGBoost/LightGBM scikit-learn estimator with checked parameters."""
    cls = model_class(framework, name, task, step)
    kwargs = dict(model_params)
    check_params(framework, cls, kwargs, step)
    kwargs.setdefault("random_state", seed)
    if framework == "lightgbm" and not {"verbose", "verbosity"} & set(kwargs):
        kwargs["verbose"] = -1  # its per-fit info lines would cut into mlc run's display
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise StepError(step, f"bad {cls.__name__} params: {exc}") from exc


def fit(
    estimator: Any,
    framework: str,
    x: Any,
    y: Any,
    validation: tuple[Any, Any] | None,
    early: EarlyStoppingParams | None,
) -> Any:
    """Fit; with `early` and `validation`, stop on the validation loss and keep the best trees."""
    if validation is None or early is None:
        return estimator.fit(x, y)
    x_val, y_val = validation
    if framework == "xgboost":
        import xgboost

        stopper = xgboost.callback.EarlyStopping(
            rounds=early["patience"], min_delta=early["min_delta"], save_best=True
        )
        estimator.set_params(callbacks=[stopper])
        try:
            estimator.fit(x, y, eval_set=[(x_val, y_val)], verbose=False)
        finally:
            # The callback holds the fit's history; the saved model needs none of it.
            estimator.set_params(callbacks=None)
        return estimator
    import lightgbm

    # LightGBM 4.7 takes the validation rows as `eval_X`/`eval_y` (`eval_set` is deprecated).
    fit_params = inspect.signature(estimator.fit).parameters
    evals = (
        {"eval_X": (x_val,), "eval_y": (y_val,)}
        if "eval_X" in fit_params
        else {"eval_set": [(x_val, y_val)]}
    )
    estimator.fit(
        x,
        y,
        **evals,
        callbacks=[
            lightgbm.early_stopping(early["patience"], min_delta=early["min_delta"], verbose=False)
        ],
    )
    return estimator


def rounds(estimator: Any, framework: str) -> dict[str, Any]:
    """Trees kept and the best round, for the step's summary."""
    if framework == "xgboost":
        booster = estimator.get_booster()
        return {"rounds": int(booster.num_boosted_rounds())}
    best = getattr(estimator, "best_iteration_", None)
    out: dict[str, Any] = {"rounds": int(estimator.booster_.current_iteration())}
    if best:
        out["best_iteration"] = int(best)
    return out


def fit_fold(
    pipe: Any, x: Any, y: Any, framework: str, early: EarlyStoppingParams, seed: int
) -> None:
    """Fit a tuning trial's (transform, model) pipeline on one fold's training rows, stopping
    early on a fifth of them: the fold's held-out rows score the trial and must not steer it."""
    from sklearn.model_selection import train_test_split

    labels = y if getattr(pipe.steps[-1][1], "_estimator_type", "") == "classifier" else None
    try:
        x_fit, x_stop, y_fit, y_stop = train_test_split(
            x, y, test_size=0.2, random_state=seed, stratify=labels
        )
    except ValueError:  # a class too small to stratify: split without
        x_fit, x_stop, y_fit, y_stop = train_test_split(x, y, test_size=0.2, random_state=seed)
    transform = pipe.steps[0][1]
    matrix = transform.fit_transform(x_fit, y_fit)
    fit(pipe.steps[-1][1], framework, matrix, y_fit, (transform.transform(x_stop), y_stop), early)


def split_thresholds(est: Any) -> tuple[list[tuple[int, float]], bool] | None:
    """(feature, threshold) of every numeric split, and whether the library rounds features
    to float32 before comparing (XGBoost does; LightGBM compares in float64).

    The ONNX export needs both: a float64 graph keeps the float64 transforms and rounds where
    the library rounds, and its parity probes sit on every threshold."""
    import numpy as np

    if type(est).__module__.startswith("xgboost"):
        frame = est.get_booster().trees_to_dataframe()
        splits = frame[frame["Feature"] != "Leaf"]
        names = est.get_booster().feature_names
        index = {n: i for i, n in enumerate(names)} if names else {}
        out = []
        for feature, value in zip(splits["Feature"], splits["Split"], strict=True):
            i = index.get(feature)
            if i is None and re.fullmatch(r"f\d+", str(feature)):
                i = int(str(feature)[1:])
            if i is not None:
                # The text of a float32 threshold: back to that float32, whose double the
                # float64 graph compares against (XGBoost compares float32 features with it).
                out.append((i, float(np.float32(value))))
        return out, True
    if type(est).__module__.startswith("lightgbm"):
        dump = est.booster_.dump_model()
        found: list[tuple[int, float]] = []

        def walk(node: dict[str, Any]) -> None:
            if "split_feature" not in node:
                return
            if node.get("decision_type") == "<=":
                found.append((int(node["split_feature"]), float(node["threshold"])))
            walk(node["left_child"])
            walk(node["right_child"])

        for tree in dump["tree_info"]:
            walk(tree["tree_structure"])
        return found, False
    return None
