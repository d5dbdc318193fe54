"""Renderers of a `DiffReport`: text (rich, for terminals), Markdown (a PR comment) and JSON."""

from __future__ import annotations

import io
import json
from typing import Any

from mlc.compiler.diff.report import DiffReport
from mlc.compiler.ir import IRGraph

RISK_MARK = {"high": "HIGH", "medium": "MEDIUM", "low": "low", "none": "none"}


def _value(value: Any, limit: int = 80) -> str:
    if value is None:
        return "—"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _md_code(text: str) -> str:
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def _money(value: float) -> str:
    sign = "+" if value > 0.005 else "-" if value < -0.005 else "±"
    return f"{sign}${abs(value):,.2f}"


def render_json(report: DiffReport) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _headline(report: DiffReport) -> str:
    counts = report.counts()
    if not report.changes:
        parts = ["no semantic change"]
    else:
        parts = [
            f"risk {RISK_MARK[report.highest_risk]}: {counts['high']} high, "
            f"{counts['medium']} medium, {counts['low']} low"
        ]
    delta = report.cost_delta()
    if delta is not None:
        parts.append(f"cost {_money(delta['total'])}/month")
    if report.policy_violations:
        parts.append(f"{len(report.policy_violations)} policy violation(s)")
    if not report.base_valid:
        parts.append("base does not validate")
    if not report.head_valid:
        parts.append("head does not validate")
    return " · ".join(parts)


def mermaid_changed_steps(report: DiffReport) -> str:
    """Mermaid flowchart of the head pipeline with added and changed steps highlighted."""
    ir: IRGraph | None = report.head_ir
    if ir is None:
        return ""
    status = {s.step: s.kind for s in report.steps}
    ids: dict[str, str] = {
        str(s.id): "s_" + "".join(c if c.isalnum() else "_" for c in s.id) for s in ir.steps
    }
    lines = ["flowchart LR"]
    for step in ir.steps:
        mark = status.get(step.id)
        label = step.id + (f" ({mark})" if mark else "")
        lines.append(f'  {ids[step.id]}["{label}"]')
    for step in ir.steps:
        for up in ir.upstream(step.id):
            lines.append(f"  {ids[up.id]} --> {ids[step.id]}")
    removed = [s.step for s in report.steps if s.kind == "removed"]
    for i, sid in enumerate(removed):
        lines.append(f'  r_{i}["{sid} (removed)"]:::removed')
    lines.append("  classDef changed fill:#fff3b0,stroke:#b08800")
    lines.append("  classDef added fill:#d4f8d4,stroke:#1a7f37")
    lines.append("  classDef removed fill:#ffd8d8,stroke:#cf222e,stroke-dasharray:4")
    for kind in ("changed", "added"):
        marked = [ids[s] for s, k in sorted(status.items()) if k == kind and s in ids]
        if marked:
            lines.append(f"  class {','.join(marked)} {kind}")
    return "\n".join(lines) + "\n"


