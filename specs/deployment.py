"""The `deployment` section: how the model is served and rolled out, where, at what scale."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field

from mlc.specs._base import (
    INT32_MAX,
    Cron,
    Duration,
    Identifier,
    Resources,
    SecretRef,
    StrictModel,
    Violation,
)

Cloud = Literal["aws", "gcp", "azure", "onprem"]
Platform = Literal["kserve", "k8s", "sagemaker", "vertex", "azureml", "local"]
MANAGED_PLATFORMS = {"sagemaker": "aws", "vertex": "gcp", "azureml": "azure"}


class RollbackCondition(StrictModel):
    """Roll back when `metric op threshold` holds during the bake time."""

    metric: Literal["error_rate", "latency_p99_ms", "latency_p50_ms", "drift_score"]
    op: Literal[">", ">=", "<", "<="] = ">"
    threshold: float


class Canary(StrictModel):
    kind: Literal["canary"]
    steps: tuple[int, ...] = Field(min_length=1)
    """Traffic percentages for the new version, ending at 100, e.g. `[10, 50, 100]`."""
    bake_time: Duration = 600
    """How long each step runs before the next one."""
    rollback: tuple[RollbackCondition, ...] = ()

    def violations(self) -> Iterator[Violation]:
        if any(not 0 < s <= 100 for s in self.steps):
            yield Violation(("steps",), "MLC350", "traffic steps are percentages in 1..100")
        elif list(self.steps) != sorted(set(self.steps)):
            yield Violation(("steps",), "MLC351", "traffic steps must strictly increase")
        elif self.steps[-1] != 100:
            yield Violation(
                ("steps",),
                "MLC352",
                f"canary traffic steps must end at 100, not {self.steps[-1]}",
                f"append 100: {[*self.steps, 100]}",
            )


class BlueGreen(StrictModel):
    kind: Literal["blue_green"]
    bake_time: Duration = 600
    switch: Literal["auto", "manual"] = "auto"
    rollback: tuple[RollbackCondition, ...] = ()


class Variant(StrictModel):
    name: Identifier
    weight: int = Field(ge=0, le=100)
    model_alias: str = "champion"
    """Registry alias served by this variant (`champion`, `challenger`, …)."""


class AB(StrictModel):
    kind: Literal["ab"]
    variants: tuple[Variant, ...] = Field(min_length=2)
    metric: Identifier | None = None
    """Business metric compared between the variants."""
    duration: Duration | None = None

    def violations(self) -> Iterator[Violation]:
        total = sum(v.weight for v in self.variants)
        if total != 100:
            yield Violation(
                ("variants",), "MLC353", f"A/B variant weights must sum to 100, not {total}"
            )
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            yield Violation(("variants",), "MLC354", "A/B variant names must be unique")


class Shadow(StrictModel):
    kind: Literal["shadow"]
    mirror_percent: int = Field(100, ge=1, le=100)
    """Share of live requests copied to the new version; its answers are discarded."""
    duration: Duration | None = None


class Recreate(StrictModel):
    kind: Literal["recreate"]


Strategy = Annotated[Canary | BlueGreen | AB | Shadow | Recreate, Field(discriminator="kind")]


class Autoscaling(StrictModel):
    min_replicas: int = Field(1, ge=0, le=INT32_MAX)
    max_replicas: int = Field(3, ge=1, le=INT32_MAX)
    """At most 2**31 - 1: Kubernetes and KServe hold replica counts in int32."""
    target_utilization: int = Field(70, ge=1, le=100)
    """Target CPU utilisation in percent (or concurrency for KServe)."""
    scale_to_zero: bool = False

    def violations(self) -> Iterator[Violation]:
        if self.min_replicas > self.max_replicas:
            yield Violation(
                ("min_replicas",),
                "MLC355",
                f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})",
            )
        if self.min_replicas == 0 and not self.scale_to_zero:
            yield Violation(
                ("min_replicas",),
                "MLC356",
                "min_replicas 0 means scale to zero",
                "set 'scale_to_zero: true' or min_replicas >= 1",
            )


class Batch(StrictModel):
    schedule: Cron
    input: str = Field(min_length=1)
    """What to score: a CSV or Parquet file or a folder of Parquet files (from the project)."""
    output: str = Field(min_length=1)
    """The folder the predictions, summary and drift report are published to."""
    alias: Identifier = "champion"
    """The registered model's alias that scores the batch."""
    id_column: str | None = None
    """An input column carried into the predictions as the row id (default: the row number)."""
    chunk_rows: int = Field(65536, ge=1, le=INT32_MAX)
    """Rows read, checked and scored at a time: memory stays bounded by this, not the input."""


