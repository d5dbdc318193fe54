"""The `monitoring` section: SLOs, drift, delayed-label performance, alert routes, dashboards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from mlc.specs._base import (
    Cron,
    Duration,
    Identifier,
    SecretRef,
    StrictModel,
    Violation,
    is_secret_ref,
)


class Slos(StrictModel):
    latency_p99_ms: float | None = Field(None, gt=0)
    error_rate: float | None = Field(None, ge=0, le=1)
    """Largest tolerated share of failed requests."""
    window: Duration = 300
    """Window the SLOs are evaluated over."""


DriftMethod = Literal["psi", "ks", "chi2", "wasserstein", "jensen_shannon"]


class Drift(StrictModel):
    method: DriftMethod = "psi"
    """The drift test; per column type, `numeric` and `categorical` take precedence."""
    numeric: Literal["psi", "ks", "wasserstein", "chi2", "jensen_shannon"] | None = None
    """Test for numeric features (default: `method`)."""
    categorical: Literal["chi2", "jensen_shannon", "psi"] | None = None
    """Test for categorical features (default: `method` when it scores categories — chi2 or
    jensen_shannon — else chi2, Cramér's V)."""
    threshold: float = Field(0.2, gt=0)
    features: tuple[Identifier, ...] = ()
    """Columns watched (default: every feature)."""
    schedule: Cron = "@hourly"


class Performance(StrictModel):
    metric: Identifier
    floor: float
    """Worst acceptable value of the metric on labelled production data: alert when it is worse
    (below the floor for accuracy or roc_auc, above it for rmse or log_loss)."""
    label_delay: Duration = 86400
    """How long labels take to arrive after a prediction."""
    schedule: Cron = "@daily"


class AlertRoute(StrictModel):
    name: Identifier
    channel: Literal["slack", "pagerduty", "email", "webhook", "opsgenie"]
    target: SecretRef | str
    """Where alerts go: an address, or a secret reference for webhooks and keys."""
    severity: Literal["info", "warning", "critical"] = "warning"
    match: tuple[Identifier, ...] = ()
    """Alert names routed here (default: every alert of this severity or worse)."""

    def violations(self) -> Iterator[Violation]:
        secret_like = self.channel in ("slack", "pagerduty", "webhook", "opsgenie")
        if secret_like and not is_secret_ref(self.target):
            yield Violation(
                ("target",),
                "MLC360",
                f"{self.channel} alerts need a secret reference for their target",
                "write e.g. 'vault:secret/data/alerts#slack_webhook'",
            )


class Dashboards(StrictModel):
    grafana: bool = True
    folder: str = "mlc"


class Monitoring(StrictModel):
    window: Duration = 86400
    """How far back `mlc monitor` reads the prediction log (current data), from now."""
    min_rows: int = Field(100, ge=1)
    """Fewest rows in the window to judge drift: below, the verdict is "insufficient data"
    and nothing retrains."""
    slos: Slos = Slos()
    drift: Drift | None = None
    performance: Performance | None = None
    alerts: tuple[AlertRoute, ...] = ()
    dashboards: Dashboards = Dashboards()

    def violations(self) -> Iterator[Violation]:
        for i, route in enumerate(self.alerts):
            for v in route.violations():
                yield v.under("alerts", i)
        names = [r.name for r in self.alerts]
        if len(set(names)) != len(names):
            yield Violation(("alerts",), "MLC361", "alert route names must be unique")
