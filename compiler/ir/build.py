"""Spec -> IR: one builder per section, called in pipeline order over one `SpecBuilder`.

Each section builder takes the spec, the builder and the artifacts of the sections before it,
adds its steps, and returns the artifacts later sections consume. Deterministic: ids come from
spec names, never from hashing or iteration order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlc.compiler.ir.build_data import build_data
from mlc.compiler.ir.build_evaluation import build_evaluation
from mlc.compiler.ir.build_features import build_features
from mlc.compiler.ir.build_feedback import build_feedback
from mlc.compiler.ir.build_operations import IDENTITY_ROLES, build_operations
from mlc.compiler.ir.build_training import build_training
from mlc.compiler.ir.builder import IRBuilder, SpecBuilder, spec_hash
from mlc.compiler.ir.graph import IRGraph

if TYPE_CHECKING:
    # Only for annotations: generated IRs (tests, benchmarks, the local executor's callers) and
    # IR files read back must not pay for importing the spec models.
    from mlc.specs import Spec

__all__ = ["IDENTITY_ROLES", "IRBuilder", "build_ir", "spec_hash"]


def build_ir(spec: Spec) -> IRGraph:
    """Build the IR of a validated spec."""
    builder = SpecBuilder(spec)
    data = build_data(spec, builder)
    transform = build_features(spec, builder, data)
    trained = build_training(spec, builder, data, transform)
    registered = build_evaluation(spec, builder, data, trained)
    signal = build_operations(spec, builder, data, registered)
    build_feedback(spec, builder, signal)
    dump = builder.dump
    deployment = spec.deployment
    metadata = {
        "description": spec.description,
        "owners": sorted(spec.owners),
        "tags": dict(sorted(spec.tags.items())),
        "api_version": spec.api_version,
        "spec_hash": spec_hash(spec, dump.dumped),
    }
    settings = {
        "governance": dump(spec.governance),
        "security": dump(spec.security),
        "budgets": dump(spec.budgets),
        "deployment": {
            "cloud": deployment.cloud if deployment else "onprem",
            "region": deployment.region if deployment else None,
        },
        "overridable": sorted(spec.overridable),
        "tracking": dump(spec.tracking),
        "target_options": {k: spec.targets[k] for k in sorted(spec.targets)},
    }
    return IRGraph(spec.name, metadata, settings, builder.steps, builder.artifacts)
