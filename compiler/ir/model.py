"""IR types: steps joined by typed artifacts, with their params, resources, retries and cache.

The IR is the contract between the front end and every target (built-in or plugin). It is
versioned (`IR_VERSION`): a change that removes or renames a field bumps the major number, and
`from_json` refuses IR of an unknown major version. What each step kind's `params` hold is
declared in `mlc.compiler.ir.params` (and checked by `IRGraph.from_dict`).

The types are frozen dataclasses, not pydantic models: every `mlc` command and every local run
builds an IR, and pydantic's model machinery costs more start-up than the rest of the IR code.
`from_dict` checks an IR read from a file field by field and raises `IRError` naming the path.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, NewType

IR_VERSION = "1.3"
"""See compiler/ir/CHANGELOG.md; step params per kind are declared in `mlc.compiler.ir.params`."""

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

EXECUTED_KINDS = PIPELINE_KINDS | {StepKind.BATCH_PREDICT, StepKind.EXPORT}
"""Steps a pipeline runner executes with the runtime step of the same kind: the pipeline layer
plus the operations steps that score a batch with, or package, the registered model."""


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


class IRError(Exception):
    """The IR is malformed (a programming error in a builder, or a bad IR file)."""


def _check_keys(data: Any, where: str, required: set[str], known: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise IRError(f"{where}: expected an object, got {type(data).__name__}")
    missing = sorted(required - set(data))
    if missing:
        raise IRError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(data) - known)
    if unknown:
        raise IRError(
            f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    return data


def _typed(value: Any, types: type | tuple[type, ...], where: str, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    # bool is an int subclass: an IR field typed int must not take true/false, nor the reverse.
    bad_bool = isinstance(value, bool) and types in (int, float, (int, float))
    if bad_bool or not isinstance(value, types):
        names = (
            types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
        )
        raise IRError(f"{where}: expected {names}{' or null' if optional else ''}, got {value!r}")
    return value


def _member(enum: type[Enum], value: Any, where: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in enum)
        raise IRError(f"{where}: {value!r} is not one of {allowed}") from None


def _str_map(value: Any, where: str) -> dict[str, str]:
    _typed(value, dict, where)
    for k, v in value.items():
        _typed(v, str, f"{where}.{k}")
    return dict(value)


@dataclass(frozen=True, slots=True)
class Resources:
    cpu: str | None = None
    memory: str | None = None
    gpu_count: int = 0
    gpu_type: str | None = None
    nodes: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu": self.cpu,
            "memory": self.memory,
            "gpu_count": self.gpu_count,
            "gpu_type": self.gpu_type,
            "nodes": self.nodes,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "resources") -> Resources:
        d = _check_keys(data, where, set(), _RESOURCE_FIELDS)
        return cls(
            cpu=_typed(d.get("cpu"), str, f"{where}.cpu", optional=True),
            memory=_typed(d.get("memory"), str, f"{where}.memory", optional=True),
            gpu_count=_typed(d.get("gpu_count", 0), int, f"{where}.gpu_count"),
            gpu_type=_typed(d.get("gpu_type"), str, f"{where}.gpu_type", optional=True),
            nodes=_typed(d.get("nodes", 1), int, f"{where}.nodes"),
        )


@dataclass(frozen=True, slots=True)
class Requirement:
    """A setting a step needs its target to honour (checked by the capabilities pass)."""

    feature: str
    """Capability name, e.g. `resources.gpu`, `strategy.canary`, `engine.spark`."""
    origin: str
    """Dotted spec key path that asked for it, used to locate diagnostics."""

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "origin": self.origin}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Requirement:
        d = _check_keys(data, where, {"feature", "origin"}, {"feature", "origin"})
        return cls(
            feature=_typed(d["feature"], str, f"{where}.feature"),
            origin=_typed(d["origin"], str, f"{where}.origin"),
        )


@dataclass(frozen=True, slots=True)
class Artifact:
    id: ArtifactId
    type: ArtifactType
    producer: StepId
    name: str
    """The producer's output name."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Type-specific facts, e.g. `columns` of a dataset or `metrics` of a metrics artifact."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (enum members as their values)."""
        return {
            "id": self.id,
            "type": self.type.value,
            "producer": self.producer,
            "name": self.name,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "artifact") -> Artifact:
        d = _check_keys(data, where, {"id", "type", "producer", "name"}, _ARTIFACT_FIELDS)
        return cls(
            id=ArtifactId(_typed(d["id"], str, f"{where}.id")),
            type=_member(ArtifactType, d["type"], f"{where}.type"),
            producer=StepId(_typed(d["producer"], str, f"{where}.producer")),
            name=_typed(d["name"], str, f"{where}.name"),
            meta=dict(_typed(d.get("meta", {}), dict, f"{where}.meta")),
        )


@dataclass(frozen=True, slots=True)
class Step:
    id: StepId
    kind: StepKind
    layer: Layer
    origin: str
    """Dotted spec key path this step comes from (for locating diagnostics)."""
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, ArtifactId] = field(default_factory=dict)
    outputs: dict[str, ArtifactId] = field(default_factory=dict)
    resources: Resources = Resources()
    retries: int = 0
    cache: bool = True
    timeout_s: float | None = None
    requires: tuple[Requirement, ...] = ()
    when: str | None = None
    """Condition on an upstream verdict, e.g. `gate.passed` (steps run only when it holds)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (enum members as their values, `requires` as a list)."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "layer": self.layer.value,
            "origin": self.origin,
            "params": self.params,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "resources": self.resources.to_dict(),
            "retries": self.retries,
            "cache": self.cache,
            "timeout_s": self.timeout_s,
            "requires": [r.to_dict() for r in self.requires],
            "when": self.when,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "step") -> Step:
        d = _check_keys(data, where, {"id", "kind", "layer", "origin"}, _STEP_FIELDS)
        requires = _typed(d.get("requires", []), (list, tuple), f"{where}.requires")
        timeout = _typed(d.get("timeout_s"), (int, float), f"{where}.timeout_s", optional=True)
        return cls(
            id=StepId(_typed(d["id"], str, f"{where}.id")),
            kind=_member(StepKind, d["kind"], f"{where}.kind"),
            layer=_member(Layer, d["layer"], f"{where}.layer"),
            origin=_typed(d["origin"], str, f"{where}.origin"),
            params=dict(_typed(d.get("params", {}), dict, f"{where}.params")),
            inputs={
                k: ArtifactId(v)
                for k, v in _str_map(d.get("inputs", {}), f"{where}.inputs").items()
            },
            outputs={
                k: ArtifactId(v)
                for k, v in _str_map(d.get("outputs", {}), f"{where}.outputs").items()
            },
            resources=Resources.from_dict(d.get("resources", {}), f"{where}.resources"),
            retries=_typed(d.get("retries", 0), int, f"{where}.retries"),
            cache=_typed(d.get("cache", True), bool, f"{where}.cache"),
            timeout_s=None if timeout is None else float(timeout),
            requires=tuple(
                Requirement.from_dict(r, f"{where}.requires[{i}]") for i, r in enumerate(requires)
            ),
            when=_typed(d.get("when"), str, f"{where}.when", optional=True),
        )


def _field_names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


_RESOURCE_FIELDS = _field_names(Resources)
_ARTIFACT_FIELDS = _field_names(Artifact)
_STEP_FIELDS = _field_names(Step)