class Parity(StrictModel):
    """How close the exported model must score to the original on the test split."""

    proba_atol: float = Field(1e-5, ge=0, le=1)
    """Classification: largest |difference| of any class probability (labels must all agree)."""
    atol: float = Field(1e-4, ge=0)
    """Regression: a row fails when |difference| > atol + rtol * |original|."""
    rtol: float = Field(1e-4, ge=0)
    quantized_proba_atol: float = Field(0.05, ge=0, le=1)
    """The same bounds for the dynamically quantised graph, which trades precision for size."""
    quantized_rtol: float = Field(0.05, ge=0)
    quantized_label_agreement: float = Field(0.98, ge=0, le=1)
    """Share of rows whose label the quantised graph must keep."""


class Edge(StrictModel):
    format: Literal["onnx"] = "onnx"
    quantize: Literal["none", "dynamic"] = "none"
    """`dynamic`: also ship an int8 dynamically quantised graph, checked with its own bounds."""
    opset: int = Field(17, ge=9, le=23)
    """ONNX opset of the exported graph (onnxruntime runs 9 to 23)."""
    parity: Parity = Parity()


class Serving(StrictModel):
    """How `mlc serve` (and the containers the cluster targets run) serves."""

    admin_token: SecretRef | None = None
    """Bearer token of the admin and rollout endpoints (off without one). `env:NAME` is read
    from the environment; other references are resolved into it by the orchestrator."""
    log_sample: float = Field(1.0, ge=0, le=1)
    """Share of requests written to the prediction log (0: no log)."""
    log_segment_rows: int = Field(1000, ge=1, le=10_000_000)
    """Rows after which a log segment is closed (and readable by `mlc monitor`)."""
    log_segment_seconds: Duration = 60
    """Age after which a log segment is closed, however few rows it holds."""
    reload_interval: Duration = 30
    """Seconds between registry polls for moved aliases (a new challenger starts a canary;
    0: load once at start-up)."""
    min_requests: int = Field(200, ge=1)
    """Candidate requests a canary bake needs before it is judged (fewer: inconclusive)."""
    max_batch_size: int = Field(1, ge=1, le=10_000)
    """Adaptive micro-batching: requests scored together, at most this many rows (1: off)."""
    max_latency_ms: float = Field(2.0, ge=0, le=1000)
    """How long a request may wait for others to join its batch."""


class Deployment(StrictModel):
    mode: Literal["online", "batch", "edge"] = "online"
    platform: Platform = "kserve"
    cloud: Cloud = "aws"
    region: str = Field("us-east-1", min_length=1)
    strategy: Strategy = Recreate(kind="recreate")
    autoscaling: Autoscaling = Autoscaling()
    resources: Resources = Resources()
    batch: Batch | None = None
    edge: Edge | None = None
    serving: Serving = Serving()

    def violations(self) -> Iterator[Violation]:
        for v in self.strategy.violations():
            yield v.under("strategy")
        for v in self.autoscaling.violations():
            yield v.under("autoscaling")
        expected_cloud = MANAGED_PLATFORMS.get(self.platform)
        if expected_cloud is not None and self.cloud != expected_cloud:
            yield Violation(
                ("platform",),
                "MLC357",
                f"platform '{self.platform}' runs on cloud '{expected_cloud}', not '{self.cloud}'",
            )
        if self.mode == "batch" and self.batch is None:
            yield Violation(
                ("batch",), "MLC358", "mode 'batch' needs 'batch' (schedule, input, output)"
            )
        if self.mode == "edge" and self.edge is None:
            yield Violation(("edge",), "MLC358", "mode 'edge' needs 'edge' (format)")
        if self.mode != "online" and self.strategy.kind != "recreate":
            yield Violation(
                ("strategy", "kind"),
                "MLC359",
                f"strategy '{self.strategy.kind}' needs mode 'online'",
            )
