"""`diff_specs`: the semantic diff of two specs, with risks, step, output and cost deltas.

Exit codes of `mlc diff` come from `DiffReport.exit_code`: 0 nothing high-risk and no policy
violated, 1 a high-risk change or a policy violation in the head spec, 2 the head spec does not
validate (its diagnostics are reported; what could be compared still is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlc.compiler.cost import CostEstimate, estimate_cost
from mlc.compiler.diagnostics import Diagnostic, Severity, SourceLocation
from mlc.compiler.diff.compare import derived_facts, diff_trees, facet_of
from mlc.compiler.diff.outputs import FileChange, diff_outputs
from mlc.compiler.diff.rules import RISKS, RiskRule, builtin_rules, classify, parse_rules
from mlc.compiler.diff.sides import Side, load_side
from mlc.compiler.ir import IRGraph
from mlc.compiler.passes import PassContext
from mlc.compiler.passes.policies import check_policy_files, find_secret, load_policy_file
from mlc.compiler.sourcemap import KeyPath

REDACTED = "<redacted secret>"


@dataclass(frozen=True)
class Change:
    """One semantic change, classified."""

    path: str
    section: str
    facet: str
    kind: str
    old: Any
    new: Any
    risk: str
    rule: str
    message: str
    base_location: SourceLocation | None
    head_location: SourceLocation | None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "section": self.section,
            "facet": self.facet,
            "kind": self.kind,
            "old": self.old,
            "new": self.new,
            "risk": self.risk,
            "rule": self.rule,
            "message": self.message,
            "base_location": str(self.base_location) if self.base_location else None,
            "head_location": str(self.head_location) if self.head_location else None,
        }


@dataclass(frozen=True)
class StepChange:
    step: str
    kind: str
    """`added`, `removed` or `changed`."""
    fields: tuple[str, ...] = ()


@dataclass
class DiffReport:
    base_label: str
    head_label: str
    changes: list[Change] = field(default_factory=list)
    steps: list[StepChange] = field(default_factory=list)
    files: list[FileChange] = field(default_factory=list)
    base_cost: CostEstimate | None = None
    head_cost: CostEstimate | None = None
    base_diagnostics: list[Diagnostic] = field(default_factory=list)
    head_diagnostics: list[Diagnostic] = field(default_factory=list)
    head_ir: IRGraph | None = None
    base_valid: bool = True
    head_valid: bool = True
    targets: list[str] = field(default_factory=list)

    @property
    def semantic_change(self) -> bool:
        return bool(self.changes)

    @property
    def highest_risk(self) -> str:
        return max((c.risk for c in self.changes), key=RISKS.index, default="none")

    @property
    def policy_violations(self) -> list[Diagnostic]:
        """Errors the passes (policies, budgets, capabilities) find in a head that builds."""
        return [d for d in self.head_diagnostics if d.severity is Severity.ERROR]

    @property
    def exit_code(self) -> int:
        if not self.head_valid:
            return 2
        return 1 if self.highest_risk == "high" or self.policy_violations else 0

    def counts(self) -> dict[str, int]:
        out = {r: 0 for r in ("high", "medium", "low")}
        for c in self.changes:
            out[c.risk] += 1
        return out

    def cost_delta(self) -> dict[str, float] | None:
        if self.base_cost is None or self.head_cost is None:
            return None
        names = [i.name for i in self.head_cost.items] + [
            i.name for i in self.base_cost.items if self.head_cost.item(i.name) is None
        ]
        out = {}
        for name in names:
            a, b = self.base_cost.item(name), self.head_cost.item(name)
            out[name] = (b.monthly_usd if b else 0.0) - (a.monthly_usd if a else 0.0)
        out["total"] = self.head_cost.monthly_usd - self.base_cost.monthly_usd
        return out

    def to_json(self) -> dict[str, Any]:
        delta = self.cost_delta()
        return {
            "report_version": "1",
            "base": self.base_label,
            "head": self.head_label,
            "semantic_change": self.semantic_change,
            "highest_risk": self.highest_risk,
            "exit_code": self.exit_code,
            "counts": self.counts(),
            "changes": [c.to_json() for c in self.changes],
            "steps": [
                {"step": s.step, "kind": s.kind, "fields": list(s.fields)} for s in self.steps
            ],
            "files": [f.to_json() for f in self.files],
            "cost": None
            if delta is None or self.base_cost is None or self.head_cost is None
            else {
                "base_monthly_usd": round(self.base_cost.monthly_usd, 2),
                "head_monthly_usd": round(self.head_cost.monthly_usd, 2),
                "delta_monthly_usd": {k: round(v, 2) for k, v in delta.items()},
            },
            "base_valid": self.base_valid,
            "head_valid": self.head_valid,
            "base_diagnostics": [d.to_json() for d in self.base_diagnostics],
            "head_diagnostics": [d.to_json() for d in self.head_diagnostics],
            "policy_violations": [d.to_json() for d in self.policy_violations],
        }


def redact(value: Any, key: str = "") -> Any:
    """Replace literal secrets inside a value, so a diff never repeats them."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str) and find_secret(key, value):
        return REDACTED
    return value


