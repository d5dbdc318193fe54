"""Run the pipeline layer of a compiled spec step by step through the runtime (tests only)."""

from __future__ import annotations

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
