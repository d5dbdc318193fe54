"""fairness: disparity of the candidate model per sensitive attribute, and mitigation.

Without mitigation the candidate is the trained model and this step only measures it. With
`mitigation` set, the step mitigates the trained model for the combination of every sensitive
attribute (fairlearn sees their intersection as the groups, so improving one attribute cannot
silently worsen another), writes the result as the `model` output, and measures *that* model:
it is the candidate that evaluate, explain, the gate and register all receive.

The `metrics` artifact holds `{"metric", "value", "threshold", "kind", "by_attribute",
"worst_groups", "candidate", "before_mitigation"}`: `value` is the candidate's worst disparity
across attributes (largest difference, smallest ratio); `worst_groups[attr]` names the two
groups whose rates make that attribute's disparity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps._data import load_frame, load_model, out, split_xy

if TYPE_CHECKING:
    from mlc.compiler.ir.params import FairnessParams

STEP = "fairness"

# The group rates each disparity metric compares (fairlearn's definitions).
_RATES = {
    "demographic_parity": ("selection_rate",),
    "equalized_odds": ("true_positive_rate", "false_positive_rate"),
}


class MitigatedModel:
    """The trained pipeline behind fairlearn's randomized decision rule, as plain data.

    Only the fitted parts that predict are kept (the threshold rule, or the weighted
    predictors of a reduction), not fairlearn's fitting state (pandas frames that skops, the
    registry's format, cannot save). `predict_proba` is the probability with which the rule
    predicts each class; `predict` draws from it with a fixed seed, as fairlearn does, so
    predictions are reproducible. The sensitive columns are read from `X`.

    Row `i` of an input is decided by draw `i` of the one seeded stream (`draw_stream`), so
    `predict(X)` equals fairlearn's `predict(X, random_state=0)`, and a batch scorer that
    passes each row's draw by its position in the whole input gets the labels `predict` gives
    on the whole input, however the input is cut into batches.
    """

    DRAW_SEED = 0
    _SKIP_BLOCK = 1 << 20

    def __init__(
        self,
        method: str,
        sensitive: list[str],
        classes: Any,
        mitigator: Any = None,
        predictors: list[Any] | None = None,
        weights: list[float] | None = None,
    ) -> None:
        self.method = method
        self.sensitive = list(sensitive)
        self.classes_ = classes
        self.mitigator = mitigator
        # Named like fairlearn's attribute so secrets binding finds the pipelines inside.
        self.predictors_ = list(predictors or [])
        self.weights = list(weights or [])

    def __getstate__(self) -> dict[str, Any]:
        from mlc.runtime.rowpath import without_cache

        return without_cache(self.__dict__)

    def predict_proba(self, X: Any) -> Any:
        import numpy as np

        from mlc.runtime.rowpath import answer

        fast = answer(self, X, "classification")  # one row: the compiled threshold rule
        if fast is not None:
            return fast
        if self.mitigator is not None:
            # fairlearn's own probability of its randomized thresholds (no public name for it)
            proba = self.mitigator._pmf_predict(X, sensitive_features=X[self.sensitive])
            return np.asarray(proba, dtype=float)
        positive = np.zeros(len(X))
        for predictor, weight in zip(self.predictors_, self.weights, strict=True):
            positive += weight * np.asarray(predictor.predict(X), dtype=float)
        return np.column_stack([1.0 - positive, positive])

    def draw_stream(self, first_row: int = 0) -> Any:
        """The seeded `numpy.random.RandomState` the draws come from, moved on to row
        `first_row` (its next `random_sample(n)` are the draws of rows `first_row` onwards)."""
        import numpy as np

        stream = np.random.RandomState(self.DRAW_SEED)
        left = int(first_row)
        while left > 0:  # MT19937 cannot jump ahead; drawn in blocks to bound memory
            step = min(left, self._SKIP_BLOCK)
            stream.random_sample(step)
            left -= step
        return stream

    def predict_from_proba(self, proba: Any, draws: Any = None) -> Any:
        """The labels `predict` gives for rows with probabilities `proba`; `draws` are the rows'
        uniform draws (default: those of rows 0..n-1, as `predict` uses)."""
        import numpy as np

        positive = np.asarray(proba, dtype=float)[:, 1]
        if draws is None:
            draws = self.draw_stream().random_sample(len(positive))
        return np.asarray(self.classes_)[(positive >= np.asarray(draws)).astype(int)]

    def predict(self, X: Any) -> Any:
        return self.predict_from_proba(self.predict_proba(X))


class _WeightedPipeline:
    """Passes `sample_weight` to the last step of a Pipeline (as reductions require)."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"pipeline": self.pipeline}

    def set_params(self, **params: Any) -> _WeightedPipeline:
        self.pipeline = params.get("pipeline", self.pipeline)
        return self

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _WeightedPipeline:
        from sklearn.base import clone

        self.pipeline = clone(self.pipeline)
        last = self.pipeline.steps[-1][0]
        self.pipeline.fit(X, y, **{f"{last}__sample_weight": sample_weight})
        return self

    def predict(self, X: Any) -> Any:
        return self.pipeline.predict(X)


