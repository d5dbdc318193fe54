"""model_card: a Markdown and JSON model card from the spec's governance facts and the run.

Sections: model details (owners, approvers, risk, compliance), intended use and what is out of
scope, data (its content hash), metrics, the gate verdict check by check, per-group fairness,
explanations (top features), limitations and ethical considerations, and lineage (spec hash,
data hash, code version, run, the hash of the candidate model (the `model` input: the model
the gate judged and register ships) and any registered version of that very model). Reports
from other steps are rendered generically (tables for mappings and lists of records), so a new
field in a report shows up without a change here. Register logs the card into the registered
version's MLflow run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError

if TYPE_CHECKING:
    from mlc.compiler.ir.params import ModelCardParams

VERSION = "1"
STEP = "model_card"
CARD_VERSION = "1"


def _doc(inputs: dict[str, str], name: str) -> Any:
    loc = inputs.get(name)
    if loc is None or not artifacts.exists(loc):
        return None
    docs = sorted(p for p in Path(loc).glob("*.json") if p.name != artifacts.META)
    if not docs:
        return artifacts.read_meta(loc)
    return json.loads(docs[0].read_text())


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "—"
    text = str(value) if _scalar(value) else json.dumps(value, sort_keys=True, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines


def render_value(value: Any) -> list[str]:
    """Markdown for a report value: a table where the shape allows, else a JSON block."""
    if isinstance(value, dict) and value and all(_scalar(v) for v in value.values()):
        return _table(["name", "value"], [[k, v] for k, v in sorted(value.items())])
    if (
        isinstance(value, dict)
        and value
        and all(isinstance(v, dict) and all(_scalar(x) for x in v.values()) for v in value.values())
    ):
        cols = sorted({c for v in value.values() for c in v})
        return _table(
            ["", *cols], [[k, *(v.get(c) for c in cols)] for k, v in sorted(value.items())]
        )
    if (
        isinstance(value, list)
        and value
        and all(isinstance(r, dict) and all(_scalar(x) for x in r.values()) for r in value)
    ):
        cols = list(dict.fromkeys(c for r in value for c in r))
        return _table(cols, [[r.get(c) for c in cols] for r in value])
    if _scalar(value):
        return [_fmt(value)]
    return ["```json", json.dumps(value, indent=2, sort_keys=True, default=str), "```"]


def _report_section(title: str, doc: Any) -> list[str]:
    lines = [f"## {title}", ""]
    if doc is None:
        return [*lines, "Not produced in this run.", ""]
    if isinstance(doc, dict):
        for key, value in doc.items():
            if _scalar(value):
                lines.append(f"- **{key}**: {_fmt(value)}")
        nested = {k: v for k, v in doc.items() if not _scalar(v)}
        if any(_scalar(v) for v in doc.values()):
            lines.append("")
        for key, value in nested.items():
            lines += [f"### {key}", "", *render_value(value), ""]
        return lines
    return [*lines, *render_value(doc), ""]


def _model_hash(inputs: dict[str, str]) -> str | None:
    """The content hash of the candidate model, the one the gate judged and register ships
    (a run holds other models too: the trained one before mitigation)."""
    loc = inputs.get("model")
    if loc is None or not artifacts.exists(loc):
        return None
    found = artifacts.read_meta(loc).get("hash")
    return str(found) if found else None


def build_card(params: ModelCardParams, inputs: dict[str, str], ctx: StepContext) -> dict[str, Any]:
    """The card as a JSON-ready dict (also the source of the Markdown)."""
    from mlc.runtime import lineage
    from mlc.runtime.steps.register import metrics_of

    card = params["card"]
    metrics_doc = _doc(inputs, "metrics")
    verdict = _doc(inputs, "verdict") or {}
    model_hash = _model_hash(inputs)
    model_name = params["model_name"]
    registered = [
        r
        for r in lineage.query(ctx.state, model_name)
        if model_hash is not None and r.get("model_hash") == model_hash
    ]
    return {
        "card_version": CARD_VERSION,
        "model": {
            "name": model_name,
            "description": params["description"],
            "task": params["task"],
            "owners": list(params["owners"]),
            "approvers": list(params["approvers"]),
            "risk": params["risk"],
            "compliance": list(params["compliance"]),
            "contact": card["contact"],
        },
        "intended_use": card["intended_use"],
        "out_of_scope": card["out_of_scope"],
        "limitations": card["limitations"],
        "ethical_considerations": card["ethical_considerations"],
        "data": {
            "hash": ctx.extra.get("data_hash"),
            "datasets": ctx.extra.get("data_hashes") or {},
        },
        "metrics": metrics_of(metrics_doc) if metrics_doc is not None else {},
        "evaluation": metrics_doc,
        "verdict": {
            "passed": bool(verdict.get("passed")) if isinstance(verdict, dict) else None,
            "checks": verdict.get("checks", []) if isinstance(verdict, dict) else [],
        },
        "fairness": _doc(inputs, "fairness"),
        "explanations": _doc(inputs, "explain"),
        "lineage": {
            "run_id": ctx.run_id,
            "spec_hash": ctx.extra.get("spec_hash"),
            "data_hash": ctx.extra.get("data_hash"),
            "code_version": ctx.extra.get("code_version"),
            "model_hash": model_hash,
            "registered_versions": [
                {k: r.get(k) for k in ("version", "run_id", "aliases")} for r in registered
            ],
        },
    }


def render_markdown(doc: dict[str, Any]) -> str:
    """The card as Markdown (GitHub-flavoured tables)."""
    model = doc["model"]
    lines = [f"# Model card: {model['name']}", ""]
    if model.get("description"):
        lines += [model["description"], ""]
    lines += [
        "## Model details",
        "",
        f"- **Task**: {_fmt(model.get('task'))}",
        f"- **Owners**: {', '.join(model['owners']) or '—'}",
        f"- **Approvers**: {', '.join(model['approvers']) or '—'}",
        f"- **Risk**: {_fmt(model.get('risk'))}",
        f"- **Compliance**: {', '.join(model['compliance']) or '—'}",
        f"- **Contact**: {model.get('contact') or '—'}",
        "",
    ]
    for title, key in (("Intended use", "intended_use"), ("Out of scope", "out_of_scope")):
        lines += [f"## {title}", "", doc.get(key) or "Not stated.", ""]
    data = doc["data"]
    lines += ["## Data", "", f"- **Content hash**: `{data.get('hash') or '—'}`"]
    lines += [f"- `{name}`: `{h}`" for name, h in sorted(data.get("datasets", {}).items())]
    lines += ["", "## Metrics", ""]
    lines += render_value(doc["metrics"]) if doc["metrics"] else ["No metrics."]
    verdict = doc["verdict"]
    state = {True: "PASSED", False: "FAILED", None: "unknown"}[verdict.get("passed")]
    lines += ["", "## Gate verdict", "", f"**{state}**", ""]
    if verdict.get("checks"):
        lines += [*render_value(verdict["checks"]), ""]
    lines += _report_section("Fairness", doc.get("fairness"))
    lines += _report_section("Explanations", doc.get("explanations"))
    for title, key in (
        ("Limitations", "limitations"),
        ("Ethical considerations", "ethical_considerations"),
    ):
        lines += [f"## {title}", "", doc.get(key) or "Not stated.", ""]
    lin = doc["lineage"]
    lines += [
        "## Lineage",
        "",
        f"- **Run**: `{lin.get('run_id')}`",
        f"- **Spec hash**: `{lin.get('spec_hash') or '—'}`",
        f"- **Data hash**: `{lin.get('data_hash') or '—'}`",
        f"- **Code version**: {lin.get('code_version') or '—'}",
    ]
    lines.append(f"- **Model hash**: `{lin.get('model_hash') or '—'}`")
    for reg in lin.get("registered_versions", []):
        lines.append(
            f"- **Registered**: version {reg['version']} "
            f"(aliases: {', '.join(reg.get('aliases') or []) or '—'})"
        )
    return "\n".join(lines).rstrip() + "\n"


def run(
    params: ModelCardParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Write `card.md` and `card.json` into the `card` output."""
    if "card" not in outputs:
        raise StepError(STEP, "missing output 'card'", "pass --outputs card=LOCATION")
    if "metrics" not in inputs or not artifacts.exists(inputs["metrics"]):
        raise StepError(
            STEP, "input 'metrics' is missing or incomplete", "run the evaluate step first"
        )
    doc = build_card(params, inputs, ctx)
    markdown = render_markdown(doc)
    artifacts.save_text(outputs["card"], "card.md", markdown)
    artifacts.save_json(
        outputs["card"], "card", doc, "report", format="markdown", files=["card.md", "card.json"]
    )
    return {"card": "card.md", "passed": doc["verdict"]["passed"], "metrics": len(doc["metrics"])}
