"""monitor: drift of current data against the training reference, performance on labelled rows.

Inputs: `current` (a dataset of production rows, with the label column where labels have
arrived), the reference — `profile` (a reference profile file, `runtime.profile`, stored with the
model version) or else `reference` (the train split dataset) — and optionally `model` (the
registered sklearn `Pipeline`; it supplies derived features and predictions). Params are the
IR's `monitor` params (`drift` with its tests per column type, `min_rows`, `performance`,
`model_name`) plus, from the caller, `target` (the label column), `task`, `metrics` (further
metrics to compute, e.g. those of retrain triggers) and optionally `reference_note` (why this
reference was used) and `window_note` (which rows of the prediction log were read).

With fewer than `min_rows` current rows, drift is not judged: the verdict is
`insufficient data` and no feature drifts (performance on labelled rows is still reported).

Output `signal`: `report.json` `{"verdict": "ok" | "drift" | "insufficient data", "drift":
[{feature, method, why, score, threshold, drifted, …}], "prediction_drift": {…} | null,
"drifted": [features], "reference": {source: profile | training split, note}, "performance":
{metric, value, floor, direction, below_floor, values, rows} | null (`below_floor`: worse than
the floor in the metric's `direction`, i.e. above it for rmse), "rows_reference",
"rows_current", "min_rows", "model_name"}` and `metrics.prom`, the same numbers as a Prometheus
textfile under the series names of `mlc.runtime.metrics_contract`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps._data import load_frame, load_model, out

if TYPE_CHECKING:
    import pandas as pd

    from mlc.compiler.ir.params import MonitorParams, PerformanceParams

STEP = "monitor"
INSUFFICIENT = "insufficient data"


def _predictions(model: Any, frame: pd.DataFrame, target: str | None, task: str) -> Any:
    """The model's predictions on `frame` (labels as text for a classifier); None if it cannot."""
    import pandas as pd

    if model is None or not hasattr(model, "predict") or frame.empty:
        return None
    x = frame.drop(columns=[target]) if target and target in frame.columns else frame
    try:
        got = pd.Series(model.predict(x))
    except Exception:  # drift of the inputs is still worth reporting
        return None
    return got.astype(str) if task == "classification" else got


def _prediction_drift(
    drift_params: Any,
    reference: Any,
    profile_doc: dict[str, Any] | None,
    current: pd.DataFrame,
    model: Any,
    target: str | None,
    task: str,
) -> dict[str, Any] | None:
    import pandas as pd

    from mlc.runtime import drift
    from mlc.runtime.profile import PREDICTION

    cur = _predictions(model, current, target, task)
    if cur is None:
        return None
    tests: dict[str, str | None] = {
        "numeric": drift_params.get("numeric"),
        "categorical": drift_params.get("categorical"),
    }
    method, threshold = drift_params["method"], float(drift_params["threshold"])
    if profile_doc is not None:
        if profile_doc.get("prediction") is None:
            return None
        rows = drift.profile_drift(
            profile_doc, pd.DataFrame({PREDICTION: cur}), [PREDICTION], method, threshold, **tests
        )
    else:
        ref = _predictions(model, reference, target, task)
        if ref is None:
            return None
        rows = drift.feature_drift(
            pd.DataFrame({PREDICTION: ref}),
            pd.DataFrame({PREDICTION: cur}),
            [PREDICTION],
            method,
            threshold,
            **tests,
        )
    return rows[0]