def _family(name: str) -> str:
    return "equalized_odds" if name.startswith("equalized_odds") else "demographic_parity"


def _disparity(name: str, y: Any, pred: Any, sensitive: Any) -> float:
    import fairlearn.metrics as fm

    fn = getattr(fm, name)
    return float(fn(y, pred, sensitive_features=sensitive))


def _by_group(y: Any, pred: Any, sensitive: Any) -> dict[str, dict[str, float]]:
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    frame = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "true_positive_rate": true_positive_rate,
            "false_positive_rate": false_positive_rate,
            "accuracy": accuracy_score,
            "count": count,
        },
        y_true=y,
        y_pred=pred,
        sensitive_features=sensitive,
    )
    return {
        str(k): {m: float(v) for m, v in row.items()}
        for k, row in frame.by_group.to_dict(orient="index").items()
    }


def _extremes(groups: dict[str, dict[str, float]], name: str) -> dict[str, Any]:
    """The rate and the two groups whose rates make the disparity (highest vs lowest)."""
    is_ratio = name.endswith("_ratio")
    best: tuple[float, dict[str, Any]] | None = None
    for rate in _RATES[_family(name)]:
        # a rate a group cannot have (no positives for a true positive rate) is NaN: left out
        known = [(g, r) for g, r in groups.items() if r[rate] == r[rate]]
        if len(known) < 2:
            continue
        (low_group, low), (high_group, high) = (
            min(known, key=lambda kv: (kv[1][rate], kv[0])),
            max(known, key=lambda kv: (kv[1][rate], kv[0])),
        )
        hi, lo = high[rate], low[rate]
        badness = (1.0 - (lo / hi if hi else 1.0)) if is_ratio else hi - lo
        found = {
            "rate": rate,
            "high": {"group": high_group, "value": hi},
            "low": {"group": low_group, "value": lo},
        }
        if best is None or badness > best[0]:
            best = (badness, found)
    return best[1] if best is not None else {}


def assess(name: str, y: Any, pred: Any, x: Any, attrs: list[str]) -> dict[str, Any]:
    """Disparity of predictions `pred` per attribute, the worst value, the groups behind it."""
    is_ratio = name.endswith("_ratio")
    values = {a: _disparity(name, y, pred, x[a]) for a in attrs}
    groups = {a: _by_group(y, pred, x[a]) for a in attrs}
    return {
        "value": min(values.values()) if is_ratio else max(values.values()),
        "by_attribute": values,
        "worst_groups": {a: _extremes(groups[a], name) for a in attrs},
        "groups": groups,
    }


