"""References: every column a step reads, gate metric and sensitive attribute resolves in the IR.

The spec models check the same names when a spec is validated; this pass checks the IR, which
is what targets see, so an IR built by a plugin or read back from JSON is held to the same rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mlc.compiler.diagnostics import Diagnostic
from mlc.compiler.ir import IRGraph, StepKind
from mlc.compiler.passes.base import PassContext


def _columns_of(ir: IRGraph, artifact_id: str) -> set[str]:
    if not ir.has_artifact(artifact_id):
        return set()
    return set(ir.artifact(artifact_id).meta.get("columns", ()))


def check_references(ir: IRGraph, ctx: PassContext) -> Iterator[Diagnostic]:
    for step in ir.steps_of(StepKind.FEATURES):
        known = _columns_of(ir, step.inputs.get("train", ""))
        known |= {d["name"] for d in step.params.get("derived", ())}
        for i, transform in enumerate(step.params.get("transforms", ())):
            for j, col in enumerate(transform.get("columns", ())):
                if col not in known:
                    yield ctx.diag(
                        "MLC201",
                        f"feature column '{col}' does not resolve",
                        f"features.transforms[{i}].columns[{j}]",
                    )
        if step.params.get("target") not in known:
            yield ctx.diag(
                "MLC201",
                f"target column '{step.params.get('target')}' does not resolve",
                "features.target",
            )
    metrics: set[str] = set()
    for step in ir.steps_of(StepKind.EVALUATE):
        for art in step.outputs.values():
            metrics |= set(ir.artifact(art).meta.get("metrics", ()))
    for step in ir.steps_of(StepKind.GATE):
        gates: list[dict[str, Any]] = step.params.get("gates", [])
        for i, gate in enumerate(gates):
            if gate["metric"] not in metrics:
                yield ctx.diag(
                    "MLC202",
                    f"gate metric '{gate['metric']}' is not computed by any evaluate step",
                    f"evaluation.gates[{i}].metric",
                    "computed: " + ", ".join(sorted(metrics)),
                )
    for step in ir.steps_of(StepKind.FAIRNESS):
        columns = _columns_of(ir, step.inputs.get("test", ""))
        for j, attr in enumerate(step.params.get("sensitive_attributes", ())):
            if attr not in columns:
                yield ctx.diag(
                    "MLC203",
                    f"sensitive attribute '{attr}' does not resolve",
                    f"governance.fairness.sensitive_attributes[{j}]",
                )
