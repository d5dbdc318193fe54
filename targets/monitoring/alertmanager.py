"""Alertmanager routes and receivers from the IR's `alerts` step.

Receiver secrets are never values: each secret reference becomes a `*_file` field pointing at
the file where the Kubernetes Secret named from the reference is mounted
(`/etc/alertmanager/secrets/<secret>/<key>`, where prometheus-operator mounts `spec.secrets`).
"""

from __future__ import annotations

from typing import Any

from mlc.targets._k8s_common import secret_ref

SECRETS_DIR = "/etc/alertmanager/secrets"
SEVERITIES = ("info", "warning", "critical")
DEFAULT_RECEIVER = "mlc-default"
"""Root receiver with no integrations: alerts no route claims are dropped on purpose."""

_SECRET_FIELD = {
    "slack": "api_url_file",
    "pagerduty": "routing_key_file",
    "webhook": "url_file",
    "opsgenie": "api_key_file",
}


def secret_file(reference: str) -> str:
    """Path of the mounted file that holds a referenced secret.

    >>> secret_file("vault:secret/data/alerts#slack_webhook")
    '/etc/alertmanager/secrets/vault-secret-data-alerts/slack_webhook'
    """
    name, key = secret_ref(reference)
    return f"{SECRETS_DIR}/{name}/{key}"


def _receiver(route: dict[str, Any]) -> dict[str, Any]:
    channel, target = route["channel"], route["target"]
    if channel == "email":
        return {"name": route["name"], "email_configs": [{"to": target, "send_resolved": True}]}
    config: dict[str, Any] = {_SECRET_FIELD[channel]: secret_file(target), "send_resolved": True}
    return {"name": route["name"], f"{channel}_configs": [config]}


def _matchers(route: dict[str, Any], model: str) -> list[str]:
    matchers = [f'model="{model}"']
    if route.get("match"):
        matchers.append(f'alertname=~"{"|".join(sorted(route["match"]))}"')
    else:
        worse = SEVERITIES[SEVERITIES.index(route["severity"]) :]
        matchers.append(f'severity=~"{"|".join(worse)}"')
    return matchers


def secrets_needed(routes: list[dict[str, Any]]) -> list[str]:
    """Kubernetes Secret names the Alertmanager must mount (prometheus-operator `secrets`)."""
    return sorted({secret_ref(r["target"])[0] for r in routes if r["channel"] != "email"})


def build_config(alerts: dict[str, Any], smarthost: str, sender: str) -> dict[str, Any]:
    """Alertmanager configuration for the IR `alerts` step's params."""
    model = str(alerts["model_name"])
    routes = list(alerts["routes"])
    config: dict[str, Any] = {
        "route": {
            "receiver": DEFAULT_RECEIVER,
            "group_by": ["alertname", "model"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {"receiver": r["name"], "matchers": _matchers(r, model), "continue": True}
                for r in routes
            ],
        },
        "receivers": [{"name": DEFAULT_RECEIVER}, *(_receiver(r) for r in routes)],
        "inhibit_rules": [
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["alertname", "model"],
            }
        ],
    }
    if any(r["channel"] == "email" for r in routes):
        config["global"] = {
            "smtp_smarthost": smarthost,
            "smtp_from": sender,
            "smtp_require_tls": True,
        }
    return config
