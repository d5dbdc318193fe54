"""Pictures of the IR: Mermaid and Graphviz DOT text (PNG/SVG through Graphviz's `dot`)."""

from __future__ import annotations

import shutil
import subprocess

from mlc.compiler.diagnostics import Diagnostic, DiagnosticError
from mlc.compiler.ir import IRGraph, Layer


def _edges(ir: IRGraph) -> list[tuple[str, str, str]]:
    edges = set()
    for step in ir.steps:
        for art in step.inputs.values():
            if ir.has_artifact(art):
                a = ir.artifact(art)
                edges.add((a.producer, step.id, a.type.value))
    return sorted(edges)


def _node_id(step_id: str) -> str:
    return step_id.replace("-", "_").replace(".", "_")


def mermaid(ir: IRGraph) -> str:
    """A Mermaid flowchart: pipeline steps as boxes, operations as rounded nodes."""
    lines = ["flowchart TD"]
    for step in ir.steps:
        label = f"{step.id}<br/><small>{step.kind.value}</small>"
        shape = f'["{label}"]' if step.layer is Layer.PIPELINE else f'("{label}")'
        lines.append(f"  {_node_id(step.id)}{shape}")
    for src, dst, kind in _edges(ir):
        lines.append(f"  {_node_id(src)} -->|{kind}| {_node_id(dst)}")
    lines.append("  classDef ops fill:#eef,stroke:#66a")
    ops = [_node_id(s.id) for s in ir.layer(Layer.OPERATIONS)]
    if ops:
        lines.append(f"  class {','.join(ops)} ops")
    return "\n".join(lines) + "\n"


def dot(ir: IRGraph) -> str:
    """Graphviz DOT text."""
    lines = [f'digraph "{ir.name}" {{', "  rankdir=TB;", '  node [fontname="Helvetica"];']
    for step in ir.steps:
        shape = "box" if step.layer is Layer.PIPELINE else "ellipse"
        lines.append(f'  "{step.id}" [shape={shape}, label="{step.id}\\n({step.kind.value})"];')
    for src, dst, kind in _edges(ir):
        lines.append(f'  "{src}" -> "{dst}" [label="{kind}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_image(ir: IRGraph, fmt: str) -> bytes:
    """PNG or SVG bytes through Graphviz; a clear error when `dot` is not installed."""
    exe = shutil.which("dot")
    if exe is None:
        raise DiagnosticError(
            [
                Diagnostic(
                    "MLC050",
                    f"rendering {fmt.upper()} needs Graphviz's 'dot', which is not installed",
                    hint="apt-get install graphviz, or use --as mermaid or dot",
                )
            ]
        )
    proc = subprocess.run(
        [exe, f"-T{fmt}"], input=dot(ir).encode(), capture_output=True, check=False, timeout=60
    )
    if proc.returncode != 0:
        raise DiagnosticError(
            [
                Diagnostic(
                    "MLC051", f"Graphviz failed: {proc.stderr.decode(errors='replace').strip()}"
                )
            ]
        )
    return proc.stdout
