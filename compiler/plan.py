"""`mlc plan`: what compiling (and applying) a spec would do, Terraform-style.

Compares each target's in-memory output with the last compiled manifest
(`OUT/<target>/mlc-manifest.json`): files to create, change or remove; the runs that would be
triggered; the estimated cost; and a verdict per policy rule. Runs and cost count only what the
selected targets emit, as `mlc compile` with the same targets would (inspection targets such as
`ir` alone: what every installed target would emit).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlc.compiler.cost import CostEstimate, Emission, estimate_cost
from mlc.compiler.cost.estimate import cron_runs_per_month
from mlc.compiler.diagnostics import Diagnostic, DiagnosticError, Severity
from mlc.compiler.ir import PIPELINE_KINDS, IRGraph, Layer, StepKind
from mlc.compiler.output import MANIFEST_NAME
from mlc.compiler.passes import PassContext
from mlc.compiler.passes.policies import (
    BUILTIN_RULES,
    check_policy_files,
    get_fact,
    holds,
    load_policy_file,
    spec_facts,
)


@dataclass(frozen=True)
class FilePlan:
    target: str
    path: str
    action: str
    """`create`, `change`, `remove` or `keep`."""


@dataclass(frozen=True)
class Verdict:
    rule: str
    verdict: str
    """`pass`, `fail`, `warn`, `unknown` (could not be checked) or `n/a`."""
    detail: str = ""


@dataclass
class PlanReport:
    spec: str
    targets: list[str]
    files: list[FilePlan] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    cost: CostEstimate | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for f in self.files if f.action == action)

    @property
    def exit_code(self) -> int:
        """0 ok; 1 a policy fails or a pass or target reports an error (a spec that cannot be
        built at all raises instead, exit 2)."""
        failed = any(v.verdict == "fail" for v in self.verdicts)
        return 1 if failed or any(d.severity is Severity.ERROR for d in self.diagnostics) else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "plan_version": "1",
            "spec": self.spec,
            "targets": self.targets,
            "summary": {a: self.count(a) for a in ("create", "change", "remove", "keep")},
            "files": [vars(f) for f in self.files],
            "runs": self.runs,
            "cost": self.cost.to_json() if self.cost else None,
            "verdicts": [vars(v) for v in self.verdicts],
            "diagnostics": [d.to_json() for d in self.diagnostics],
            "exit_code": self.exit_code,
        }

    def render_text(self, verbose: bool = False) -> str:
        lines = [f"mlc plan: {self.spec} -> {', '.join(self.targets)}", ""]
        sign = {"create": "+", "change": "~", "remove": "-"}
        for f in self.files:
            if f.action != "keep":
                lines.append(f"  {sign[f.action]} {f.target}/{f.path}  ({f.action})")
        lines.append(
            f"Plan: {self.count('create')} to create, {self.count('change')} to "
            f"change, {self.count('remove')} to remove, {self.count('keep')} unchanged."
        )
        lines += ["", "Runs that would be triggered:"]
        lines += [f"  - {r}" for r in self.runs] or ["  (none)"]
        if self.cost is not None:
            lines += ["", f"Estimated cost: {self.cost.total_text()} ({self.cost.pricing})"]
            lines += [f"  not priced: {part}" for part in self.cost.left_out]
        lines += ["", "Policy verdicts:"]
        lines += [
            f"  {v.verdict:<7} {v.rule}" + (f"  ({v.detail})" if v.detail else "")
            for v in self.verdicts
        ]
        from mlc.compiler.passes.capabilities import condense

        shown = condense(self.diagnostics, verbose)
        if shown:
            lines += ["", *[d.render() for d in shown]]
        return "\n".join(lines) + "\n"


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The last compiled manifest of a target folder, or None when there is none.

    Raises:
        DiagnosticError: (MLC650) the manifest exists but cannot be read.
    """
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
            raise ValueError("no 'files' mapping")
    except (OSError, ValueError) as exc:
        raise DiagnosticError(
            [
                Diagnostic(
                    "MLC650",
                    f"cannot read the last manifest {path}: {exc}",
                    None,
                    "delete the folder and compile again",
                )
            ]
        ) from None
    return data


