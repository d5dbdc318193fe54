"""Run the pipeline layer of a compiled spec step by step through the runtime (tests only)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from mlc.compiler.api import check
from mlc.compiler.ir.model import Layer
from mlc.runtime.context import StepContext
from mlc.runtime.steps import get

SKIP = {"register", "model_card"}


def ir_of(spec: Path, overrides: tuple[str, ...] = ()) -> Any:
    return check(spec, overrides).ir


def run_pipeline(
    ir: Any,
    root: Path,
    ctx: StepContext,
    until: str | None = None,
    params_patch: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run every pipeline step (in build order); return summaries by step id."""
    summaries: dict[str, Any] = {}
    for step in ir.steps:
        if step.layer != Layer.PIPELINE or step.kind.value in SKIP:
            continue
        params = {**step.params, **(params_patch or {}).get(step.id, {})}
        inputs = {n: str(root / a) for n, a in step.inputs.items()}
        outputs = {n: str(root / a) for n, a in step.outputs.items()}
        summaries[step.id] = get(step.kind.value)(params, inputs, outputs, ctx)
        if step.id == until:
            break
    return summaries


@functools.cache
def _reference(source: Path, kind: str) -> str:
    from mlc.compiler.ir.model import StepKind

    step = ir_of(source).first(StepKind(kind))
    if step is None:
        raise LookupError(f"{source} has no {kind} step")
    return json.dumps(step.params)


def complete(kind: str, params: dict[str, Any], spec: Path | None = None) -> dict[str, Any]:
    """`params` with the top-level keys it leaves out taken from the `kind` step of a real IR
    (the credit example's unless `spec` names another): the runtime reads every key the IR
    carries, so a test states what it is about and borrows the rest from the compiler."""
    source = spec or Path(__file__).resolve().parents[2] / "examples" / "credit" / "mlc.yaml"
    return {**json.loads(_reference(source, kind)), **params}
