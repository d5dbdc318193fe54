"""The `governance` section: risk, approvals, fairness, explainability, compliance, retention."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from mlc.specs._base import Duration, Identifier, SecretRef, StrictModel, Violation


class Fairness(StrictModel):
    sensitive_attributes: tuple[Identifier, ...] = Field(min_length=1)
    metric: Literal[
        "demographic_parity_difference",
        "demographic_parity_ratio",
        "equalized_odds_difference",
        "equalized_odds_ratio",
    ] = "demographic_parity_difference"
    threshold: float = Field(0.1, ge=0)
    """Gate: differences must stay at or below it, ratios at or above it."""
    mitigation: Literal["none", "threshold_optimizer", "exponentiated_gradient"] = "none"


class Explainability(StrictModel):
    method: Literal["permutation", "shap"] = "permutation"
    top_k: int = Field(10, ge=1)


class Retention(StrictModel):
    data: Duration | None = None
    models: Duration | None = None
    logs: Duration | None = None


class DataResidency(StrictModel):
    allow_adequacy: bool = False
    """With `compliance: [gdpr]`, also accept regions in countries with an EU adequacy decision
    (United Kingdom, Switzerland, Japan, Republic of Korea, Israel, Canada) for data storage
    and serving. Off by default: gdpr then asks for a region in the EU/EEA."""


class Audit(StrictModel):
    hmac_key: Identifier | None = None
    """Environment variable (an entry of `security.secrets`) holding the key that MACs every
    audit record, so that rewriting the log needs the key; unset: hash chain and heads only."""


class OpenLineageEndpoint(StrictModel):
    url: str = Field(pattern=r"^https?://[^\s/]+(/\S*)?$")
    """Base URL of an OpenLineage HTTP consumer (Marquez: `http://marquez:5000`); events are
    POSTed to its `/api/v1/lineage`."""
    namespace: str | None = Field(None, min_length=1)
    """Job namespace of the events (default `mlc/<name>`)."""
    api_key: SecretRef | None = None
    """Bearer token of the endpoint, as a secret reference (never the value)."""
    timeout: float = Field(5.0, gt=0, le=60)
    """Seconds one event may take to send; a consumer that is down costs a warning, never the
    run."""


class Lineage(StrictModel):
    openlineage: OpenLineageEndpoint | None = None
    """Also send every run's OpenLineage `RunEvent`s (START, COMPLETE, FAIL per step) here; they
    are always written under `.mlc/lineage/events/`."""


class ModelCard(StrictModel):
    intended_use: str = ""
    out_of_scope: str = ""
    limitations: str = ""
    ethical_considerations: str = ""
    contact: str = ""


class Governance(StrictModel):
    risk: Literal["low", "medium", "high"] = "low"
    owners: tuple[str, ...] = ()
    approvers: tuple[str, ...] = ()
    fairness: Fairness | None = None
    explainability: Explainability | None = None
    compliance: tuple[Literal["gdpr", "hipaa", "soc2", "eu_ai_act"], ...] = ()
    retention: Retention = Retention()
    data_residency: DataResidency = DataResidency()
    """Where personal data may be stored and served under the listed compliance regimes."""
    model_card: ModelCard = ModelCard()
    audit: Audit = Audit()
    """How `mlc audit verify` can trust the audit log (`.mlc/audit.jsonl`)."""
    lineage: Lineage = Lineage()
    """Where run lineage goes beside the project's own record."""

    def violations(self) -> Iterator[Violation]:
        if len(set(self.compliance)) != len(self.compliance):
            yield Violation(("compliance",), "MLC370", "compliance regimes are listed twice")