def diff_step_params(base: IRGraph, head: IRGraph) -> list[StepChange]:
    """Steps added, removed or changed between two IRs (params, resources, wiring)."""
    a = {s.id: s.to_dict() for s in base.steps}
    b = {s.id: s.to_dict() for s in head.steps}
    out = []
    for sid in sorted(set(a) | set(b)):
        if sid not in b:
            out.append(StepChange(sid, "removed"))
        elif sid not in a:
            out.append(StepChange(sid, "added"))
        elif a[sid] != b[sid]:
            fields = tuple(
                sorted(k for k in set(a[sid]) | set(b[sid]) if a[sid].get(k) != b[sid].get(k))
            )
            out.append(StepChange(sid, "changed", fields))
    return out


def _risk_rules(policy_files: Sequence[str | Path], head: Side) -> list[RiskRule]:
    rules = list(builtin_rules())
    files = list(policy_files)
    if head.spec_path is not None and (head.spec_path.parent / "policies").is_dir():
        files.extend(sorted((head.spec_path.parent / "policies").glob("*.y*ml")))
    for file in dict.fromkeys(files):
        parsed = load_policy_file(file)
        rules.extend(parse_rules(parsed.risk_rules, str(file)))
    return rules


def diff_sides(
    base: Side, head: Side, targets: Sequence[str] = (), policy_files: Sequence[str | Path] = ()
) -> DiffReport:
    """Compare two loaded sides."""
    report = DiffReport(
        base.label,
        head.label,
        base_valid=base.valid,
        head_valid=head.valid,
        targets=list(targets),
        head_ir=head.ir,
    )
    report.base_diagnostics = list(base.diagnostics)
    report.head_diagnostics = list(head.diagnostics)
    if head.ir is not None and head.loaded is not None and policy_files:
        ctx = PassContext(source_map=head.loaded.source_map)
        report.head_diagnostics.extend(check_policy_files(head.ir, ctx, policy_files))
    rules = _risk_rules(policy_files, head)
    both_valid = base.valid and head.valid
    a = base.data if both_valid else (dict(base.loaded.data) if base.loaded else {})
    b = head.data if both_valid else (dict(head.loaded.data) if head.loaded else {})
    trees_a = {**a, "derived": derived_facts(a)}
    trees_b = {**b, "derived": derived_facts(b)}
    for raw in diff_trees(trees_a, trees_b):
        risk, rule = classify(raw, rules)
        dotted = _display(raw.display)
        key = next((s for s in reversed(raw.display) if not s.startswith("[")), "")
        report.changes.append(
            Change(
                dotted,
                raw.display[0],
                facet_of(dotted),
                raw.kind,
                redact(raw.old, key),
                redact(raw.new, key),
                risk,
                rule.id if rule else "unclassified",
                rule.message if rule else "no risk rule matched",
                *_locations(raw.display[0] == "derived", base, head, raw.base_path, raw.head_path),
            )
        )
    report.changes.sort(key=lambda c: (-RISKS.index(c.risk), c.path))
    if base.ir is not None and head.ir is not None:
        report.steps = diff_step_params(base.ir, head.ir)
    if base.ir is not None:
        report.base_cost = estimate_cost(base.ir)
    if head.ir is not None:
        report.head_cost = estimate_cost(head.ir)
    if targets:
        files, problems = diff_outputs(
            targets,
            base.ir,
            head.ir,
            str(base.spec_path.parent) if base.spec_path else ".",
            str(head.spec_path.parent) if head.spec_path else ".",
        )
        report.files = files
        report.head_diagnostics.extend(problems)
    return report


def _locations(
    virtual: bool, base: Side, head: Side, base_path: KeyPath | None, head_path: KeyPath | None
) -> tuple[SourceLocation | None, SourceLocation | None]:
    # derived facts are computed from several keys: no single place to point at
    if virtual:
        return None, None
    return (
        base.locate(base_path) if base_path is not None else None,
        head.locate(head_path) if head_path is not None else None,
    )


def _display(segments: tuple[str, ...]) -> str:
    out = ""
    for seg in segments:
        out += seg if seg.startswith("[") or not out else "." + seg
    return out


def diff_specs(
    base: str,
    head: str,
    *,
    base_ref: str | None = None,
    targets: Sequence[str] = (),
    policy_files: Sequence[str | Path] = (),
    overrides: Sequence[str] = (),
) -> DiffReport:
    """Diff two specs, each a path or `git-ref:REF:PATH`; with `base_ref`, the base is `head`
    as it is at that git ref (overlays included).

    Raises:
        DiagnosticError: a side cannot be read at all (unknown git ref, missing file in a ref).
    """
    base_side = load_side(head if base_ref else base, list(overrides), git_ref=base_ref)
    try:
        head_side = load_side(head, list(overrides))
        try:
            return diff_sides(base_side, head_side, targets, policy_files)
        finally:
            head_side.close()
    finally:
        base_side.close()
