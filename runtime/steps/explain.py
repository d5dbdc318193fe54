"""explain: permutation importance on the test split (SHAP when installed and asked for)."""

from __future__ import annotations

import importlib.util
from typing import Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps._data import load_frame, load_model, out, split_xy

STEP = "explain"


def _shap(model: Any, x: Any, top_k: int) -> list[dict[str, Any]]:
    import numpy as np
    import shap

    sample = x.iloc[: min(len(x), 200)]
    fn = model.predict_proba if hasattr(model, "predict_proba") else model.predict
    explainer = shap.Explainer(lambda d: fn(d.__class__(d, columns=x.columns)), sample)
    values = explainer(sample).values
    mean_abs = np.abs(values).mean(axis=tuple(i for i in range(values.ndim) if i != 1))
    ranked = sorted(zip(x.columns, mean_abs, strict=True), key=lambda p: -p[1])
    return [{"feature": str(f), "mean_abs_shap": float(v)} for f, v in ranked[:top_k]]


def run(
    params: dict[str, Any], inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Rank input columns by permutation importance; write the `report` artifact."""
    from sklearn.inspection import permutation_importance

    model = load_model(inputs, "model", STEP, ctx)
    test = load_frame(inputs, "test", STEP)
    x, y = split_xy(test, params["target"], STEP)
    top_k = int(params.get("top_k", 10))
    task = params.get("task", "classification")
    method = params.get("method", "permutation")
    if method == "shap" and importlib.util.find_spec("shap") is None:
        raise StepError(
            STEP,
            "explainability method 'shap' needs the shap package",
            "pip install shap, or use method: permutation",
        )
    scoring = (
        "roc_auc"
        if task == "classification" and hasattr(model, "predict_proba") and y.nunique() == 2
        else ("accuracy" if task == "classification" else "r2")
    )
    result = permutation_importance(model, x, y, scoring=scoring, n_repeats=5, random_state=0)
    triples = sorted(
        (
            (-float(m), str(c), float(s))
            for c, m, s in zip(
                x.columns, result.importances_mean, result.importances_std, strict=True
            )
        ),
    )
    ranked = [{"feature": c, "importance": -m, "std": s} for m, c, s in triples]
    report: dict[str, Any] = {
        "method": "permutation",
        "scoring": scoring,
        "top_k": top_k,
        "features": ranked[:top_k],
    }
    if method == "shap":
        report["method"] = "shap"
        report["shap"] = _shap(model, x, top_k)
    artifacts.save_json(out(outputs, "report", STEP), "explain", report, "report")
    return {"top": [r["feature"] for r in ranked[: min(3, top_k)]], "scoring": scoring}
