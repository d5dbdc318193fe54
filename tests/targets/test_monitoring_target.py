"""`--target monitoring`: rules pass promtool (check + unit tests), Alertmanager passes amtool,
the PrometheusRule passes its CRD, and the dashboard is what the Grafana SDK builds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml
from support import CREDIT
from support.crd import validate_custom
from support.manifests import registry
from support.tools import require_tool

from mlc.compiler.api import compile_spec
from mlc.runtime import metrics_contract


def emit(tmp_path: Path, overrides: list[str] | None = None) -> Path:
    compile_spec(CREDIT, ["monitoring"], tmp_path, overrides or [], registry())
    return tmp_path / "monitoring"


def run(*args: str, cwd: Path) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_promtool_checks_and_unit_tests_the_rules(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    out = emit(tmp_path) / "prometheus"
    assert "SUCCESS: 17 rules found" in run(promtool, "check", "rules", "rules.yaml", cwd=out)
    run(promtool, "test", "rules", "rules.test.yaml", cwd=out)
    tests = yaml.safe_load((out / "rules.test.yaml").read_text())["tests"]
    firing = {t["alertname"]: t["exp_alerts"] for t in tests[0]["alert_rule_test"]}
    assert {a["exp_labels"]["version"] for a in firing[metrics_contract.ALERT_LATENCY_SLO]} == {
        "candidate"
    }
    assert [a["exp_labels"]["feature"] for a in firing[metrics_contract.ALERT_DRIFT]] == ["age"]
    assert set(firing) >= {
        metrics_contract.rollback_alert_name("error_rate"),
        metrics_contract.rollback_alert_name("latency_p99_ms"),
        metrics_contract.ALERT_BUDGET_BURN,
    }
    assert all(t["exp_alerts"] == [] for t in tests[1]["alert_rule_test"])


def test_a_broken_rule_makes_promtool_fail(tmp_path: Path) -> None:
    """The unit tests are not vacuous: a rule with a wrong threshold fails them."""
    promtool = require_tool("promtool")
    out = emit(tmp_path) / "prometheus"
    rules = (out / "rules.yaml").read_text()
    (out / "rules.yaml").write_text(rules.replace("> 0.2\n", "> 5\n", 1))
    proc = subprocess.run(
        [promtool, "test", "rules", "rules.test.yaml"],
        cwd=out,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0


def test_amtool_accepts_alertmanager_and_secrets_are_files(tmp_path: Path) -> None:
    amtool = require_tool("amtool")
    out = emit(
        tmp_path,
        [
            "+monitoring.alerts.2={name:audit,channel:email,"
            "target:ml-audit@example.com,severity:info}",
            "+monitoring.alerts.3={name:genie,channel:opsgenie,"
            "target:'aws-sm:alerts/genie',match:[MlcFeatureDrift]}",
        ],
    )
    config_path = out / "alertmanager" / "alertmanager.yaml"
    run(amtool, "check-config", str(config_path), cwd=tmp_path)
    config = yaml.safe_load(config_path.read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    assert (
        receivers["oncall"]["pagerduty_configs"][0]["routing_key_file"]
        == "/etc/alertmanager/secrets/vault-secret-data-alerts/pagerduty_key"
    )
    assert receivers["team"]["slack_configs"][0]["api_url_file"].endswith("/slack_webhook")
    routes = {r["receiver"]: r["matchers"] for r in config["route"]["routes"]}
    assert routes["oncall"][1] == 'severity=~"critical"'
    assert routes["audit"][1] == 'severity=~"info|warning|critical"'
    assert routes["genie"][1] == 'alertname=~"MlcFeatureDrift"'
    assert (
        receivers["genie"]["opsgenie_configs"][0]["api_key_file"]
        == "/etc/alertmanager/secrets/aws-sm-alerts-genie/genie"
    )
    assert "vault:" not in config_path.read_text()


def test_prometheus_rule_passes_its_crd(tmp_path: Path) -> None:
    out = emit(tmp_path)
    doc = yaml.safe_load((out / "prometheus" / "prometheusrule.yaml").read_text())
    assert validate_custom(doc) == []
    plain = yaml.safe_load((out / "prometheus" / "rules.yaml").read_text())
    assert doc["spec"]["groups"] == plain["groups"]


def test_dashboard_panels_and_sdk_round_trip(tmp_path: Path) -> None:
    from grafana_foundation_sdk.models.dashboard import Dashboard

    board = json.loads((emit(tmp_path) / "grafana" / "credit-risk.json").read_text())
    titles = [p["title"] for p in board["panels"]]
    assert titles == [
        "Serving",
        "Latency p99 / p50",
        "Throughput",
        "Error rate",
        "Traffic share per model version",
        "Data and model quality",
        "Drift per feature (psi)",
        "roc_auc on labelled traffic",
        "Cost",
        "Spend this month",
        "Budget burn",
    ]
    exprs = " ".join(t["expr"] for p in board["panels"] for t in p.get("targets", []))
    for name in (
        metrics_contract.RECORD_LATENCY_P99,
        metrics_contract.RECORD_THROUGHPUT,
        metrics_contract.RECORD_ERROR_RATIO,
        metrics_contract.FEATURE_DRIFT_SCORE,
        metrics_contract.MODEL_PERFORMANCE,
        metrics_contract.SPEND_USD,
    ):
        assert name in exprs
    assert Dashboard.from_json(board).title == "credit-risk (mlc)"


def test_webhook_routes_are_refused_with_a_location(tmp_path: Path) -> None:
    import pytest

    from mlc.compiler.diagnostics import DiagnosticError

    with pytest.raises(DiagnosticError) as exc:
        emit(
            tmp_path,
            ["+monitoring.alerts.2={name:hook,channel:webhook,target:'aws-sm:alerts/hook'}"],
        )
    errors = [d for d in exc.value.diagnostics if d.code == "MLC410"]
    assert [d.path for d in errors] == ["monitoring.alerts[2].channel"]
    assert not (tmp_path / "monitoring").exists()
