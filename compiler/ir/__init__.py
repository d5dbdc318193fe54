"""The IR: a versioned, typed graph of steps joined by artifacts; the only thing targets read."""

from mlc.compiler.ir.build import build_ir, spec_hash
from mlc.compiler.ir.graph import IRGraph
from mlc.compiler.ir.model import (
    EXECUTED_KINDS,
    IR_VERSION,
    PIPELINE_KINDS,
    Artifact,
    ArtifactId,
    ArtifactType,
    IRError,
    Layer,
    Requirement,
    Resources,
    Step,
    StepId,
    StepKind,
)

__all__ = [
    "EXECUTED_KINDS",
    "IR_VERSION",
    "PIPELINE_KINDS",
    "Artifact",
    "ArtifactId",
    "ArtifactType",
    "IRError",
    "IRGraph",
    "Layer",
    "Requirement",
    "Resources",
    "Step",
    "StepId",
    "StepKind",
    "build_ir",
    "spec_hash",
]
