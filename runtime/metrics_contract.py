"""The metric names shared by the serving runtime and the monitoring target.

The serving runtime exports these series; the monitoring target's Prometheus rules, Alertmanager
routes and Grafana dashboards query them. Both sides import this module, so a rename happens in
one place. Plain constants only: importing it must stay free of heavy libraries.
"""

from __future__ import annotations

# -- labels ----------------------------------------------------------------------------------
LABEL_MODEL = "model"
"""Name of the served model (the spec's `name`)."""
LABEL_VERSION = "version"
"""Model version (registry version or rollout track: `stable`, `canary`, variant name)."""
LABEL_CODE = "code"
"""HTTP status code of a prediction request."""
LABEL_FEATURE = "feature"
"""Feature (column) a drift score belongs to."""
LABEL_METRIC = "metric"
"""Evaluation metric a performance value belongs to (`roc_auc`, `rmse`, …)."""
LABEL_BUDGET = "budget"
"""Budget a spend series belongs to (`serving`, `total`, `training`, `tuning`)."""
LABEL_SAMPLE = "sample"
"""Which rows a monitor row count counts (`current`, `labelled`, `reference`)."""

# -- series the serving runtime exports --------------------------------------------------------
REQUESTS_TOTAL = "mlc_requests_total"
"""Counter of prediction requests, labelled model, version, code."""
REQUEST_ERRORS_TOTAL = "mlc_request_errors_total"
"""Counter of failed prediction requests (5xx or model error), labelled model, version."""
REQUEST_DURATION_SECONDS = "mlc_request_duration_seconds"
"""Histogram of request latency in seconds, labelled model, version."""
REQUEST_DURATION_BUCKET = f"{REQUEST_DURATION_SECONDS}_bucket"
"""The histogram's bucket series (`le` label)."""
LATENCY_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Histogram bucket bounds the serving runtime must use, so p99 rules resolve the SLO."""

# -- series the monitoring runtime exports -----------------------------------------------------
FEATURE_DRIFT_SCORE = "mlc_feature_drift_score"
"""Gauge: latest drift score of one feature against the reference, labelled model, feature."""
MODEL_PERFORMANCE = "mlc_model_performance"
"""Gauge: latest metric on labelled production data, labelled model, metric."""
PREDICTION_DRIFT_SCORE = "mlc_prediction_drift_score"
"""Gauge: latest drift score of the model's predictions against the reference, labelled model."""
MONITOR_ROWS = "mlc_monitor_rows"
"""Gauge: rows the latest monitor run judged, labelled model, sample."""
MONITOR_LAST_RUN = "mlc_monitor_last_run_timestamp_seconds"
"""Gauge: when the latest monitor run finished (Unix seconds), labelled model."""
SPEND_USD = "mlc_spend_usd"
"""Gauge: month-to-date spend in USD, labelled model, budget."""
BUDGET_USD = "mlc_budget_usd"
"""Gauge: the cap of a budget in USD, labelled model, budget (exported from the spec)."""

# -- recording rules (produced by the monitoring target's rules) ------------------------------
RECORD_LATENCY_P99 = "mlc:request_latency_seconds:p99"
"""p99 latency over the SLO window, per model and version."""
RECORD_LATENCY_P50 = "mlc:request_latency_seconds:p50"
"""p50 latency over the SLO window, per model and version."""
RECORD_ERROR_RATIO = "mlc:request_error_ratio"
"""Failed / all requests over the SLO window, per model and version."""
RECORD_THROUGHPUT = "mlc:requests:rate"
"""Requests per second over the SLO window, per model and version."""
RECORD_BUDGET_BURN = "mlc:budget_burn:ratio"
"""Month-to-date spend / cap, per model and budget."""

# -- alert names -------------------------------------------------------------------------------
ALERT_LATENCY_SLO = "MlcLatencySLOBreached"
ALERT_ERROR_RATE = "MlcErrorRateHigh"
ALERT_DRIFT = "MlcFeatureDrift"
ALERT_PERFORMANCE = "MlcPerformanceBelowFloor"
ALERT_BUDGET_BURN = "MlcBudgetBurn"

ROLLBACK_METRICS = {
    "error_rate": RECORD_ERROR_RATIO,
    "latency_p99_ms": RECORD_LATENCY_P99,
    "latency_p50_ms": RECORD_LATENCY_P50,
    "drift_score": FEATURE_DRIFT_SCORE,
}
"""Rollback-condition metric of the spec -> the series that measures it."""

ROLLBACK_SCALE = {
    "error_rate": 1.0,
    "latency_p99_ms": 0.001,
    "latency_p50_ms": 0.001,
    "drift_score": 1.0,
}
"""Factor from the spec's unit to the series' unit (milliseconds -> seconds)."""


def rollback_alert_name(metric: str) -> str:
    """Alert that fires when a rollout's rollback condition on `metric` holds.

    >>> rollback_alert_name("latency_p99_ms")
    'MlcRollbackLatencyP99Ms'
    """
    return "MlcRollback" + "".join(part.capitalize() for part in metric.split("_"))
