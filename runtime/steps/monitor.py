"""monitor: drift of current data against the training reference, performance on labelled rows.

Inputs: `reference` (the train split dataset), `current` (a dataset of production rows, with
the label column where labels have arrived) and optionally `model` (the registered sklearn
`Pipeline`; it supplies derived features and predictions). Params are the IR's `monitor`
params (`drift`, `performance`, `model_name`) plus, from the caller, `target` (the label
column), `task` and `metrics` (further metrics to compute, e.g. those of retrain triggers).

Output `signal`: `report.json` `{"drift": [{feature, method, score, threshold, drifted, …}],
"drifted": [features], "performance": {metric, value, floor, direction, below_floor, values,
rows} | null (`below_floor`: worse than the floor in the metric's `direction`, i.e. above it for
rmse), "rows_reference", "rows_current", "model_name"}` and `metrics.prom`, the same numbers as a
Prometheus textfile under the series names of `mlc.runtime.metrics_contract`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps._data import load_frame, load_model, out

if TYPE_CHECKING:
    from mlc.compiler.ir.params import MonitorParams, PerformanceParams

STEP = "monitor"


def run(
    params: MonitorParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Score drift per feature and performance against the floor; write the signal."""
    from mlc.runtime import drift

    reference = load_frame(inputs, "reference", STEP)
    current = load_frame(inputs, "current", STEP)
    model = load_model(inputs, "model", STEP, ctx) if inputs.get("model") else None
    target = params["target"]
    drift_params = params["drift"]
    rows: list[dict[str, Any]] = []
    if drift_params is not None:
        features = list(drift_params["features"])
        if not features:
            features = [str(c) for c in reference.columns if c != target]
        try:
            rows = drift.feature_drift(
                drift.add_derived(reference, model),
                drift.add_derived(current, model),
                features,
                drift_params["method"],
                float(drift_params["threshold"]),
            )
        except ValueError as exc:
            raise StepError(STEP, str(exc)) from exc
    perf_params = params["performance"]
    perf: dict[str, Any] | None = None
    if model is not None and target and target in current.columns:
        names = [perf_params["metric"]] if perf_params is not None else []
        names += [n for n in params["metrics"] if n not in names]
        task = params["task"]
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
    report = {
        "model_name": model_name,
        "drift": rows,
        "drifted": [r["feature"] for r in rows if r["drifted"]],
        "missing": [r["feature"] for r in rows if r.get("missing")],
        "performance": perf,
        "rows_reference": len(reference),
        "rows_current": len(current),
    }
    loc = out(outputs, "signal", STEP)
    artifacts.save_text(
        loc,
        "metrics.prom",
        drift.prometheus_text(model_name, rows, perf["values"] if perf else None),
    )
    artifacts.save_json(
        loc, "report", report, "signal", drifted=report["drifted"], rows=len(current)
    )
    return {
        "drifted": report["drifted"],
        "features": len(rows),
        "performance": perf["value"] if perf else None,
        "rows": len(current),
    }


def _below(perf: PerformanceParams, value: float | None) -> bool:
    """Whether `value` is worse than the floor (above it for a lower-is-better metric)."""
    from mlc.runtime.steps._metrics import direction_of, worsening

    if value is None:
        return False
    return worsening(float(perf["floor"]), value, direction_of(perf, STEP)) > 0