def _runs(ir: IRGraph, changed: bool, emits: Emission | None = None) -> list[str]:
    """The runs applying the plan would start: only those some selected target emits (`emits`
    None: every one the spec describes)."""
    kinds = emits.kinds if emits is not None else frozenset(StepKind)
    out = []
    pipeline_emitted = bool(kinds & PIPELINE_KINDS)
    if changed:
        if pipeline_emitted:
            pipeline = [s.id for s in ir.layer(Layer.PIPELINE)]
            out.append(f"pipeline run: {len(pipeline)} steps ({pipeline[0]} … {pipeline[-1]})")
        ops = [
            s.id
            for s in ir.steps_of(StepKind.DEPLOY, StepKind.BATCH_PREDICT, StepKind.EXPORT)
            if s.kind in kinds
        ]
        out += [f"rollout: {sid}" for sid in ops]
    mon = ir.first(StepKind.MONITOR)
    for key in ("drift", "performance"):
        part = (mon.params.get(key) or {}) if mon else {}
        if emits is not None and f"monitoring.{key}.schedule" not in emits.settings:
            continue
        if part:
            sched = str(part.get("schedule"))
            out.append(
                f"scheduled {key} job '{sched}' (~{cron_runs_per_month(sched):.0f} runs/month)"
            )
    trig = ir.first(StepKind.RETRAIN_TRIGGER)
    # a scheduled retraining reruns the pipeline: a target that emits the pipeline (kfp's
    # recurring runs) or the trigger (local) starts it
    retrains = pipeline_emitted or StepKind.RETRAIN_TRIGGER in kinds
    for t in (trig.params.get("triggers") or []) if trig and retrains else []:
        if t.get("kind") == "schedule":
            out.append(
                f"scheduled retraining '{t['cron']}' "
                f"(~{cron_runs_per_month(str(t['cron'])):.1f} runs/month)"
            )
    return out


def policy_verdicts(
    ir: IRGraph, diags: Sequence[Diagnostic], files: Sequence[str | Path] = ()
) -> list[Verdict]:
    """One verdict per policy rule: built-in Python rules, data rules, and the budget."""
    codes: dict[str, list[Diagnostic]] = {}
    for d in diags:
        codes.setdefault(d.code, []).append(d)
    compliance = (ir.settings.get("governance") or {}).get("compliance") or []
    out = [
        Verdict("pii-features", "fail" if "MLC601" in codes else "pass"),
        Verdict(
            "gdpr-regions",
            "n/a" if "gdpr" not in compliance else "fail" if "MLC602" in codes else "pass",
        ),
        Verdict("literal-secrets", "fail" if "MLC610" in codes else "pass"),
    ]
    facts = spec_facts(ir)
    for file in [BUILTIN_RULES, *files]:
        for rule in load_policy_file(file).policies:
            if not all(holds(get_fact(facts, p), op, a) for p, op, a in rule.when):
                out.append(Verdict(rule.id, "n/a"))
                continue
            failed = [p for p, op, a in rule.require if not holds(get_fact(facts, p), op, a)]
            out.append(
                Verdict(
                    rule.id,
                    ("fail" if rule.severity is Severity.ERROR else "warn") if failed else "pass",
                    ", ".join(failed),
                )
            )
    budget = codes.get("MLC630", [])
    # a cap the estimate could not price is not kept, whatever the priced lines say
    unchecked = codes.get("MLC634", [])
    out.append(
        Verdict(
            "budgets",
            "n/a"
            if ir.first(StepKind.BUDGET) is None
            else "fail"
            if any(d.severity is Severity.ERROR for d in budget)
            else "warn"
            if budget
            else "unknown"
            if unchecked
            else "pass",
            "; ".join([d.path for d in budget] + [f"not checked: {d.path}" for d in unchecked]),
        )
    )
    return out


def plan_spec(
    spec_path: str | Path,
    targets: Sequence[str],
    out_dir: str | Path = "out",
    overrides: Sequence[str] = (),
    policy_files: Sequence[str | Path] = (),
) -> PlanReport:
    """Plan a compile of `spec_path` for `targets` against `out_dir`.

    Raises:
        DiagnosticError: the spec cannot be built into IR.
    """
    from mlc.compiler.api import check
    from mlc.compiler.diff.outputs import emit_in_memory
    from mlc.compiler.registry import default_registry

    result = check(spec_path, overrides, targets)
    report = PlanReport(str(spec_path), list(targets), diagnostics=list(result.diagnostics))
    ctx = PassContext(source_map=result.loaded.source_map)
    if policy_files:
        report.diagnostics.extend(check_policy_files(result.ir, ctx, policy_files))
    # The cost of what these targets emit (inspection targets alone, such as `ir`, emit nothing
    # of the system: then what every installed target would, as `mlc cost` without -t)
    emits = Emission.of(result.targets) or Emission.of(default_registry().all())
    report.cost = estimate_cost(result.ir, emits=emits)
    changed = False
    for name in targets:
        manifest = read_manifest(Path(out_dir) / name / MANIFEST_NAME)
        old: dict[str, str] = dict(manifest["files"]) if manifest else {}
        if manifest is None or manifest.get("spec_hash") != result.ir.metadata["spec_hash"]:
            changed = True
        files: dict[str, bytes] = {}
        if result.ok:
            opts = (result.ir.settings.get("target_options") or {}).get(name) or {}
            try:
                files = emit_in_memory(result.ir, name, opts, str(result.loaded.project_dir))
            except DiagnosticError as exc:
                report.diagnostics.extend(exc.diagnostics)
        for path in sorted(set(old) | set(files)):
            if path not in files:
                action = "remove"
            elif path not in old:
                action = "create"
            else:
                same = hashlib.sha256(files[path]).hexdigest() == old[path]
                action = "keep" if same else "change"
            report.files.append(FilePlan(name, path, action))
    report.runs = _runs(result.ir, changed, emits)
    report.verdicts = policy_verdicts(result.ir, report.diagnostics, policy_files)
    return report
