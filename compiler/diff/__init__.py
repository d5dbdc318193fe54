"""Semantic diff of two specs: per section and facet, risk-classified, with output and cost deltas.

Pieces: `sides` (a file or a git ref), `compare` (tree diff of resolved specs), `rules` (risk rules
as data in `rules.yaml`), `outputs` (targets emitted in memory and compared), `report` (the
`DiffReport` and `diff_specs`), `render` (text, Markdown, JSON).
"""

from mlc.compiler.diff.render import render_json, render_markdown, render_text
from mlc.compiler.diff.report import Change, DiffReport, diff_sides, diff_specs

__all__ = [
    "Change",
    "DiffReport",
    "diff_sides",
    "diff_specs",
    "render_json",
    "render_markdown",
    "render_text",
]
