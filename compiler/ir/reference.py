"""Generate `compiler/ir/REFERENCE.md`: every step kind's params, inputs and outputs.

    python -m mlc.compiler.ir.reference > compiler/ir/REFERENCE.md
    python -m mlc.compiler.ir.reference --write

Params types, key types and docs come from `mlc.compiler.ir.params`; defaults come from the
spec models (the one place they live), never from this file; inputs, outputs and the operations
graph come from building the IR of a few small specs that together reach every step kind, so the
document shows what the builder really emits. `tests/compiler/test_ir_reference.py` fails when the
committed file is stale.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlc.compiler.ir.model import IR_VERSION, PIPELINE_KINDS, Layer, StepKind
from mlc.compiler.ir.params import PARAMS_BY_KIND, SPEC_MODELS, Doc
from mlc.compiler.ir.params_check import type_name, typeddict_fields

REFERENCE = Path(__file__).with_name("REFERENCE.md")
REGENERATE = "python -m mlc.compiler.ir.reference --write"

_BASE: dict[str, Any] = {
    "name": "reference",
    "data": {
        "sources": [
            {"name": "main", "format": "csv", "path": "main.csv"},
            {"name": "extra", "format": "parquet", "path": "extra.parquet", "join_on": ["id"]},
        ],
        "contract": {
            "columns": {
                "id": {"dtype": "int"},
                "x": {"dtype": "float"},
                "group": {"dtype": "category"},
                "y": {"dtype": "int"},
            }
        },
    },
    "features": {"target": "y", "selection": {"exclude": ["id", "group"]}},
    "training": {"model": {"name": "LogisticRegression"}},
    "tuning": {
        "objective": {"metric": "accuracy"},
        "search_space": {"C": {"type": "float", "low": 0.01, "high": 1.0}},
        "trials": 2,
    },
    "evaluation": {
        "metrics": ["accuracy"],
        "gates": [{"metric": "accuracy", "op": ">=", "threshold": 0.5}],
    },
    "governance": {
        "fairness": {"sensitive_attributes": ["group"], "mitigation": "threshold_optimizer"},
        "explainability": {},
    },
    "deployment": {},
    "monitoring": {
        "drift": {},
        "alerts": [{"name": "team", "channel": "email", "target": "team@example.com"}],
    },
    "budgets": {"training_usd": 10},
    "feedback": {"triggers": [{"kind": "drift"}]},
}
"""A small spec reaching most step kinds; `_variants` change it to reach the rest, and the
optional inputs and outputs."""


_PORT_NOTES = {StepKind.VALIDATE: "one dataset per source, named by the source"}
"""Inputs whose names come from the spec rather than the builder."""


def _variants() -> Iterator[dict[str, Any]]:
    yield _BASE
    batch = json.loads(json.dumps(_BASE))
    batch["data"]["split"] = {"validation_size": 0.2}
    del batch["tuning"]
    batch["governance"]["fairness"]["mitigation"] = "none"
    batch["deployment"] = {
        "mode": "batch",
        "batch": {"schedule": "@daily", "input": "in.csv", "output": "out.csv"},
    }
    yield batch
    edge = json.loads(json.dumps(_BASE))
    edge["deployment"] = {"mode": "edge", "edge": {}}
    del edge["monitoring"]
    yield edge


def _irs() -> list[Any]:
    from mlc.compiler.ir.build import build_ir
    from mlc.specs import Spec

    return [build_ir(Spec.model_validate(raw)) for raw in _variants()]


def _spec_model(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _model_default(model: Any, field: str) -> str:
    from pydantic import BaseModel

    info = model.model_fields.get(field)
    if info is None:
        return "derived"
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "its own defaults"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value)}`"


def _spec_default(path: str) -> str:
    """Default of the spec field at dotted `path` (e.g. `training.seed`)."""
    from pydantic import BaseModel

    from mlc.specs import Spec

    model: Any = Spec
    *parents, last = path.split(".")
    for part in parents:
        annotation = model.model_fields[part].annotation
        candidates = [annotation, *typing.get_args(annotation)]
        model = next(c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel))
    return _model_default(model, last)


def _doc(meta: tuple[Any, ...]) -> Doc:
    for item in meta:
        if isinstance(item, Doc):
            return item
    raise TypeError("a params key has no Doc")


def _nested(tp: Any) -> Iterator[Any]:
    """TypedDicts used inside type `tp`, in order."""
    if isinstance(tp, type) and typing.is_typeddict(tp):
        yield tp
        return
    for arg in typing.get_args(tp):
        yield from _nested(arg)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(tp: Any) -> list[str]:
    model = _spec_model(SPEC_MODELS[tp]) if tp in SPEC_MODELS else None
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for key, (hint, required, meta) in typeddict_fields(tp).items():
        doc = _doc(meta)
        if doc.spec is not None:
            default = _spec_default(doc.spec) + f" (`{doc.spec}`)"
        elif model is not None:
            default = _model_default(model, key)
        elif any(True for _ in _nested(hint)):
            default = "from the spec (see the type)"
        else:
            default = "derived"
        name = f"`{key}`" if required else f"`{key}` (optional)"
        lines.append(f"| {name} | `{_cell(type_name(hint))}` | {_cell(default)} | {doc.text} |")
    return lines


def _type_section(tp: Any) -> list[str]:
    doc = (tp.__doc__ or "").strip()
    source = f" Copies `{SPEC_MODELS[tp]}`." if tp in SPEC_MODELS else ""
    return [f"#### `{tp.__name__}`", "", doc + source, "", *_table(tp), ""]


def _ports(irs: list[Any], kind: StepKind, side: str) -> list[str]:
    """`name: artifact type` of a kind's inputs or outputs, marking those some IRs lack."""
    types: dict[str, str] = {}
    per_ir: list[set[str]] = []
    for ir in irs:
        names: set[str] = set()
        for step in ir.steps_of(kind):
            for name, art in getattr(step, side).items():
                types[name] = ir.artifact(art).type.value
                names.add(name)
        if ir.steps_of(kind):
            per_ir.append(names)
    always = set.intersection(*per_ir) if per_ir else set()
    return [
        f"`{name}`: {types[name]}" + ("" if name in always else " (only with some specs)")
        for name in sorted(types)
    ]


