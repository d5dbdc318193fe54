"""Prometheus recording and alert rules from the IR's `monitor` step, and their promtool tests.

The rules read only the series named in `mlc.runtime.metrics_contract`. `unit_tests` builds a
`promtool test rules` file whose input series are chosen from the spec's thresholds: one model
version that breaks every limit (its alerts must fire) and one that keeps them (its alerts must
not), plus a quiet case in which nothing may fire.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from mlc.runtime import metrics_contract

BUDGET_KEYS = {
    "total_usd_per_month": "total",
    "serving_usd_per_month": "serving",
    "training_usd": "training",
    "tuning_usd": "tuning",
}
"""Spec budget caps in USD -> the `budget` label of the spend series."""

GOOD, BAD = "stable", "candidate"
"""Model versions of the generated unit tests."""


def duration(seconds: float) -> str:
    """A Prometheus duration, in the largest unit that is exact.

    >>> duration(300), duration(90), duration(7200)
    ('5m', '90s', '2h')
    """
    s = max(1, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


def _num(value: float) -> str:
    return f"{value:.6g}"


@dataclass
class Alert:
    name: str
    expr: str
    severity: str
    summary: str
    labels: dict[str, str] = field(default_factory=dict)

    def rule(self, model: str) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "labels": {"severity": self.severity, **self.labels},
            "annotations": {"summary": self.summary, "model": model},
        }


@dataclass
class RuleSet:
    """Rules of one model plus the facts the unit tests need."""

    model: str
    window: str
    recording: list[dict[str, Any]]
    alerts: list[Alert]
    monitor: dict[str, Any]

    def groups(self) -> list[dict[str, Any]]:
        base = f"mlc-{self.model}"
        return [
            {"name": f"{base}-recording", "rules": self.recording},
            {"name": f"{base}-alerts", "rules": [a.rule(self.model) for a in self.alerts]},
        ]


def _sel(model: str, **extra: str) -> str:
    parts = [
        f'{metrics_contract.LABEL_MODEL}="{model}"',
        *(f'{k}="{v}"' for k, v in sorted(extra.items())),
    ]
    return "{" + ",".join(parts) + "}"


def build_rules(monitor: dict[str, Any]) -> RuleSet:
    """Recording and alert rules for the IR `monitor` step's params."""
    model = str(monitor["model_name"])
    slos = monitor["slos"]
    window = duration(float(slos["window"]))
    sel = _sel(model)
    by = f"{metrics_contract.LABEL_MODEL}, {metrics_contract.LABEL_VERSION}"
    requests = f"sum by ({by}) (rate({metrics_contract.REQUESTS_TOTAL}{sel}[{window}]))"
    errors = f"sum by ({by}) (rate({metrics_contract.REQUEST_ERRORS_TOTAL}{sel}[{window}]))"
    buckets = f"sum by ({by}, le) (rate({metrics_contract.REQUEST_DURATION_BUCKET}{sel}[{window}]))"
    recording: list[dict[str, Any]] = [
        {"record": metrics_contract.RECORD_THROUGHPUT, "expr": requests},
        {"record": metrics_contract.RECORD_ERROR_RATIO, "expr": f"{errors} / {requests}"},
        {
            "record": metrics_contract.RECORD_LATENCY_P99,
            "expr": f"histogram_quantile(0.99, {buckets})",
        },
        {
            "record": metrics_contract.RECORD_LATENCY_P50,
            "expr": f"histogram_quantile(0.5, {buckets})",
        },
    ]
    alerts: list[Alert] = []
    if slos.get("latency_p99_ms") is not None:
        limit = float(slos["latency_p99_ms"]) / 1000
        alerts.append(
            Alert(
                metrics_contract.ALERT_LATENCY_SLO,
                f"{metrics_contract.RECORD_LATENCY_P99}{sel} > {_num(limit)}",
                "critical",
                f"p99 latency over {window} is above the SLO of {_num(limit * 1000)} ms",
            )
        )
    if slos.get("error_rate") is not None:
        alerts.append(
            Alert(
                metrics_contract.ALERT_ERROR_RATE,
                f"{metrics_contract.RECORD_ERROR_RATIO}{sel} > {_num(slos['error_rate'])}",
                "critical",
                f"error rate over {window} is above {_num(slos['error_rate'])}",
            )
        )
    drift = monitor.get("drift")
    if drift and drift.get("features"):
        feats = "|".join(sorted(drift["features"]))
        alerts.append(
            Alert(
                metrics_contract.ALERT_DRIFT,
                f'{metrics_contract.FEATURE_DRIFT_SCORE}{{{metrics_contract.LABEL_MODEL}="{model}",'
                f'{metrics_contract.LABEL_FEATURE}=~"{feats}"}} > {_num(drift["threshold"])}',
                "warning",
                f"{drift['method']} drift score above {_num(drift['threshold'])}",
            )
        )
    perf = monitor.get("performance")
    if perf:
        # the floor is the worst acceptable value: for rmse or log_loss worse means above it
        worse, side = (">", "above") if perf["direction"] == "lower" else ("<", "below")
        alerts.append(
            Alert(
                metrics_contract.ALERT_PERFORMANCE,
                f"{metrics_contract.MODEL_PERFORMANCE}"
                f"{_sel(model, **{metrics_contract.LABEL_METRIC: perf['metric']})} "
                f"{worse} {_num(perf['floor'])}",
                "warning",
                f"{perf['metric']} on labelled traffic is {side} {_num(perf['floor'])}",
            )
        )
    for cond in monitor.get("rollback", ()):
        metric = cond["metric"]
        threshold = float(cond["threshold"]) * metrics_contract.ROLLBACK_SCALE[metric]
        series = metrics_contract.ROLLBACK_METRICS[metric]
        expr = f"max by ({by}) ({series}{sel})" if metric == "drift_score" else f"{series}{sel}"
        alerts.append(
            Alert(
                metrics_contract.rollback_alert_name(metric),
                f"{expr} {cond['op']} {_num(threshold)}",
                "critical",
                f"rollback condition {metric} {cond['op']} {_num(cond['threshold'])} holds",
                {"action": "rollback"},
            )
        )
    budgets = monitor.get("budgets") or {}
    caps = {label: float(budgets[key]) for key, label in BUDGET_KEYS.items() if budgets.get(key)}
    for label, cap in sorted(caps.items()):
        recording.append(
            {
                "record": metrics_contract.RECORD_BUDGET_BURN,
                "expr": f"{metrics_contract.SPEND_USD}"
                f"{_sel(model, **{metrics_contract.LABEL_BUDGET: label})} / {_num(cap)}",
                "labels": {metrics_contract.LABEL_BUDGET: label},
            }
        )
    if caps:
        for pct in sorted(budgets.get("alert_thresholds") or ()):
            alerts.append(
                Alert(
                    metrics_contract.ALERT_BUDGET_BURN,
                    f"{metrics_contract.RECORD_BUDGET_BURN}{sel} >= {_num(pct / 100)}",
                    "critical" if pct >= 100 else "warning",
                    f"{pct}% of a budget is spent",
                    {"threshold": str(pct)},
                )
            )
    return RuleSet(model, window, recording, alerts, monitor)


