"""evaluate: the spec's metrics on the test split, robustness perturbations, predictions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps._data import load_frame, load_model, out, split_xy
from mlc.runtime.steps._metrics import direction_of, evaluate, worsening

if TYPE_CHECKING:
    from mlc.compiler.ir.params import EvaluateParams

STEP = "evaluate"


def perturb(x: Any, kind: str, features: list[str], magnitude: float, seed: int) -> Any:
    """A perturbed copy of `x`: gaussian `noise` or a `shift` of `magnitude` standard
    deviations, or a `missing` fraction of values set to NaN, on numeric `features`."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = x.copy()
    cols = [
        c for c in (features or x.columns) if c in x.columns and pd.api.types.is_numeric_dtype(x[c])
    ]
    for c in cols:
        values = x[c].astype("float64")
        std = float(values.std()) or 1.0
        if kind == "noise":
            x[c] = values + rng.normal(0.0, magnitude * std, len(values))
        elif kind == "shift":
            x[c] = values + magnitude * std
        else:
            x[c] = values.mask(rng.random(len(values)) < magnitude)
    return x


def run(
    params: EvaluateParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Score `model` on `test`; write the `metrics` and `predictions` artifacts.

    The metrics document is `{"metrics": {name: value}, "robustness": [{kind, metric, base,
    perturbed, drop, max_drop}]}`; a drop is positive when the metric got worse.
    """
    import pandas as pd

    model = load_model(inputs, "model", STEP, ctx)
    test = load_frame(inputs, "test", STEP)
    x, y = split_xy(test, params["target"], STEP)
    task = params["task"]
    names = list(params["metrics"])
    values = evaluate(names, task, model, x, y, STEP)
    robustness = []
    for i, r in enumerate(params["robustness"]):
        first = names[0]
        better_way = direction_of(
            {"metric": first, "direction": params["directions"].get(first)}, STEP
        )
        shaken = perturb(x, r["kind"], list(r["features"]), float(r["magnitude"]), seed=i)
        after: float | None = None
        drop: float | None = None
        error = ""
        try:
            after = evaluate([first], task, model, shaken, y, STEP)[first]
            drop = worsening(values[first], after, better_way)
        except StepError as exc:
            # A model that cannot score perturbed data fails the check; the gate says why.
            error = f"the model cannot score {r['kind']}-perturbed data: {exc}"
            if r["kind"] == "missing":
                error += " (add an impute transform for these columns)"
        robustness.append(
            {
                "kind": r["kind"],
                "features": list(r["features"]),
                "magnitude": r["magnitude"],
                "metric": first,
                "base": values[first],
                "perturbed": after,
                "drop": drop,
                "max_drop": r["max_drop"],
                "error": error,
            }
        )
    preds = pd.DataFrame({"y_true": y.to_numpy(), "y_pred": model.predict(x)})
    if task == "classification" and hasattr(model, "predict_proba"):
        proba = model.predict_proba(x)
        for j, cls in enumerate(getattr(model, "classes_", range(proba.shape[1]))):
            preds[f"proba_{cls}"] = proba[:, j]
    artifacts.save_dataframe(out(outputs, "predictions", STEP), preds)
    artifacts.save_json(
        out(outputs, "metrics", STEP),
        "metrics",
        {"metrics": values, "robustness": robustness},
        "metrics",
        metrics=values,
    )
    return {
        "metrics": values,
        "robustness": [{k: r[k] for k in ("kind", "drop", "max_drop")} for r in robustness],
    }
