"""`--target markdown`: a Markdown summary of the IR, as an out-of-tree plugin.

It realises the `model_card` step kind (the summary is a human-readable card of the whole
system) and reads nothing but the IR, like every target.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlc.compiler.ir import IRGraph, StepKind
from mlc.targets.base import Capabilities, EmitContext, Target, TargetOptions

__all__ = ["MarkdownOptions", "MarkdownTarget", "render_summary"]


class MarkdownOptions(TargetOptions):
    filename: str = "SUMMARY.md"
    """Name of the emitted file."""
    title: str | None = None
    """Heading of the summary (default: the system's name)."""
    include_operations: bool = True
    """List the operations layer (endpoints, monitors, budgets) as well as the pipeline."""


class MarkdownTarget(Target):
    name = "markdown"
    description = "A Markdown summary of the system: steps, artifacts and requirements."
    options_model = MarkdownOptions
    capabilities = Capabilities(realises=frozenset({StepKind.MODEL_CARD}))

    def emit(self, ir: IRGraph, ctx: EmitContext) -> Mapping[str, str | bytes]:
        options = ctx.options
        assert isinstance(options, MarkdownOptions)
        return {options.filename: render_summary(ir, options)}


def _cell(value: Any) -> str:
    text = ", ".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
    return (text or "-").replace("|", "\\|").replace("\n", " ")


def render_summary(ir: IRGraph, options: MarkdownOptions) -> str:
    """The summary text: deterministic, from the IR alone."""
    meta = ir.metadata
    lines = [f"# {options.title or ir.name}", ""]
    if meta.get("description"):
        lines += [str(meta["description"]), ""]
    lines += [
        f"- IR version: {ir.to_dict()['ir_version']}",
        f"- spec hash: `{str(meta.get('spec_hash', ''))[:12]}`",
        f"- owners: {_cell(sorted(meta.get('owners') or []))}",
        "",
        "## Steps",
        "",
        "| step | kind | layer | inputs | outputs | requires |",
        "|---|---|---|---|---|---|",
    ]
    for step in ir.steps:
        if step.layer.value == "operations" and not options.include_operations:
            continue
        lines.append(
            "| "
            + " | ".join(
                _cell(v)
                for v in (
                    step.id,
                    step.kind.value,
                    step.layer.value,
                    sorted(step.inputs.values()),
                    sorted(step.outputs.values()),
                    sorted({r.feature for r in step.requires}),
                )
            )
            + " |"
        )
    lines += ["", "## Artifacts", "", "| artifact | type | producer |", "|---|---|---|"]
    for artifact in ir.artifacts:
        if not options.include_operations and not any(
            s.id == artifact.producer for s in ir.steps if s.layer.value == "pipeline"
        ):
            continue
        lines.append(
            f"| {_cell(artifact.id)} | {_cell(artifact.type.value)} | {_cell(artifact.producer)} |"
        )
    return "\n".join(lines) + "\n"