# -- promtool unit tests --------------------------------------------------------------------

STEPS = 20
"""Minutes of generated input series (one sample a minute)."""


def _counter(per_minute: float) -> str:
    return f"0+{_num(per_minute)}x{STEPS}"


def _latency_series(model: str, version: str, bucket: float) -> list[dict[str, str]]:
    """Histogram buckets of a version whose requests all take at most `bucket` seconds."""
    out = []
    for le in [*map(_num, metrics_contract.LATENCY_BUCKETS_SECONDS), "+Inf"]:
        filled = le == "+Inf" or float(le) >= bucket
        labels = _sel(model, **{metrics_contract.LABEL_VERSION: version, "le": le})
        out.append(
            {
                "series": f"{metrics_contract.REQUEST_DURATION_BUCKET}{labels}",
                "values": _counter(600 if filled else 0),
            }
        )
    return out


def _bad_bucket(threshold_s: float) -> float | None:
    """Upper bound of the first bucket whose whole range lies above the threshold."""
    bounds = (0.0, *metrics_contract.LATENCY_BUCKETS_SECONDS)
    for lo, hi in itertools.pairwise(bounds):
        if lo >= threshold_s:
            return hi
    return None


def _across(floor: float, direction: str) -> tuple[str, str]:
    """Sample values just worse and just better than `floor` for a metric of `direction`.

    The step is relative for large floors so that six significant digits still tell the
    sample from the floor.

    >>> _across(0.72, "higher"), _across(4.5, "lower"), _across(250000.0, "lower")
    (('0.67', '0.77'), ('4.55', '4.45'), ('252500', '247500'))
    """
    step = max(0.05, abs(floor) * 0.01)
    sign = 1 if direction == "lower" else -1
    return _num(floor + sign * step), _num(floor - sign * step)


