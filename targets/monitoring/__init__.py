"""`--target monitoring`: Prometheus rules, their promtool tests, Alertmanager, Grafana.

Files, all from the IR's `monitor` and `alerts` steps:
- `prometheus/rules.yaml` — recording and alert rules (a plain Prometheus rules file);
- `prometheus/rules.test.yaml` — `promtool test rules` cases that must fire and must not;
- `prometheus/prometheusrule.yaml` — the same groups as a prometheus-operator `PrometheusRule`;
- `alertmanager/alertmanager.yaml` — routes and receivers, secrets as mounted `*_file` paths;
- `grafana/<model>.json` — the dashboard (when `monitoring.dashboards.grafana`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mlc.compiler.diagnostics import Diagnostic
from mlc.compiler.ir import IRGraph, StepKind
from mlc.targets._k8s_common import dns_name, dump_docs, meta
from mlc.targets.base import Capabilities, EmitContext, Target, TargetOptions

SUPPORTS = frozenset(
    {
        "drift.psi",
        "drift.ks",
        "drift.chi2",
        "drift.wasserstein",
        "drift.jensen_shannon",
        "performance.delayed_labels",
        "slo.latency",
        "slo.error_rate",
        "alerts.slack",
        "alerts.pagerduty",
        "alerts.email",
        "alerts.opsgenie",
    }
)
"""No `alerts.webhook`: Alertmanager 0.25 (Debian 12, what the checks here run) cannot read a
webhook URL from a file, and the URL is the secret; 0.26 added `url_file`."""


class MonitoringOptions(TargetOptions):
    """Options of the monitoring target (`targets.monitoring` in a spec)."""

    namespace: str = "monitoring"
    """Namespace of the PrometheusRule."""
    rule_selector_labels: dict[str, str] = {"release": "prometheus"}
    """Labels the Prometheus operator's `ruleSelector` picks rules up by."""
    smtp_smarthost: str = "localhost:25"
    """SMTP relay for e-mail routes."""
    smtp_from: str = "alertmanager@localhost"
    """Sender address of e-mail alerts."""


class MonitoringTarget(Target):
    name = "monitoring"
    description = "Prometheus rules + promtool tests, Alertmanager routes, Grafana dashboard."
    options_model = MonitoringOptions
    capabilities = Capabilities(
        realises=frozenset({StepKind.MONITOR, StepKind.ALERTS}), supports=SUPPORTS
    )

    def check(self, ir: IRGraph, ctx: EmitContext) -> list[Diagnostic]:
        if ir.first(StepKind.MONITOR) is None:
            return [
                Diagnostic(
                    "MLC712",
                    "the monitoring target needs a 'monitoring' section",
                    hint="add 'monitoring: {slos: {latency_p99_ms: 200}}'",
                    path="monitoring",
                )
            ]
        return []

    def emit(self, ir: IRGraph, ctx: EmitContext) -> Mapping[str, str | bytes]:
        from mlc.targets.monitoring.alertmanager import build_config
        from mlc.targets.monitoring.dashboard import build_dashboard
        from mlc.targets.monitoring.rules import build_rules, unit_tests

        opts = ctx.options
        assert isinstance(opts, MonitoringOptions)
        monitor = ir.first(StepKind.MONITOR)
        if monitor is None:
            return {}
        rules = build_rules(dict(monitor.params))
        groups = rules.groups()
        app = dns_name(rules.model)
        rule_meta = meta(app, opts.namespace, app)
        rule_meta["labels"].update(opts.rule_selector_labels)
        out: dict[str, str | bytes] = {
            "prometheus/rules.yaml": dump_docs([{"groups": groups}]),
            "prometheus/rules.test.yaml": dump_docs([unit_tests(rules, "rules.yaml")]),
            "prometheus/prometheusrule.yaml": dump_docs(
                [
                    {
                        "apiVersion": "monitoring.coreos.com/v1",
                        "kind": "PrometheusRule",
                        "metadata": rule_meta,
                        "spec": {"groups": groups},
                    }
                ]
            ),
        }
        alerts = ir.first(StepKind.ALERTS)
        if alerts is not None:
            out["alertmanager/alertmanager.yaml"] = dump_docs(
                [build_config(dict(alerts.params), opts.smtp_smarthost, opts.smtp_from)]
            )
        if (monitor.params.get("dashboards") or {}).get("grafana", True):
            deploy = ir.first(StepKind.DEPLOY)
            strategy: dict[str, Any] | None = (
                deploy.params.get("strategy") if deploy is not None else None
            )
            out[f"grafana/{app}.json"] = build_dashboard(dict(monitor.params), strategy)
            folder = (monitor.params.get("dashboards") or {}).get("folder", "mlc")
            out["grafana/provisioning.json"] = (
                json.dumps(
                    {"folder": folder, "dashboards": [f"{app}.json"]}, indent=2, sort_keys=True
                )
                + "\n"
            )
        return out
