"""Metric computation shared by tune, evaluate, fairness and monitor (names as in the spec).

Only how each metric is computed lives here. Which way is better is declared once, beside the
spec's metric list (`mlc.specs.evaluation.METRICS`), and reaches the steps through their params
(`direction: "higher" | "lower"`, read with `direction_of`); `worsening` compares two values
in the direction it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlc.runtime.context import StepError

Scorer = Callable[[Any, Any, Any, Any], float]
"""`(y, pred, proba, classes) -> value`; `proba` is `predict_proba` output or None."""


def _averaged(name: str) -> Scorer:
    def score(y: Any, pred: Any, proba: Any, classes: Any) -> float:
        from sklearn import metrics as m

        fn = {"f1": m.f1_score, "precision": m.precision_score, "recall": m.recall_score}[name]
        if classes is not None and len(classes) == 2:
            return float(fn(y, pred, average="binary", zero_division=0, pos_label=classes[1]))
        return float(fn(y, pred, average="macro", zero_division=0))

    return score


def _accuracy(y: Any, pred: Any, proba: Any, classes: Any) -> float:
    from sklearn import metrics as m

    return float(m.accuracy_score(y, pred))


def _balanced_accuracy(y: Any, pred: Any, proba: Any, classes: Any) -> float:
    from sklearn import metrics as m

    return float(m.balanced_accuracy_score(y, pred))


def _roc_auc(y: Any, pred: Any, proba: Any, classes: Any) -> float:
    from sklearn import metrics as m

    if proba is None:
        raise ValueError("roc_auc needs predict_proba")
    if classes is not None and len(classes) == 2:
        return float(m.roc_auc_score(y, proba[:, 1]))
    return float(m.roc_auc_score(y, proba, multi_class="ovr", labels=classes))


def _log_loss(y: Any, pred: Any, proba: Any, classes: Any) -> float:
    from sklearn import metrics as m

    if proba is None:
        raise ValueError("log_loss needs predict_proba")
    return float(m.log_loss(y, proba, labels=classes))


def _rmse(y: Any, pred: Any, proba: Any, classes: Any) -> float:
    from sklearn import metrics as m

    return float(m.root_mean_squared_error(y, pred))


def _mae(y: Any, pred: Any, proba: Any, classes: Any) -> float:
    from sklearn import metrics as m

    return float(m.mean_absolute_error(y, pred))


def _r2(y: Any, pred: Any, proba: Any, classes: Any) -> float:
    from sklearn import metrics as m

    return float(m.r2_score(y, pred))


def _mape(y: Any, pred: Any, proba: Any, classes: Any) -> float:
    from sklearn import metrics as m

    return float(m.mean_absolute_percentage_error(y, pred))


SCORERS: dict[str, dict[str, Scorer]] = {
    "classification": {
        "accuracy": _accuracy,
        "balanced_accuracy": _balanced_accuracy,
        "f1": _averaged("f1"),
        "precision": _averaged("precision"),
        "recall": _averaged("recall"),
        "roc_auc": _roc_auc,
        "log_loss": _log_loss,
    },
    "regression": {"rmse": _rmse, "mae": _mae, "r2": _r2, "mape": _mape},
}
"""Task -> metric name -> scorer; the names equal the spec's (a test holds them equal)."""
NEEDS_PROBA = frozenset({"roc_auc", "log_loss"})


def worsening(before: float, after: float, direction: str) -> float:
    """How much worse `after` is than `before` (negative when it improved)."""
    return after - before if _lower(direction) else before - after


def direction_of(entry: Any, step: str) -> str:
    """The `direction` an IR entry (a gate, the champion, a trigger) carries for its metric.

    Raises:
        StepError: the entry has none (params written by hand or by an older compiler).
    """
    got = entry.get("direction") if isinstance(entry, dict) else None
    if got not in ("higher", "lower"):
        name = entry.get("metric") if isinstance(entry, dict) else entry
        raise StepError(
            step,
            f"no metric direction for '{name}' in the step params (got {got!r})",
            "recompile the spec: the compiler adds direction: higher | lower to every metric entry",
        )
    return str(got)


def _lower(direction: str) -> bool:
    if direction not in ("higher", "lower"):
        raise ValueError(f"metric direction must be 'higher' or 'lower', not {direction!r}")
    return direction == "lower"


def metric(name: str, y: Any, pred: Any, proba: Any = None, classes: Any = None) -> float:
    """One metric by its spec name; `proba` is `predict_proba` output for classifiers."""
    for scorers in SCORERS.values():
        if name in scorers:
            return scorers[name](y, pred, proba, classes)
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
    fitting = SCORERS.get(task, {})
    result = {}
    for name in names:
        if name not in fitting:
            known = any(name in scorers for scorers in SCORERS.values())
            raise StepError(
                step,
                f"metric '{name}' does not apply to task '{task}'"
                if known
                else f"unknown metric '{name}'",
                "use: " + ", ".join(fitting),
            )
        try:
            result[name] = fitting[name](y, pred, proba, classes)
        except ValueError as exc:
            raise StepError(step, f"metric '{name}': {exc}") from exc
    return result


def score(name: str, task: str, model: Any, x: Any, y: Any) -> float:
    """One metric, for tuning objectives."""
    return evaluate([name], task, model, x, y, "tune")[name]