def unit_tests(rules: RuleSet, rules_file: str) -> dict[str, Any]:
    """A `promtool test rules` document for `rules` (read from `rules_file`)."""
    model, mon = rules.model, rules.monitor
    latency_limits = [
        a
        for a in rules.alerts
        if a.name
        in (
            metrics_contract.ALERT_LATENCY_SLO,
            metrics_contract.rollback_alert_name("latency_p99_ms"),
            metrics_contract.rollback_alert_name("latency_p50_ms"),
        )
    ]
    thresholds = [float(a.expr.rsplit(" ", 1)[1]) for a in latency_limits if " >" in a.expr]
    bad_bucket = (
        _bad_bucket(max(thresholds)) if thresholds else metrics_contract.LATENCY_BUCKETS_SECONDS[-2]
    )
    good_bucket = metrics_contract.LATENCY_BUCKETS_SECONDS[0]
    series: list[dict[str, str]] = []
    quiet: list[dict[str, str]] = []
    for version, errors_per_min, bucket in ((GOOD, 0.0, good_bucket), (BAD, 600.0, bad_bucket)):
        v = {metrics_contract.LABEL_VERSION: version}
        reqs = [
            {
                "series": f"{metrics_contract.REQUESTS_TOTAL}{_sel(model, **v, code='200')}",
                "values": _counter(600),
            },
            {
                "series": f"{metrics_contract.REQUEST_ERRORS_TOTAL}{_sel(model, **v)}",
                "values": _counter(errors_per_min),
            },
        ]
        series += reqs
        series += _latency_series(model, version, bucket if bucket is not None else 10.0)
        if version == GOOD:
            quiet += reqs + _latency_series(model, version, good_bucket)
    drift = mon.get("drift") or {}
    feats = sorted(drift.get("features") or ())
    for i, feat in enumerate(feats):
        threshold = float(drift["threshold"])
        labels = _sel(
            model, **{metrics_contract.LABEL_FEATURE: feat, metrics_contract.LABEL_VERSION: BAD}
        )
        series.append(
            {
                "series": f"{metrics_contract.FEATURE_DRIFT_SCORE}{labels}",
                "values": f"{_num(threshold * (2 if i == 0 else 0.5))}x{STEPS}",
            }
        )
        quiet.append(
            {
                "series": f"{metrics_contract.FEATURE_DRIFT_SCORE}{labels}",
                "values": f"{_num(threshold * 0.5)}x{STEPS}",
            }
        )
    perf = mon.get("performance")
    if perf:
        labels = _sel(model, **{metrics_contract.LABEL_METRIC: perf["metric"]})
        worse, better = _across(float(perf["floor"]), str(perf["direction"]))
        series.append(
            {
                "series": f"{metrics_contract.MODEL_PERFORMANCE}{labels}",
                "values": f"{worse}x{STEPS}",
            }
        )
        quiet.append(
            {
                "series": f"{metrics_contract.MODEL_PERFORMANCE}{labels}",
                "values": f"{better}x{STEPS}",
            }
        )
    budgets = mon.get("budgets") or {}
    for key, label in sorted(BUDGET_KEYS.items()):
        if budgets.get(key):
            labels = _sel(model, **{metrics_contract.LABEL_BUDGET: label})
            series.append(
                {
                    "series": f"{metrics_contract.SPEND_USD}{labels}",
                    "values": f"{_num(float(budgets[key]))}x{STEPS}",
                }
            )
            quiet.append(
                {"series": f"{metrics_contract.SPEND_USD}{labels}", "values": f"0x{STEPS}"}
            )

    eval_time = "10m"
    firing: list[dict[str, Any]] = []
    silent: list[dict[str, Any]] = []
    for name in sorted({a.name for a in rules.alerts}):
        same = [a for a in rules.alerts if a.name == name]
        expected = [e for a in same for e in _expected(a, rules, bad_bucket, feats)]
        firing.append(
            {
                "eval_time": eval_time,
                "alertname": name,
                "exp_alerts": sorted(expected, key=_sort_key),
            }
        )
        silent.append({"eval_time": eval_time, "alertname": name, "exp_alerts": []})
    return {
        "rule_files": [rules_file],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": "limits broken by one version fire, kept by the other do not",
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": firing,
            },
            {
                "name": "a healthy model fires nothing",
                "interval": "1m",
                "input_series": quiet,
                "alert_rule_test": silent,
            },
        ],
    }


