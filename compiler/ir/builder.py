"""The machinery the section builders share: `IRBuilder`, the spec dumper, small helpers.

Deterministic: ids come from spec names, never from hashing or iteration order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlc.compiler.ir.model import (
    Artifact,
    ArtifactId,
    ArtifactType,
    Layer,
    Requirement,
    Resources,
    Step,
    StepId,
    StepKind,
)

if TYPE_CHECKING:
    # Only for annotations: generated IRs (tests, benchmarks, the local executor's callers) and
    # IR files read back must not pay for importing the spec models.
    from mlc.compiler.ir.params import Direction
    from mlc.specs import Spec
    from mlc.specs._base import Resources as SpecResources

IDENTITY_ROLES = ("pipeline", "training", "serving", "monitoring")


def spec_hash(spec: Spec, dumped: dict[str, Any] | None = None) -> str:
    """sha256 of the resolved spec's canonical JSON: equal for equal meaning, any layout.

    `dumped` is `spec.model_dump(mode="json", by_alias=True)` when the caller has it already.
    """
    if dumped is None:
        dumped = spec.model_dump(mode="json", by_alias=True)
    canonical = json.dumps(dumped, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def resources(res: SpecResources) -> Resources:
    return Resources(
        cpu=res.cpu,
        memory=res.memory,
        gpu_count=res.gpu.count if res.gpu else 0,
        gpu_type=res.gpu.type if res.gpu else None,
        nodes=res.nodes,
    )


class Dumper:
    """`model.model_dump(mode="json", by_alias=True)` of the spec's sub-models, from one dump.

    The spec is dumped once; each sub-model's part is found by walking the models and the dump
    side by side. Dumping a nested model on its own would build that model's serializer first
    (pydantic defers it), which cost more than the whole IR build.
    """

    def __init__(self, spec: Spec) -> None:
        self.dumped: dict[str, Any] = spec.model_dump(mode="json", by_alias=True)
        self._parts: dict[int, Any] = {}
        self._walk(spec, self.dumped)

    def _walk(self, value: Any, dumped: Any) -> None:
        from pydantic import BaseModel

        if isinstance(value, BaseModel):
            if not isinstance(dumped, dict):
                return
            self._parts[id(value)] = dumped
            for name, info in type(value).model_fields.items():
                key = info.serialization_alias or info.alias or name
                if key in dumped:
                    self._walk(getattr(value, name), dumped[key])
        elif isinstance(value, (list, tuple)) and isinstance(dumped, list):
            if len(value) == len(dumped):
                for item, part in zip(value, dumped, strict=True):
                    self._walk(item, part)
        elif isinstance(value, dict) and isinstance(dumped, dict):
            for key, item in value.items():
                if isinstance(key, str) and key in dumped:
                    self._walk(item, dumped[key])

    def __call__(self, model: Any) -> Any:
        if model is None:
            return None
        part = self._parts.get(id(model))
        if part is None:
            return model.model_dump(mode="json", by_alias=True)
        return copy_json(part)


def copy_json(value: Any) -> Any:
    """A deep copy of JSON data (steps own their params)."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


class IRBuilder:
    """Collects steps and artifacts, then freezes them into an `IRGraph`."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.artifacts: list[Artifact] = []

    def add(
        self,
        step_id: str,
        kind: StepKind,
        origin: str,
        *,
        layer: Layer = Layer.PIPELINE,
        params: Mapping[str, Any] | None = None,
        inputs: dict[str, str] | None = None,
        outputs: dict[str, tuple[ArtifactType, dict[str, Any]]] | None = None,
        resources: Resources | None = None,
        retries: int = 0,
        cache: bool = True,
        timeout_s: float | None = None,
        requires: list[tuple[str, str]] | None = None,
        when: str | None = None,
    ) -> dict[str, str]:
        """Add a step; return its outputs as name -> artifact id (`<step>.<name>`)."""
        out_ids: dict[str, ArtifactId] = {}
        for name, (atype, meta) in (outputs or {}).items():
            art = ArtifactId(f"{step_id}.{name}")
            out_ids[name] = art
            self.artifacts.append(
                Artifact(id=art, type=atype, producer=StepId(step_id), name=name, meta=meta)
            )
        reqs = sorted({(f, o) for f, o in (requires or [])})
        self.steps.append(
            Step(
                id=StepId(step_id),
                kind=kind,
                layer=layer,
                origin=origin,
                params=dict(params or {}),
                inputs={k: ArtifactId(v) for k, v in (inputs or {}).items()},
                outputs=out_ids,
                resources=resources or Resources(),
                retries=retries,
                cache=cache,
                timeout_s=timeout_s,
                requires=tuple(Requirement(feature=f, origin=o) for f, o in reqs),
                when=when,
            )
        )
        return dict(out_ids)


def direction(metric: str) -> Direction:
    """`higher` or `lower` (is better), from the spec's one metric table: runtime steps and
    targets compare with the direction the IR carries, never with a list of their own."""
    from mlc.specs.evaluation import metric_direction

    return metric_direction(metric)


def directed(entry: Any) -> Any:
    """A metric entry of the params (gate, champion, fairness, monitor, trigger) plus its
    metric's `direction`; `entry` is a spec model's dump (None stays None)."""
    if entry is None:
        return None
    return {**entry, "direction": direction(str(entry["metric"]))}


class SpecBuilder(IRBuilder):
    """An `IRBuilder` for one spec, with the dump of that spec that section builders copy."""

    def __init__(self, spec: Spec) -> None:
        super().__init__()
        self.dump = Dumper(spec)
