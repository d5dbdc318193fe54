"""Metric computation shared by tune, evaluate, fairness and gate (names as in the spec)."""

from __future__ import annotations

from typing import Any

from mlc.runtime.context import StepError

LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mape"})
NEEDS_PROBA = frozenset({"roc_auc", "log_loss"})
CLASSIFICATION = (
    "accuracy",
    "balanced_accuracy",
    "f1",
    "precision",
    "recall",
    "roc_auc",
    "log_loss",
)
REGRESSION = ("rmse", "mae", "r2", "mape")


def metric(name: str, y: Any, pred: Any, proba: Any = None, classes: Any = None) -> float:
    """One metric by its spec name; `proba` is `predict_proba` output for classifiers."""
    from sklearn import metrics as m

    binary = classes is not None and len(classes) == 2
    average = "binary" if binary else "macro"
    pos = {"pos_label": classes[1]} if binary else {}
    if name == "accuracy":
        return float(m.accuracy_score(y, pred))
    if name == "balanced_accuracy":
        return float(m.balanced_accuracy_score(y, pred))
    if name in ("f1", "precision", "recall"):
        fn = {"f1": m.f1_score, "precision": m.precision_score, "recall": m.recall_score}[name]
        return float(fn(y, pred, average=average, zero_division=0, **pos))
    if name == "roc_auc":
        if proba is None:
            raise ValueError("roc_auc needs predict_proba")
        if binary:
            return float(m.roc_auc_score(y, proba[:, 1]))
        return float(m.roc_auc_score(y, proba, multi_class="ovr", labels=classes))
    if name == "log_loss":
        if proba is None:
            raise ValueError("log_loss needs predict_proba")
        return float(m.log_loss(y, proba, labels=classes))
    if name == "rmse":
        return float(m.root_mean_squared_error(y, pred))
    if name == "mae":
        return float(m.mean_absolute_error(y, pred))
    if name == "r2":
        return float(m.r2_score(y, pred))
    if name == "mape":
        return float(m.mean_absolute_percentage_error(y, pred))
    raise ValueError(f"unknown metric '{name}'")


def evaluate(
    names: list[str], task: str, model: Any, x: Any, y: Any, step: str = "evaluate"
) -> dict[str, float]:
    """Every metric in `names` for `model` on `(x, y)`; a metric that does not fit the task is a
    `StepError` naming it."""
    try:
        pred = model.predict(x)
        proba = (
            model.predict_proba(x)
            if task == "classification"
            and hasattr(model, "predict_proba")
            and NEEDS_PROBA & set(names)
            else None
        )
    except Exception as exc:  # the model's own predict can fail on bad input
        raise StepError(step, f"the model failed to predict: {type(exc).__name__}: {exc}") from exc
    classes = getattr(model, "classes_", None)
    result = {}
    for name in names:
        wrong = (task == "classification" and name in REGRESSION) or (
            task == "regression" and name in CLASSIFICATION
        )
        if wrong:
            raise StepError(
                step,
                f"metric '{name}' does not apply to task '{task}'",
                "use: " + ", ".join(CLASSIFICATION if task == "classification" else REGRESSION),
            )
        try:
            result[name] = metric(name, y, pred, proba, classes)
        except ValueError as exc:
            raise StepError(step, f"metric '{name}': {exc}") from exc
    return result


def score(name: str, task: str, model: Any, x: Any, y: Any) -> float:
    """One metric, for tuning objectives."""
    return evaluate([name], task, model, x, y, "tune")[name]