def render_markdown(report: DiffReport) -> str:
    """A PR comment: headline, summary table, folded details, Mermaid graph, outputs, cost."""
    out = [
        f"## mlc diff: {_md_code(report.base_label)} → {_md_code(report.head_label)}",
        "",
        f"**{_headline(report)}**",
        "",
    ]
    if not report.changes:
        out += ["No semantic change: the resolved specs mean the same.", ""]
    else:
        out += ["| risk | change | old → new | rule |", "|---|---|---|---|"]
        for c in report.changes:
            out.append(
                f"| {RISK_MARK[c.risk]} | {c.kind} {_md_code(c.path)} | "
                f"{_md_code(_value(c.old, 40))} → {_md_code(_value(c.new, 40))} | "
                f"{c.rule} |"
            )
        out.append("")
        out += [
            f"<details><summary>Details of {len(report.changes)} change(s), by facet</summary>",
            "",
        ]
        for facet in sorted({c.facet for c in report.changes}):
            out += [f"#### {facet}", ""]
            for c in (c for c in report.changes if c.facet == facet):
                where = " · ".join(
                    f"{side} {_md_code(str(loc))}"
                    for side, loc in (("base", c.base_location), ("head", c.head_location))
                    if loc
                )
                out.append(
                    f"- **{RISK_MARK[c.risk]}** {_md_code(c.path)} {c.kind}: "
                    f"{_md_code(_value(c.old))} → {_md_code(_value(c.new))}  "
                )
                out.append(f"  rule `{c.rule}`: {c.message}" + (f"  \n  {where}" if where else ""))
            out.append("")
        out += ["</details>", ""]
    if report.steps:
        out += [
            f"<details><summary>Changed steps ({len(report.steps)})</summary>",
            "",
            "```mermaid",
            mermaid_changed_steps(report).rstrip(),
            "```",
            "",
        ]
        for s in report.steps:
            fields = f" ({', '.join(s.fields)})" if s.fields else ""
            out.append(f"- {_md_code(s.step)} {s.kind}{fields}")
        out += ["", "</details>", ""]
    if report.targets:
        out += ["### Target outputs", ""]
        if report.files:
            out += ["| target | file | change | summary |", "|---|---|---|---|"]
            out += [
                f"| {f.target} | {_md_code(f.path)} | {f.kind} | {f.summary} |"
                for f in report.files
            ]
        else:
            out.append("No output file changes for: " + ", ".join(report.targets) + ".")
        out.append("")
    delta = report.cost_delta()
    if delta is not None and report.base_cost and report.head_cost:
        out += [
            "### Estimated cost (USD/month)",
            "",
            "| item | base | head | delta |",
            "|---|---:|---:|---:|",
        ]
        for name, d in delta.items():
            if name == "total":
                continue
            a, b = report.base_cost.item(name), report.head_cost.item(name)
            out.append(
                f"| {name} | {a.monthly_usd if a else 0:,.2f} | "
                f"{b.monthly_usd if b else 0:,.2f} | {_money(d)} |"
            )
        out.append(
            f"| **total** | {report.base_cost.monthly_usd:,.2f} | "
            f"{report.head_cost.monthly_usd:,.2f} | **{_money(delta['total'])}** |"
        )
        out += ["", f"Prices: {report.head_cost.pricing}.", ""]
    for title, diags in (
        ("Policy violations", report.policy_violations),
        (
            "Base diagnostics (base does not validate; raw data compared)",
            report.base_diagnostics if not report.base_valid else [],
        ),
        (
            "Head diagnostics",
            [d for d in report.head_diagnostics if d not in report.policy_violations],
        ),
    ):
        if diags:
            out += [f"### {title}", "", "```"] + [d.render() for d in diags] + ["```", ""]
    return "\n".join(out).rstrip() + "\n"


def render_text(report: DiffReport, width: int = 110) -> str:
    """A terminal view (rich tables); colour only when written to a terminal by the caller."""
    from rich.console import Console
    from rich.table import Table

    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, highlight=False, markup=False)
    console.print(f"mlc diff {report.base_label} -> {report.head_label}")
    console.print(_headline(report))
    if report.changes:
        table = Table(show_lines=False)
        for col in ("risk", "change", "old -> new", "rule", "where (head)"):
            table.add_column(col, overflow="fold")
        for c in report.changes:
            loc = c.head_location or c.base_location
            table.add_row(
                RISK_MARK[c.risk],
                f"{c.kind} {c.path}",
                f"{_value(c.old, 30)} -> {_value(c.new, 30)}",
                c.rule,
                str(loc) if loc else "",
            )
        console.print(table)
    for f in report.files:
        console.print(f"{f.target}: {f.kind} {f.path} ({f.summary})")
    delta = report.cost_delta()
    if delta is not None:
        console.print(
            "cost delta (USD/month): " + ", ".join(f"{k} {_money(v)}" for k, v in delta.items())
        )
    for d in report.policy_violations:
        console.print(d.render())
    if not report.base_valid:
        console.print("base does not validate:")
        for d in report.base_diagnostics:
            console.print(d.render())
    return buf.getvalue()
