"""explain: permutation importance on the test split (SHAP when installed and asked for).

Only feature columns are ranked: columns the spec excludes from the features, and PII, never
appear in the report.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps._data import load_frame, load_model, out, split_xy

if TYPE_CHECKING:
    from mlc.compiler.ir.params import ExplainParams

STEP = "explain"


def _shap(model: Any, x: Any, top_k: int) -> list[dict[str, Any]]:
    """Mean |SHAP value| per input column, for any model (the fitted pipeline as a black box).

    SHAP's maskers need numbers, while the pipeline takes the raw columns (strings included):
    non-numeric columns are masked as category codes and decoded back before each prediction,
    so attributions stay per input column rather than per one-hot output.
    """
    import numpy as np
    import pandas as pd
    import shap

    sample = x.iloc[: min(len(x), 50)]
    categories: dict[str, Any] = {}
    encoded = pd.DataFrame(index=sample.index)
    for col in x.columns:
        if pd.api.types.is_numeric_dtype(x[col]) and not pd.api.types.is_bool_dtype(x[col]):
            encoded[col] = sample[col].astype(float)
        else:
            cats = pd.Index(pd.unique(x[col].dropna()))
            categories[col] = cats
            encoded[col] = pd.Categorical(sample[col], categories=cats).codes.astype(float)
    dtypes = x.dtypes
    fn = model.predict_proba if hasattr(model, "predict_proba") else model.predict

    def predict(values: Any) -> Any:
        frame = pd.DataFrame(values, columns=x.columns)
        for col in x.columns:
            if col in categories:
                cats = categories[col]
                idx = np.clip(np.rint(frame[col].to_numpy()).astype(int), -1, len(cats) - 1)
                decoded = np.where(idx < 0, None, cats.to_numpy(dtype=object)[np.maximum(idx, 0)])
                frame[col] = pd.Series(decoded, index=frame.index).astype(dtypes[col])
            elif pd.api.types.is_integer_dtype(dtypes[col]):
                frame[col] = np.rint(frame[col]).astype(dtypes[col])
        return fn(frame)

    data = encoded.to_numpy(dtype=float)
    # Permutation SHAP over a 50-row background: ten antithetic permutations per row keep the
    # cost at ~(20 M + 10) x 50 x 50 predictions for M columns. shap compiles its masking code
    # with numba on first use in a process (~10 s here), which dominates for small models.
    masker = shap.maskers.Independent(data, max_samples=50)
    explainer = shap.explainers.Permutation(predict, masker, feature_names=list(x.columns), seed=0)
    values = explainer(data, max_evals=10 * (2 * len(x.columns) + 1), silent=True).values
    mean_abs = np.abs(values).mean(axis=tuple(i for i in range(values.ndim) if i != 1))
    ranked = sorted(zip(x.columns, mean_abs, strict=True), key=lambda p: -p[1])
    return [{"feature": str(f), "mean_abs_shap": float(v)} for f, v in ranked[:top_k]]


def _permutation_importance(
    model: Any, x: Any, y: Any, scorer: Any, columns: list[str], repeats: int = 5
) -> dict[str, tuple[float, float]]:
    """Mean and spread of the score drop when one column's values are shuffled.

    Written out rather than sklearn's, which takes only estimators with `fit` (the candidate
    may be a mitigated model), and so that left-out columns cost nothing. Every column is
    shuffled with the same seeded permutations, so a column's importance does not depend on
    which others are ranked.
    """
    import numpy as np

    base = scorer(model, x, y)
    result = {}
    for col in columns:
        rng = np.random.RandomState(0)
        drops = []
        for _ in range(repeats):
            shuffled = x.copy()
            # `take` keeps the column's dtype (categories stay categories)
            shuffled[col] = x[col].take(rng.permutation(len(x))).set_axis(x.index)
            drops.append(base - scorer(model, shuffled, y))
        result[col] = (float(np.mean(drops)), float(np.std(drops)))
    return result


def _scorer(scoring: str) -> Any:
    """A scoring callable that needs only `predict`/`predict_proba` (the candidate may be a
    mitigated model, which sklearn's scorers do not take for a classifier)."""
    import numpy as np
    from sklearn.metrics import accuracy_score, r2_score, roc_auc_score

    def score(estimator: Any, x: Any, y: Any) -> float:
        if scoring == "roc_auc":
            return float(roc_auc_score(y, np.asarray(estimator.predict_proba(x))[:, 1]))
        if scoring == "accuracy":
            return float(accuracy_score(y, estimator.predict(x)))
        return float(r2_score(y, estimator.predict(x)))

    return score


def run(
    params: ExplainParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Rank input columns by permutation importance; write the `report` artifact.

    Columns in `params["exclude"]` (kept out of the features by the spec, and PII) are not
    listed.
    """
    model = load_model(inputs, "model", STEP, ctx)
    test = load_frame(inputs, "test", STEP)
    x_all, y = split_xy(test, params["target"], STEP)
    top_k = params["top_k"]
    task = params["task"]
    method = params["method"]
    if method == "shap" and importlib.util.find_spec("shap") is None:
        raise StepError(
            STEP,
            "explainability method 'shap' needs the shap package",
            "pip install shap, or use method: permutation",
        )
    excluded = sorted(c for c in params["exclude"] if c in x_all.columns)
    scoring = (
        "roc_auc"
        if task == "classification" and hasattr(model, "predict_proba") and y.nunique() == 2
        else ("accuracy" if task == "classification" else "r2")
    )
    # The model reads every column it was trained on, the left-out ones too: they are passed
    # as they are, never shuffled nor ranked.
    ranked_columns = [str(c) for c in x_all.columns if c not in excluded]
    importances = _permutation_importance(model, x_all, y, _scorer(scoring), ranked_columns)
    triples = sorted((-mean, col, std) for col, (mean, std) in importances.items())
    ranked = [{"feature": c, "importance": -m, "std": s} for m, c, s in triples]
    report: dict[str, Any] = {
        "method": "permutation",
        "scoring": scoring,
        "top_k": top_k,
        "features": ranked[:top_k],
        "left_out": excluded,
    }
    if method == "shap":
        report["method"] = "shap"
        shap_rows = _shap(model, x_all, len(x_all.columns))
        report["shap"] = [r for r in shap_rows if r["feature"] not in excluded][:top_k]
    artifacts.save_json(out(outputs, "report", STEP), "explain", report, "report")
    return {"top": [r["feature"] for r in ranked[: min(3, top_k)]], "scoring": scoring}