def run(
    params: MonitorParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Score drift per feature and performance against the floor; write the signal."""
    from mlc.runtime import drift
    from mlc.runtime import profile as ref_profile

    current = load_frame(inputs, "current", STEP)
    model = load_model(inputs, "model", STEP, ctx) if inputs.get("model") else None
    profile_doc: dict[str, Any] | None = None
    reference = None
    if inputs.get("profile"):
        try:
            profile_doc = ref_profile.read(inputs["profile"])
        except ref_profile.ProfileError as exc:
            raise StepError(STEP, str(exc), "register the model again to profile it") from exc
    else:
        reference = load_frame(inputs, "reference", STEP)
    target = params["target"]
    task = params["task"]
    drift_params = params["drift"]
    min_rows = int(params.get("min_rows") or 1)
    enough = len(current) >= min_rows
    rows: list[dict[str, Any]] = []
    prediction: dict[str, Any] | None = None
    if drift_params is not None and enough:
        features = list(drift_params["features"])
        if not features:
            features = (
                sorted(profile_doc["features"])
                if profile_doc is not None
                else [str(c) for c in reference.columns if c != target]  # type: ignore[union-attr]
            )
        tests: dict[str, str | None] = {
            "numeric": drift_params.get("numeric"),
            "categorical": drift_params.get("categorical"),
        }
        method, threshold = drift_params["method"], float(drift_params["threshold"])
        try:
            if profile_doc is not None:
                rows = drift.profile_drift(
                    profile_doc,
                    drift.add_derived(current, model),
                    features,
                    method,
                    threshold,
                    **tests,
                )
            else:
                rows = drift.feature_drift(
                    drift.add_derived(reference, model),
                    drift.add_derived(current, model),
                    features,
                    method,
                    threshold,
                    **tests,
                )
            prediction = _prediction_drift(
                drift_params, reference, profile_doc, current, model, target, task
            )
        except ValueError as exc:
            raise StepError(STEP, str(exc)) from exc
    perf_params = params["performance"]
    perf: dict[str, Any] | None = None
    if model is not None and target and target in current.columns:
        names = [perf_params["metric"]] if perf_params is not None else []
        names += [n for n in params["metrics"] if n not in names]
        values = {}
        for name in names:
            try:
                values[name] = drift.performance(model, current, target, name, task)
            except ValueError as exc:
                raise StepError(STEP, f"performance '{name}': {exc}") from exc
        from mlc.runtime.steps._metrics import direction_of

        metric = perf_params["metric"] if perf_params is not None else None
        value = values.get(metric) if metric else None
        perf = {
            "metric": metric,
            "value": value,
            "floor": perf_params["floor"] if perf_params is not None else None,
            "direction": direction_of(perf_params, STEP) if perf_params is not None else None,
            "below_floor": _below(perf_params, value) if perf_params is not None else False,
            "values": values,
            "rows": int(current[target].notna().sum()),
        }
    model_name = params["model_name"]
    drifted = [r["feature"] for r in rows if r["drifted"]]
    rows_reference = int(profile_doc["rows"]) if profile_doc is not None else len(reference)  # type: ignore[arg-type]
    source = "profile" if profile_doc is not None else "training split"
    note = dict(params).get("reference_note") or (
        "the reference profile stored with the model version"
        if profile_doc is not None
        else "the training split artifact"
    )
    if not enough:
        verdict = INSUFFICIENT
    elif drifted or (prediction or {}).get("drifted"):
        verdict = "drift"
    else:
        verdict = "ok"
    report = {
        "model_name": model_name,
        "verdict": verdict,
        "drift": rows,
        "prediction_drift": prediction,
        "drifted": drifted,
        "missing": [r["feature"] for r in rows if r.get("missing")],
        "performance": perf,
        "reference": {"source": source, "note": note},
        "rows_reference": rows_reference,
        "rows_current": len(current),
        "min_rows": min_rows,
    }
    extra: dict[str, Any] = dict(params)  # the caller's notes are not IR keys
    if extra.get("window_note"):
        report["window"] = str(extra["window_note"])
    if not enough:
        report["insufficient"] = (
            f"{len(current)} current row(s), fewer than monitoring.min_rows = {min_rows}: "
            "drift is not judged and nothing retrains on it"
        )
    loc = out(outputs, "signal", STEP)
    artifacts.save_text(loc, "metrics.prom", prometheus(report))
    artifacts.save_json(loc, "report", report, "signal", drifted=drifted, rows=len(current))
    return {
        "drifted": drifted,
        "features": len(rows),
        "performance": perf["value"] if perf else None,
        "rows": len(current),
        "verdict": verdict,
    }


def row_counts(report: dict[str, Any]) -> dict[str, int]:
    """Rows the report judged, by sample (the `mlc_monitor_rows` gauge)."""
    counts = {
        "current": int(report.get("rows_current") or 0),
        "reference": int(report.get("rows_reference") or 0),
    }
    if report.get("performance"):
        counts["labelled"] = int(report["performance"].get("rows") or 0)
    return counts


def prometheus(report: dict[str, Any], timestamp: float | None = None) -> str:
    """The report's gauges in the Prometheus text format (`runtime.drift.prometheus_text`)."""
    from mlc.runtime import drift

    perf = report.get("performance")
    return drift.prometheus_text(
        str(report["model_name"]),
        report["drift"],
        perf["values"] if perf else None,
        prediction=report.get("prediction_drift"),
        rows=row_counts(report),
        timestamp=timestamp,
    )


def _below(perf: PerformanceParams, value: float | None) -> bool:
    """Whether `value` is worse than the floor (above it for a lower-is-better metric)."""
    from mlc.runtime.steps._metrics import direction_of, worsening

    if value is None:
        return False
    return worsening(float(perf["floor"]), value, direction_of(perf, STEP)) > 0
