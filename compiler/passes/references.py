"""References: every column a step reads, gate metric and sensitive attribute resolves in the IR.

The spec models check the same names when a spec is validated; this pass checks the IR, which
is what targets see, so an IR built by a plugin or read back from JSON is held to the same rules.
It also warns where a declared value cannot match what the data will hold: an `allowed` value
of the wrong type for its column, and a derived target computed from a column that is also a
feature (the label leaks into the features).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from mlc.compiler.diagnostics import Diagnostic, Severity
from mlc.compiler.ir import IRGraph, StepKind
from mlc.compiler.passes.base import PassContext, parse_path


def _columns_of(ir: IRGraph, artifact_id: str) -> set[str]:
    if not ir.has_artifact(artifact_id):
        return set()
    return set(ir.artifact(artifact_id).meta.get("columns", ()))


def _allowed_mismatch(dtype: str, value: Any) -> bool:
    """True when `value` can never equal a value of a column of `dtype`."""
    if dtype == "bool":
        return not isinstance(value, bool)
    if dtype == "int":
        return isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        )
    if dtype == "float":
        return isinstance(value, bool) or not isinstance(value, (int, float))
    if dtype == "datetime":
        return not isinstance(value, str)
    # category and str columns hold text, and every declared value has a text form.
    return False


def _check_allowed(ir: IRGraph, ctx: PassContext) -> Iterator[Diagnostic]:
    for step in ir.steps_of(StepKind.VALIDATE):
        columns = (step.params.get("contract") or {}).get("columns") or {}
        for name, col in sorted(columns.items()):
            dtype = col.get("dtype", "str")
            wrong = [v for v in col.get("allowed") or () if _allowed_mismatch(dtype, v)]
            if wrong:
                shown = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in wrong)
                origin = f"data.contract.columns.{name}.allowed"
                yield Diagnostic(
                    "MLC312",
                    f"allowed value(s) {shown} of column '{name}' cannot match its dtype "
                    f"'{dtype}', so every row holding them fails the contract",
                    # at the `allowed` key: the values may span lines of a block list
                    ctx.source_map.locate(parse_path(origin), at_key=True),
                    f"list {dtype} values, or use 'dtype: category' for labels",
                    Severity.WARNING,
                    path=origin,
                )


def _expr_columns(expr: str, columns: set[str]) -> set[str]:
    return {word for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr) if word in columns}


def _check_derived_target(ir: IRGraph, ctx: PassContext) -> Iterator[Diagnostic]:
    """A derived target whose source column stays a feature hands the model its label."""
    split = ir.first(StepKind.SPLIT)
    feats = ir.first(StepKind.FEATURES)
    derived = split.params.get("derived_target") if split is not None else None
    if not derived or feats is None:
        return
    columns = _columns_of(ir, feats.inputs.get("train", ""))
    sources = set(derived.get("inputs") or ()) | _expr_columns(derived["expr"], columns)
    selection = feats.params.get("selection") or {}
    include, exclude = selection.get("include"), set(selection.get("exclude") or ())
    for col in sorted(sources & columns):
        if col in exclude or (include is not None and col not in include):
            continue
        yield ctx.diag(
            "MLC208",
            f"target '{derived['name']}' is derived from column '{col}', which is also a "
            "feature: the model would be handed its label (label leakage)",
            "features.target",
            f"add '{col}' to features.selection.exclude",
            Severity.WARNING,
        )


def check_references(ir: IRGraph, ctx: PassContext) -> Iterator[Diagnostic]:
    yield from _check_allowed(ir, ctx)
    yield from _check_derived_target(ir, ctx)
    split = ir.first(StepKind.SPLIT)
    derived_target = split.params.get("derived_target") if split is not None else None
    for step in ir.steps_of(StepKind.FEATURES):
        known = _columns_of(ir, step.inputs.get("train", ""))
        known |= {d["name"] for d in step.params.get("derived", ())}
        if derived_target:
            known.add(derived_target["name"])
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