def _sort_key(alert: dict[str, Any]) -> str:
    return repr(sorted(alert["exp_labels"].items()))


def _expected(
    alert: Alert, rules: RuleSet, bad_bucket: float | None, feats: list[str]
) -> list[dict[str, Any]]:
    """The alerts `alert` raises on the generated series (the bad version only)."""
    model = rules.model
    base = {metrics_contract.LABEL_MODEL: model, "severity": alert.severity, **alert.labels}
    annotations = {"summary": alert.summary, "model": model}
    per_version = {metrics_contract.ALERT_LATENCY_SLO, metrics_contract.ALERT_ERROR_RATE}
    per_version |= {
        metrics_contract.rollback_alert_name(m) for m in metrics_contract.ROLLBACK_METRICS
    }
    if alert.name in per_version:
        op = alert.expr.rsplit(" ", 2)[1]
        if op not in (">", ">="):
            return []
        if "latency" in alert.expr and bad_bucket is None:
            return []
        if alert.name == metrics_contract.rollback_alert_name("drift_score") and not feats:
            return []
        return [
            {
                "exp_labels": {**base, metrics_contract.LABEL_VERSION: BAD},
                "exp_annotations": annotations,
            }
        ]
    if alert.name == metrics_contract.ALERT_DRIFT:
        return [
            {
                "exp_labels": {
                    **base,
                    metrics_contract.LABEL_FEATURE: feats[0],
                    metrics_contract.LABEL_VERSION: BAD,
                },
                "exp_annotations": annotations,
            }
        ]
    if alert.name == metrics_contract.ALERT_PERFORMANCE:
        return [
            {
                "exp_labels": {
                    **base,
                    metrics_contract.LABEL_METRIC: rules.monitor["performance"]["metric"],
                },
                "exp_annotations": annotations,
            }
        ]
    if alert.name == metrics_contract.ALERT_BUDGET_BURN:
        budgets = rules.monitor["budgets"]
        return [
            {
                "exp_labels": {**base, metrics_contract.LABEL_BUDGET: label},
                "exp_annotations": annotations,
            }
            for key, label in sorted(BUDGET_KEYS.items())
            if budgets.get(key)
        ]
    return []