def render() -> str:
    irs = _irs()
    lines = [
        "<!-- Generated by `python -m mlc.compiler.ir.reference --write`; do not edit. -->",
        "",
        f"# IR reference (ir_version {IR_VERSION})",
        "",
        "Every step of the IR has a `kind`; this page lists, per kind, the `params` it carries "
        "(their types are declared in `mlc.compiler.ir.params` and checked by "
        "`IRGraph.from_dict`), its inputs and its outputs with their artifact types. "
        "Defaults are the spec's (read from the spec models); `derived` marks a value the builder "
        "computes, `required` a spec field without a default, `from the spec` a spec section "
        "copied as its type says. Every key listed without "
        "`(optional)` is always present, so a target may index params without `.get`. "
        "Changes to this contract are listed in `compiler/ir/CHANGELOG.md`.",
        "",
        "## Step kinds",
        "",
    ]
    nested: list[Any] = []
    for kind in StepKind:
        tp = PARAMS_BY_KIND[kind]
        layer = Layer.PIPELINE if kind in PIPELINE_KINDS else Layer.OPERATIONS
        lines += [
            f"### `{kind.value}`",
            "",
            (tp.__doc__ or "").strip(),
            "",
            f"- layer: `{layer.value}`",
            f"- params: `{tp.__name__}`",
            "- inputs: " + _PORT_NOTES.get(kind, ", ".join(_ports(irs, kind, "inputs")) or "none"),
            "- outputs: " + (", ".join(_ports(irs, kind, "outputs")) or "none"),
            "",
            *_table(tp),
            "",
        ]
        for _, (hint, _, _) in typeddict_fields(tp).items():
            for inner in _nested(hint):
                if inner not in nested:
                    nested.append(inner)
    # types used inside other nested types, breadth first, each once
    i = 0
    while i < len(nested):
        for _, (hint, _, _) in typeddict_fields(nested[i]).items():
            for inner in _nested(hint):
                if inner not in nested:
                    nested.append(inner)
        i += 1
    lines += ["## Nested types", ""]
    for tp in nested:
        lines += _type_section(tp)
    lines += [
        "## Operations graph",
        "",
        "The operations layer's nodes as the builder joins them (from the reference specs: "
        "online, batch and edge deployment). `a <- b` means step `a` reads artifact `b`.",
        "",
    ]
    rows: dict[str, str] = {}
    for ir in irs:
        for step in ir.layer(Layer.OPERATIONS):
            reads = ", ".join(f"`{name}` <- `{art}`" for name, art in sorted(step.inputs.items()))
            writes = ", ".join(f"`{a}`" for a in sorted(step.outputs.values()))
            when = f"; runs when `{step.when}`" if step.when else ""
            rows.setdefault(
                step.id,
                f"- `{step.id}` ({step.kind.value}): reads {reads or 'nothing'}; "
                f"writes {writes or 'nothing'}{when}",
            )
    lines += [rows[k] for k in sorted(rows)]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the IR reference (REFERENCE.md).")
    parser.add_argument("--write", action="store_true", help=f"write {REFERENCE.name}")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        REFERENCE.write_text(text, encoding="utf-8", newline="\n")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