def _mitigate(
    model: Any, method: str, name: str, xt: Any, yt: Any, attrs: list[str]
) -> MitigatedModel:
    from fairlearn.postprocessing import ThresholdOptimizer
    from fairlearn.reductions import DemographicParity, EqualizedOdds, ExponentiatedGradient

    constraint = _family(name)
    # Every attribute at once: fairlearn treats the columns' combinations as the groups.
    sensitive = xt[attrs]
    try:
        if method == "threshold_optimizer":
            optimizer = ThresholdOptimizer(
                estimator=model,
                constraints=constraint,
                prefit=True,
                predict_method="predict_proba",
            )
            optimizer.fit(xt, yt, sensitive_features=sensitive)
            return MitigatedModel(
                method, attrs, [0, 1], mitigator=optimizer.interpolated_thresholder_
            )
        moment = EqualizedOdds() if constraint == "equalized_odds" else DemographicParity()
        reduction = ExponentiatedGradient(_WeightedPipeline(model), constraints=moment)
        reduction.fit(xt, yt, sensitive_features=sensitive)
    except Exception as exc:  # fairlearn raises plain ValueErrors on degenerate groups
        raise StepError(
            STEP,
            f"mitigation '{method}' over {', '.join(attrs)} failed: {type(exc).__name__}: {exc}",
            "check that every combination of the sensitive attributes has both labels",
        ) from exc
    pairs = [
        (reduction.predictors_[idx].pipeline, float(weight))
        for idx, weight in reduction.weights_.items()
        if weight > 0
    ]
    return MitigatedModel(
        method,
        attrs,
        [0, 1],
        predictors=[p for p, _ in pairs],
        weights=[w for _, w in pairs],
    )


def run(
    params: FairnessParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Mitigate `model` when asked; measure the candidate's disparity on `test` by group."""
    import numpy as np

    model = load_model(inputs, "model", STEP, ctx)
    test = load_frame(inputs, "test", STEP)
    x, y = split_xy(test, params["target"], STEP)
    attrs = list(params["sensitive_attributes"])
    missing = [a for a in attrs if a not in x.columns]
    if missing:
        raise StepError(
            STEP,
            f"sensitive attribute(s) {missing} are not in the test data",
            "keep them in the data contract (they may be excluded from features)",
        )
    if not hasattr(model, "predict_proba"):
        raise StepError(
            STEP,
            "fairness metrics need a classifier",
            "remove governance.fairness for regression models",
        )
    name = params["metric"]
    mitigation = params["mitigation"]
    trained = assess(name, y, np.asarray(model.predict(x)), x, attrs)
    candidate, before = model, None
    if mitigation != "none":
        if "model" not in outputs:
            raise StepError(STEP, "mitigation needs the 'model' output", "recompile the spec")
        train = load_frame(inputs, "train", STEP)
        xt, yt = split_xy(train, params["target"], STEP)
        candidate = _mitigate(model, mitigation, name, xt, yt, attrs)
        before = trained
    pred = np.asarray(candidate.predict(x))
    result = assess(name, y, pred, x, attrs) if before is not None else trained
    accuracy = float((pred == np.asarray(y)).mean())
    report: dict[str, Any] = {
        "metric": name,
        "candidate": "mitigated" if before is not None else "trained",
        "mitigation": mitigation,
        "sensitive_attributes": attrs,
        **result,
        "accuracy": accuracy,
    }
    if before is not None:
        report["before_mitigation"] = {
            **before,
            "accuracy": float((np.asarray(model.predict(x)) == np.asarray(y)).mean()),
        }
    doc = {
        "metric": name,
        "value": result["value"],
        "threshold": params["threshold"],
        "kind": "ratio" if name.endswith("_ratio") else "difference",
        "by_attribute": result["by_attribute"],
        "worst_groups": result["worst_groups"],
        "candidate": report["candidate"],
        "mitigation": mitigation,
        "before_mitigation": (
            {"value": before["value"], "by_attribute": before["by_attribute"]} if before else None
        ),
    }
    artifacts.save_json(out(outputs, "report", STEP), "fairness", report, "report")
    artifacts.save_json(
        out(outputs, "metrics", STEP), "metrics", doc, "metrics", metrics={name: result["value"]}
    )
    if before is not None:
        artifacts.save_object(outputs["model"], candidate, "model", mitigated=mitigation)
    return {
        "metric": name,
        "value": result["value"],
        "by_attribute": result["by_attribute"],
        "before_mitigation": before["value"] if before else None,
    }
