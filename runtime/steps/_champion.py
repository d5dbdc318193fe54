"""The champion comparison on the candidate's own test rows (the gate's `champion` check).

The registered champion is loaded from the registry and scored on the same test split as the
candidate, so the two numbers answer the same question: metrics recorded when the champion was
registered came from other rows (an older split of other data), and a retrain on new data
would be judged against a moving bar. Per sensitive group the same metric is reported for both
models; with `bootstrap`, paired resamples of the rows give a confidence interval of the
improvement, and the challenger passes only when its lower end clears `min_improvement`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps._metrics import SCORERS, direction_of, metric

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlc.compiler.ir.params import BootstrapParams, ChampionParams

STEP = "gate"
MIN_GROUP_ROWS = 10
"""Groups with fewer test rows are listed without a value: a metric on a handful of rows says
nothing either way."""


def _scores(model: Any, x: pd.DataFrame, task: str, name: str) -> tuple[Any, Any, Any]:
    import numpy as np

    pred = np.asarray(model.predict(x))
    proba = (
        np.asarray(model.predict_proba(x))
        if task == "classification" and hasattr(model, "predict_proba")
        else None
    )
    return pred, proba, getattr(model, "classes_", None)


def _value(
    name: str, y: np.ndarray, scored: tuple[Any, Any, Any], rows: np.ndarray | None = None
) -> float | None:
    pred, proba, classes = scored
    if rows is not None:
        y, pred = y[rows], pred[rows]
        proba = None if proba is None else proba[rows]
    try:
        value = float(metric(name, y, pred, proba, classes))
    except ValueError:
        return None  # e.g. roc_auc on a resample holding one class
    return None if value != value else value


def improvement(challenger: float, champion: float, lower: bool) -> float:
    """How much better the challenger is (positive = better), whichever way is better."""
    return champion - challenger if lower else challenger - champion


def _interval(
    boot: BootstrapParams,
    name: str,
    y: np.ndarray,
    mine: tuple[Any, Any, Any],
    theirs: tuple[Any, Any, Any],
    lower: bool,
) -> tuple[float, float, int]:
    import numpy as np

    rng = np.random.default_rng(int(boot["seed"]))
    n = len(y)
    diffs = []
    for _ in range(int(boot["samples"])):
        rows = rng.integers(0, n, n)
        a, b = _value(name, y, mine, rows), _value(name, y, theirs, rows)
        if a is not None and b is not None:
            diffs.append(improvement(a, b, lower))
    if not diffs:
        raise StepError(STEP, f"champion bootstrap: '{name}' could not be computed on any resample")
    alpha = (1.0 - float(boot["confidence"])) / 2.0
    low, high = np.quantile(np.asarray(diffs), [alpha, 1.0 - alpha])
    return float(low), float(high), len(diffs)


def load_champion(info: dict[str, Any], model_name: str, ctx: StepContext) -> Any:
    """The champion's registered model with this run's secrets bound (pseudonymiser keys)."""
    from mlc.runtime.steps._data import bind_secrets
    from mlc.runtime.steps.batch_predict import load_registered

    model = load_registered(model_name, str(info["version"]), ctx.effective_tracking_uri())
    bind_secrets(model, ctx)
    return model


def compare(
    champion: ChampionParams,
    info: dict[str, Any],
    candidate: Any,
    test: pd.DataFrame,
    *,
    target: str,
    task: str,
    groups: list[str],
    model_name: str,
    ctx: StepContext,
) -> dict[str, Any]:
    """The champion check of the verdict, both models scored on `test`."""
    import numpy as np

    name = champion["metric"]
    if name not in SCORERS.get(task, {}):
        raise StepError(STEP, f"champion metric '{name}' does not apply to task '{task}'")
    lower = direction_of(champion, STEP) == "lower"
    margin = float(champion["min_improvement"])
    x = test.drop(columns=[target])
    y = test[target].to_numpy()
    try:
        theirs_model = load_champion(info, model_name, ctx)
        theirs = _scores(theirs_model, x, task, name)
    except StepError:
        raise
    except Exception as exc:  # the store and the model's libraries raise many types
        raise StepError(
            STEP,
            f"the champion (version {info.get('version')}) could not score the test split: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            "set evaluation.champion.same_holdout: false to compare with its recorded metrics",
        ) from None
    mine = _scores(candidate, x, task, name)
    value, incumbent = _value(name, y, mine), _value(name, y, theirs)
    check: dict[str, Any] = {
        "name": f"champion {name}",
        "kind": "champion",
        "metric": name,
        "value": value,
        "op": "<=" if lower else ">=",
        "threshold": None,
        "passed": False,
        "champion": {
            "version": str(info.get("version")),
            "value": incumbent,
            "recorded": (info.get("metrics") or {}).get(name),
            "rows": len(y),
            "source": "same holdout",
        },
    }
    if value is None or incumbent is None:
        check["reason"] = f"'{name}' could not be computed on the test split"
        return check
    check["threshold"] = incumbent - margin if lower else incumbent + margin
    gain = improvement(value, incumbent, lower)
    check["improvement"] = gain
    passed = gain >= margin
    reason = (
        f"champion v{info.get('version')} {incumbent:.6g} on the same {len(y)} test rows; "
        f"improvement {gain:+.6g}, margin {margin:g}"
    )
    boot = champion.get("bootstrap")
    if boot is not None:
        low, high, used = _interval(boot, name, y, mine, theirs, lower)
        check["interval"] = {
            "low": low,
            "high": high,
            "confidence": float(boot["confidence"]),
            "samples": used,
        }
        reason += f" ({float(boot['confidence']):.0%} CI [{low:+.4g}, {high:+.4g}])"
        passed = passed and low >= margin
    by_group: dict[str, list[dict[str, Any]]] = {}
    for attr in groups:
        if attr not in test.columns:
            continue
        rows_of = test[attr].astype("string").fillna("<missing>").to_numpy()
        entries = []
        for group in sorted(set(rows_of.tolist())):
            rows = np.flatnonzero(rows_of == group)
            entry: dict[str, Any] = {"group": group, "rows": len(rows)}
            if len(rows) >= MIN_GROUP_ROWS:
                a, b = _value(name, y, mine, rows), _value(name, y, theirs, rows)
                entry.update({"challenger": a, "champion": b})
                if a is not None and b is not None:
                    entry["improvement"] = improvement(a, b, lower)
            entries.append(entry)
        by_group[attr] = entries
    if by_group:
        check["by_group"] = by_group
        worst = min(
            (
                (e["improvement"], attr, e["group"])
                for attr, entries in by_group.items()
                for e in entries
                if "improvement" in e
            ),
            default=None,
        )
        if worst is not None:
            reason += f"; worst group {worst[1]}={worst[2]} {worst[0]:+.4g}"
    check["passed"] = bool(passed)
    check["reason"] = reason
    return check
