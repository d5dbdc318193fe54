"""fairness: fairlearn `MetricFrame` per sensitive attribute, the disparity metric, mitigation.

The `metrics` artifact holds `{"metric", "value", "threshold", "by_attribute"}`; `value` is the
worst disparity across attributes (largest difference, smallest ratio). With mitigation the
`model` output is the mitigated model (`ThresholdOptimizer` post-processing, or
`ExponentiatedGradient` reduction), else the input model unchanged.
"""

from __future__ import annotations

from typing import Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps._data import load_frame, load_model, out, split_xy

STEP = "fairness"
_CONSTRAINT = {"demographic_parity": "demographic_parity", "equalized_odds": "equalized_odds"}


class MitigatedModel:
    """A fairlearn mitigator behind `predict(X)`; the sensitive column is read from `X`."""

    def __init__(self, mitigator: Any, sensitive: str, classes: Any, randomized: bool) -> None:
        self.mitigator = mitigator
        self.sensitive = sensitive
        self.classes_ = classes
        self.randomized = randomized

    def predict(self, X: Any) -> Any:
        # Both mitigators predict at random near their decision boundary; a fixed seed keeps
        # predictions reproducible. `randomized` marks the one that needs the sensitive column.
        if self.randomized:
            return self.mitigator.predict(X, sensitive_features=X[self.sensitive], random_state=0)
        return self.mitigator.predict(X, random_state=0)


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


def _disparity(name: str, y: Any, pred: Any, sensitive: Any) -> float:
    import fairlearn.metrics as fm

    fn = getattr(fm, name)
    return float(fn(y, pred, sensitive_features=sensitive))


def _frames(y: Any, pred: Any, sensitive_df: Any, attrs: list[str]) -> dict[str, Any]:
    from fairlearn.metrics import MetricFrame, count, selection_rate
    from sklearn.metrics import accuracy_score

    result = {}
    for attr in attrs:
        frame = MetricFrame(
            metrics={"selection_rate": selection_rate, "accuracy": accuracy_score, "count": count},
            y_true=y,
            y_pred=pred,
            sensitive_features=sensitive_df[attr],
        )
        result[attr] = {
            str(k): {m: float(v) for m, v in row.items()}
            for k, row in frame.by_group.to_dict(orient="index").items()
        }
    return result


def run(
    params: dict[str, Any], inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Measure (and optionally mitigate) disparity of `model` on `test` by group."""
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
    name = params.get("metric", "demographic_parity_difference")
    is_ratio = name.endswith("_ratio")
    pred = model.predict(x)
    values = {a: _disparity(name, y, pred, x[a]) for a in attrs}
    worst = min(values.values()) if is_ratio else max(values.values())
    report: dict[str, Any] = {
        "metric": name,
        "by_attribute": values,
        "value": worst,
        "groups": _frames(y, pred, x, attrs),
    }
    mitigation = params.get("mitigation", "none")
    final_model = model
    if mitigation != "none":
        from fairlearn.postprocessing import ThresholdOptimizer
        from fairlearn.reductions import DemographicParity, EqualizedOdds, ExponentiatedGradient

        train = load_frame(inputs, "train", STEP)
        xt, yt = split_xy(train, params["target"], STEP)
        attr = attrs[0]
        constraint = "equalized_odds" if name.startswith("equalized_odds") else "demographic_parity"
        try:
            if mitigation == "threshold_optimizer":
                mitigator = ThresholdOptimizer(
                    estimator=model,
                    constraints=constraint,
                    prefit=True,
                    predict_method="predict_proba",
                )
                mitigator.fit(xt, yt, sensitive_features=xt[attr])
            else:
                moment = EqualizedOdds() if constraint == "equalized_odds" else DemographicParity()
                mitigator = ExponentiatedGradient(_WeightedPipeline(model), constraints=moment)
                mitigator.fit(xt, yt, sensitive_features=xt[attr])
        except Exception as exc:  # fairlearn raises plain ValueErrors on degenerate groups
            raise StepError(
                STEP, f"mitigation '{mitigation}' failed: {type(exc).__name__}: {exc}"
            ) from exc
        final_model = MitigatedModel(
            mitigator,
            attr,
            getattr(model, "classes_", None),
            randomized=mitigation == "threshold_optimizer",
        )
        mpred = np.asarray(final_model.predict(x))
        mvalues = {a: _disparity(name, y, mpred, x[a]) for a in attrs}
        report["mitigated"] = {
            "method": mitigation,
            "by_attribute": mvalues,
            "value": min(mvalues.values()) if is_ratio else max(mvalues.values()),
            "accuracy": float((mpred == np.asarray(y)).mean()),
            "groups": _frames(y, mpred, x, attrs),
        }
    doc = {
        "metric": name,
        "value": worst,
        "threshold": params.get("threshold"),
        "kind": "ratio" if is_ratio else "difference",
        "by_attribute": values,
        "mitigated_value": (report.get("mitigated") or {}).get("value"),
    }
    artifacts.save_json(out(outputs, "report", STEP), "fairness", report, "report")
    artifacts.save_json(
        out(outputs, "metrics", STEP), "metrics", doc, "metrics", metrics={name: worst}
    )
    if "model" in outputs:
        artifacts.save_object(outputs["model"], final_model, "model", mitigated=mitigation)
    return {"metric": name, "value": worst, "mitigated_value": doc["mitigated_value"]}
