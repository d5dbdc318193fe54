"""IR types: steps joined by typed artifacts, with their params, resources, retries and cache.

The IR is the contract between the front end and every target (built-in or plugin). It is
versioned (`IR_VERSION`): a change that removes or renames a field bumps the major number, and
`from_json` refuses IR of an unknown major version.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, NewType

from pydantic import BaseModel, ConfigDict, Field

IR_VERSION = "1.0"

StepId = NewType("StepId", str)
ArtifactId = NewType("ArtifactId", str)


class Layer(str, Enum):
    PIPELINE = "pipeline"
    """Steps a pipeline target (local, kfp) executes: ingest … model card."""
    OPERATIONS = "operations"
    """What hangs off the model: endpoints, batch jobs, monitors, infrastructure."""


class StepKind(str, Enum):
    INGEST = "ingest"
    VALIDATE = "validate"
    SPLIT = "split"
    FEATURES = "features"
    TUNE = "tune"
    TRAIN = "train"
    EVALUATE = "evaluate"
    FAIRNESS = "fairness"
    EXPLAIN = "explain"
    GATE = "gate"
    REGISTER = "register"
    MODEL_CARD = "model_card"
    DEPLOY = "deploy"
    BATCH_PREDICT = "batch_predict"
    EXPORT = "export"
    MONITOR = "monitor"
    ALERTS = "alerts"
    RETRAIN_TRIGGER = "retrain_trigger"
    STORAGE = "storage"
    IDENTITY = "identity"
    BUDGET = "budget"


PIPELINE_KINDS = frozenset(
    {
        StepKind.INGEST,
        StepKind.VALIDATE,
        StepKind.SPLIT,
        StepKind.FEATURES,
        StepKind.TUNE,
        StepKind.TRAIN,
        StepKind.EVALUATE,
        StepKind.FAIRNESS,
        StepKind.EXPLAIN,
        StepKind.GATE,
        StepKind.REGISTER,
        StepKind.MODEL_CARD,
    }
)


class ArtifactType(str, Enum):
    DATASET = "dataset"
    TRANSFORM = "transform"
    PARAMS = "params"
    MODEL = "model"
    METRICS = "metrics"
    REPORT = "report"
    VERDICT = "verdict"
    MODEL_VERSION = "model_version"
    ENDPOINT = "endpoint"
    PREDICTIONS = "predictions"
    SIGNAL = "signal"
    BUCKET = "bucket"
    IDENTITY = "identity"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Resources(_Frozen):
    cpu: str | None = None
    memory: str | None = None
    gpu_count: int = 0
    gpu_type: str | None = None
    nodes: int = 1


class Requirement(_Frozen):
    """A setting a step needs its target to honour (checked by the capabilities pass)."""

    feature: str
    """Capability name, e.g. `resources.gpu`, `strategy.canary`, `engine.spark`."""
    origin: str
    """Dotted spec key path that asked for it, used to locate diagnostics."""


class Artifact(_Frozen):
    id: ArtifactId
    type: ArtifactType
    producer: StepId
    name: str
    """The producer's output name."""
    meta: dict[str, Any] = Field(default_factory=dict)
    """Type-specific facts, e.g. `columns` of a dataset or `metrics` of a metrics artifact."""


class Step(_Frozen):
    id: StepId
    kind: StepKind
    layer: Layer
    origin: str
    """Dotted spec key path this step comes from (for locating diagnostics)."""
    params: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, ArtifactId] = Field(default_factory=dict)
    outputs: dict[str, ArtifactId] = Field(default_factory=dict)
    resources: Resources = Resources()
    retries: int = 0
    cache: bool = True
    timeout_s: float | None = None
    requires: tuple[Requirement, ...] = ()
    when: str | None = None
    """Condition on an upstream verdict, e.g. `gate.passed` (steps run only when it holds)."""
