"""Policy passes: policy-as-code over the IR, each finding a located diagnostic (MLC6xx).

Three kinds of rule, all reported the same way:
- built-in rules in Python (PII features, GDPR regions, literal secrets);
- rules as data: `policies.yaml` beside this module, plus organisation files passed as
  `ctx.extra["policy_files"]` (`--policy FILE`) or found in a `policies/` folder beside the spec;
- plugins: callables `(ir, ctx) -> Iterable[Diagnostic]` in the `mlc.policies` entry-point group.
  A plugin that fails to import or raises is reported by name, never swallowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlc.compiler.diagnostics import Diagnostic, DiagnosticError, Severity
from mlc.compiler.ir import IRGraph, StepKind
from mlc.compiler.passes.base import PassContext, parse_path
from mlc.compiler.passes.secrets import entropy as entropy  # re-exported: diff redacts with it
from mlc.compiler.passes.secrets import find_secret as find_secret
from mlc.compiler.passes.secrets import redact, scan
from mlc.compiler.registry import group_entry_points
from mlc.compiler.sourcemap import dotted
from mlc.specs import clouds

POLICY_ENTRY_POINT_GROUP = "mlc.policies"
BUILTIN_RULES = Path(__file__).with_name("policies.yaml")
_MISSING = object()

# -- spec facts ---------------------------------------------------------------------------------


def spec_facts(ir: IRGraph) -> dict[str, Any]:
    """The spec as far as the IR carries it, keyed like the spec (`deployment.region`, …)."""
    facts: dict[str, Any] = {
        "name": ir.name,
        **{k: ir.metadata.get(k) for k in ("description", "owners", "tags")},
    }
    for key in ("governance", "security", "budgets"):
        facts[key] = ir.settings.get(key) or {}
    dep = ir.first(StepKind.DEPLOY) or ir.first(StepKind.BATCH_PREDICT) or ir.first(StepKind.EXPORT)
    if dep is not None:
        facts["deployment"] = {
            k: v
            for k, v in dep.params.items()
            if k not in ("model_name", "secrets", "network", "encryption", "access")
        }
    mon = ir.first(StepKind.MONITOR)
    if mon is not None:
        alerts = ir.first(StepKind.ALERTS)
        facts["monitoring"] = {
            **{k: mon.params.get(k) for k in ("slos", "drift", "performance", "dashboards")},
            "alerts": alerts.params.get("routes", []) if alerts else [],
        }
    feats = ir.first(StepKind.FEATURES)
    if feats is not None:
        facts["features"] = {
            k: feats.params.get(k) for k in ("target", "transforms", "derived", "selection")
        }
    validate = ir.first(StepKind.VALIDATE)
    if validate is not None:
        facts["data"] = {"contract": validate.params.get("contract")}
    gate = ir.first(StepKind.GATE)
    if gate is not None:
        facts["evaluation"] = {"gates": gate.params.get("gates", [])}
    return facts


def get_fact(facts: Any, dotted_path: str) -> Any:
    """Value at a dotted path, or `_MISSING`."""
    node = facts
    for part in parse_path(dotted_path):
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            node = node[part]
        elif isinstance(part, str) and isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


# -- rules as data ------------------------------------------------------------------------------

OPERATORS = (
    "eq",
    "ne",
    "in",
    "not_in",
    "contains",
    "gt",
    "gte",
    "lt",
    "lte",
    "exists",
    "absent",
    "nonempty",
    "matches",
)


def holds(value: Any, op: str, arg: Any) -> bool:
    """Whether `value op arg` holds; a missing value satisfies only `absent` (and `ne`).

    >>> holds(3, "gte", 2), holds(None, "exists", True), holds(["gdpr"], "contains", "gdpr")
    (True, False, True)
    """
    present = value is not _MISSING and value is not None
    if op == "exists":
        return present is bool(arg)
    if op == "absent":
        return (not present) is bool(arg)
    if op == "nonempty":
        return (present and value not in ("", [], {})) is bool(arg)
    if op == "ne":
        return not present or value != arg
    if not present:
        return False
    if op == "eq":
        return bool(value == arg)
    if op == "in":
        return value in arg
    if op == "not_in":
        return value not in arg
    if op == "contains":
        return isinstance(value, list | tuple | dict | str) and arg in value
    if op == "matches":
        return isinstance(value, str) and re.search(str(arg), value) is not None
    try:
        number, limit = float(value), float(arg)
    except (TypeError, ValueError):
        return False
    return {
        "gt": number > limit,
        "gte": number >= limit,
        "lt": number < limit,
        "lte": number <= limit,
    }[op]


@dataclass(frozen=True)
class DataRule:
    """One rule from a policy file."""

    id: str
    message: str
    source: str
    code: str = "MLC620"
    hint: str = ""
    severity: Severity = Severity.ERROR
    when: tuple[tuple[str, str, Any], ...] = ()
    require: tuple[tuple[str, str, Any], ...] = ()

    def check(self, facts: dict[str, Any], ctx: PassContext) -> Iterator[Diagnostic]:
        if not all(holds(get_fact(facts, p), op, arg) for p, op, arg in self.when):
            return
        for path, op, arg in self.require:
            if not holds(get_fact(facts, path), op, arg):
                yield ctx.diag(
                    self.code, f"{self.message} [policy {self.id}]", path, self.hint, self.severity
                )


@dataclass
class PolicyFile:
    """A parsed policy file: policy rules and (for `mlc diff`) extra risk rules."""

    path: str
    policies: list[DataRule] = field(default_factory=list)
    risk_rules: list[dict[str, Any]] = field(default_factory=list)


def _conditions(raw: Any, where: str) -> tuple[tuple[str, str, Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must map key paths to {{operator: value}}")
    out = []
    for path, cond in raw.items():
        if not isinstance(cond, dict) or len(cond) != 1:
            raise ValueError(f"{where}.{path} must be one {{operator: value}}")
        ((op, arg),) = cond.items()
        if op not in OPERATORS:
            raise ValueError(
                f"{where}.{path}: unknown operator '{op}' (use one of " + ", ".join(OPERATORS) + ")"
            )
        out.append((str(path), str(op), arg))
    return tuple(out)


def load_policy_file(path: str | Path) -> PolicyFile:
    """Parse a policy file.

    Raises:
        DiagnosticError: (MLC621) the file is missing, not YAML, or a rule is malformed.
    """
    shown = str(path)
    try:
        raw = (
            yaml.load(
                Path(path).read_text(encoding="utf-8"),
                Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader),
            )
            or {}
        )
        if not isinstance(raw, dict) or set(raw) - {"policies", "risk_rules"}:
            raise ValueError("the top level holds 'policies' and/or 'risk_rules'")
        out = PolicyFile(shown)
        for i, rule in enumerate(raw.get("policies") or []):
            where = f"policies[{i}]"
            if not isinstance(rule, dict) or not rule.get("id") or not rule.get("message"):
                raise ValueError(f"{where} needs 'id' and 'message'")
            unknown = set(rule) - {"id", "code", "message", "hint", "severity", "when", "require"}
            if unknown:
                raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
            require = _conditions(rule.get("require"), f"{where}.require")
            if not require:
                raise ValueError(f"{where} needs 'require'")
            out.policies.append(
                DataRule(
                    str(rule["id"]),
                    str(rule["message"]),
                    shown,
                    str(rule.get("code", "MLC620")),
                    str(rule.get("hint", "")),
                    Severity(rule.get("severity", "error")),
                    _conditions(rule.get("when"), f"{where}.when"),
                    require,
                )
            )
        risk = raw.get("risk_rules") or []
        if not isinstance(risk, list):
            raise ValueError("'risk_rules' must be a list")
        out.risk_rules = list(risk)
        return out
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise DiagnosticError(
            [
                Diagnostic(
                    "MLC621",
                    f"policy file {shown} is invalid: {exc}",
                    None,
                    "see compiler/passes/policies.yaml for the format",
                )
            ]
        ) from None


def policy_files(ctx: PassContext) -> list[Path]:
    """Organisation policy files: `ctx.extra["policy_files"]` and `policies/*.yaml` by the spec."""
    found = [Path(p) for p in ctx.extra.get("policy_files", ())]
    root = ctx.extra.get("project_dir")
    if root is None:
        where = ctx.source_map.locate(("name",))
        root = Path(where.file).parent if where and where.file != "<override>" else None
    if root is not None and (Path(root) / "policies").is_dir():
        found.extend(sorted((Path(root) / "policies").glob("*.y*ml")))
    return list(dict.fromkeys(found))


# -- built-in rules in Python -------------------------------------------------------------------


def is_eu_region(region: str, cloud: str | None = None, *, allow_adequacy: bool = False) -> bool:
    """Whether gdpr lets data be stored and served in `region` (EU/EEA; adequacy if allowed).

    The tables of `mlc.specs.clouds` decide for aws, gcp and azure (the same tables the
    Terraform and serving targets use): the UK and Switzerland are outside the EU/EEA, inside
    only with `allow_adequacy`. For other clouds, a region named like an EU one counts.

    >>> is_eu_region("eu-west-1"), is_eu_region("europe-west4"), is_eu_region("us-east-1")
    (True, True, False)
    >>> is_eu_region("eu-west-2", "aws"), is_eu_region("norwayeast", "azure")
    (False, True)
    >>> is_eu_region("eu-west-2", "aws", allow_adequacy=True)
    True
    """
    return clouds.gdpr_region_ok(cloud, region, allow_adequacy=allow_adequacy)


def check_pii_features(ir: IRGraph, ctx: PassContext) -> Iterator[Diagnostic]:
    """PII columns may be features only when pseudonymised (or excluded)."""
    feats = ir.first(StepKind.FEATURES)
    if feats is None:
        return
    p = feats.params
    selection = p.get("selection") or {}
    include = selection.get("include")
    excluded = set(selection.get("exclude") or ())
    columns = list(p.get("dtypes", {}))
    used = set(include) if include is not None else set(columns) - excluded - {p.get("target")}
    pseudo = {
        c
        for t in p.get("transforms", [])
        if t.get("op") == "pseudonymise"
        for c in t.get("columns", [])
    }
    for d in p.get("derived", []):
        if set(d.get("inputs", [])) & (set(p.get("pii", [])) - pseudo):
            yield ctx.diag(
                "MLC601",
                f"derived feature '{d['name']}' reads PII column(s) "
                + ", ".join(sorted(set(d["inputs"]) & set(p["pii"]))),
                "features.derived",
                "derive features from pseudonymised columns only",
            )
    for col in sorted(p.get("pii", [])):
        if col in used and col not in pseudo:
            yield ctx.diag(
                "MLC601",
                f"PII column '{col}' is used as a feature without being pseudonymised",
                f"data.contract.columns.{col}.pii",
                f"add a 'pseudonymise' transform for '{col}' or exclude it in "
                "features.selection.exclude",
            )


def check_gdpr_regions(ir: IRGraph, ctx: PassContext) -> Iterator[Diagnostic]:
    """gdpr: data storage and serving stay in the EU/EEA (or adequacy countries, if allowed).

    The only check of the gdpr region rule: one diagnostic per region, naming every place
    (serving, batch scoring, storage) put there.
    """
    governance = ir.settings.get("governance") or {}
    if "gdpr" not in (governance.get("compliance") or []):
        return
    allow = bool((governance.get("data_residency") or {}).get("allow_adequacy"))
    places: dict[tuple[str, str], list[str]] = {}
    located = False
    for kind, what in (
        (StepKind.DEPLOY, "serving"),
        (StepKind.BATCH_PREDICT, "batch scoring"),
        (StepKind.STORAGE, "storage"),
    ):
        for step in ir.steps_of(kind):
            region = step.params.get("region")
            if region is None:
                continue
            located = True
            cloud = str(step.params.get("cloud") or "onprem")
            if not is_eu_region(str(region), cloud, allow_adequacy=allow):
                where = places.setdefault((cloud, str(region)), [])
                if what not in where:
                    where.append(what)
    if not located:
        yield ctx.diag(
            "MLC602",
            "gdpr requires data and serving regions in the EU/EEA, but no region is set",
            "governance.compliance",
            "add deployment with an EU region, e.g. 'region: eu-west-1'",
        )
    for (cloud, region), placed in sorted(places.items()):
        adequate = clouds.gdpr_region_ok(cloud, region, allow_adequacy=True)
        hint = "use an EU/EEA region, e.g. eu-west-1 (aws), europe-west1 (gcp), westeurope (azure)"
        if adequate:
            hint += (
                ", or set 'governance.data_residency.allow_adequacy: true' to rely on the "
                "country's EU adequacy decision"
            )
        yield ctx.diag(
            "MLC602",
            f"gdpr requires data and serving regions in the EU/EEA, but {' and '.join(placed)} "
            f"{'is' if len(placed) == 1 else 'are'} placed in '{region}' ({cloud})"
            + (", in a country with an EU adequacy decision, not allowed" if adequate else ""),
            "deployment.region",
            hint,
        )


# -- literal secrets ----------------------------------------------------------------------------


def check_secrets(ir: IRGraph, ctx: PassContext) -> Iterator[Diagnostic]:
    """Literal secrets anywhere in the IR, every string of it (MLC610).

    The validator already refuses them in the spec (`mlc.compiler.validate.secret_diagnostics`);
    this catches the ones an IR built in Python or a pass plugin carries, before a target
    copies them out.
    """
    found: dict[str, tuple[str, str]] = {}
    for step in ir.steps:
        for f in scan(step.to_dict().get("params")):
            where, _ = _spec_path(ctx, step.origin, f.path)
            found.setdefault(f.value, (f.kind, where))
    for key in ("target_options", "governance", "security", "budgets"):
        origin = "targets" if key == "target_options" else key
        for f in scan(ir.settings.get(key)):
            found.setdefault(f.value, (f.kind, _spec_path(ctx, origin, ("_", *f.path))[0]))
    for f in scan(dict(ir.metadata)):
        found.setdefault(f.value, (f.kind, str(dotted(f.path))))
    # one value reaches several steps: report it once, where the spec wrote it
    for value, (kind, where) in sorted(found.items(), key=lambda item: item[1][1]):
        yield ctx.diag(
            "MLC610",
            f"literal secret in the spec: {kind} ({redact(value)}); "
            "secrets are never copied into outputs",
            where,
            "store it in a secret manager and write a reference such as "
            "'vault:secret/data/app#key' or 'env:NAME' under security.secrets",
        )


def _spec_path(ctx: PassContext, origin: str, rest: tuple[str | int, ...]) -> tuple[str, bool]:
    """Best spec key path for a value found at `rest` inside a step that came from `origin`,
    and whether that exact key is in the source map."""
    base = parse_path(origin)
    for candidate in ((*base, *rest[1:]), (*base, *rest)):
        if ctx.source_map.span(candidate) is not None:
            return str(dotted(candidate)), True
    return origin, False


def check_metric_directions(ir: IRGraph, ctx: PassContext) -> Iterator[Diagnostic]:
    """Gates whose comparison points the metric's worse way, and vacuous fairness thresholds.

    Warnings, not errors: a ceiling on r2 can be a deliberate leakage alarm. The direction is
    the one the IR carries (`mlc.specs.evaluation.METRICS`).
    """
    gate = ir.first(StepKind.GATE)
    if gate is None:
        return
    for i, g in enumerate(gate.params.get("gates") or ()):
        direction, op, metric = g.get("direction"), g.get("op"), g.get("metric")
        ceiling = op in ("<", "<=")
        if direction not in ("higher", "lower") or op not in ("<", "<=", ">", ">="):
            continue
        if ceiling == (direction == "higher"):
            better = ">=" if direction == "higher" else "<="
            yield ctx.diag(
                "MLC613",
                f"gate '{metric} {op} {float(g.get('threshold', 0)):g}' lets worse models pass: "
                f"{direction} {metric} is better",
                f"evaluation.gates[{i}].op",
                f"write op: '{better}' unless the bound is deliberate",
                Severity.WARNING,
            )
    fair = gate.params.get("fairness") or {}
    threshold = fair.get("threshold")
    if fair.get("direction") not in ("higher", "lower") or threshold is None:
        return
    # ratios lie in [0, 1] with 1 for equal treatment; differences in [0, 1] with 0
    if fair["direction"] == "higher" and not 0.5 <= float(threshold) <= 1:
        yield ctx.diag(
            "MLC614",
            f"{fair['metric']} threshold {threshold:g} "
            + (
                "can never be met (a ratio is at most 1)"
                if threshold > 1
                else "is close to no check"
            )
            + ": ratio thresholds are floors, 1 meaning equal treatment",
            "governance.fairness.threshold",
            "the four-fifths rule uses 0.8",
            Severity.WARNING,
        )
    elif fair["direction"] == "lower" and float(threshold) >= 1:
        yield ctx.diag(
            "MLC614",
            f"{fair['metric']} threshold {threshold:g} always passes (a difference is at most 1)",
            "governance.fairness.threshold",
            "difference thresholds are ceilings, 0 meaning equal treatment; 0.1 is usual",
            Severity.WARNING,
        )


# -- running everything -------------------------------------------------------------------------

PYTHON_RULES = (check_pii_features, check_gdpr_regions, check_secrets, check_metric_directions)


def _plugin_diags(ir: IRGraph, ctx: PassContext) -> Iterator[Diagnostic]:
    for ep in sorted(group_entry_points(POLICY_ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else "an unknown distribution"
        try:
            plugin = ep.load()
            found: Iterable[Diagnostic] = list(plugin(ir, ctx))
        except DiagnosticError as exc:
            found = exc.diagnostics
        except Exception as exc:  # a plugin's failure is named, not swallowed
            yield Diagnostic(
                "MLC622",
                f"policy plugin '{ep.name}' from '{dist}' failed: {type(exc).__name__}: {exc}",
                None,
                f"fix or uninstall '{dist}' (entry point {ep.value})",
            )
            continue
        yield from found


def check_policies(ir: IRGraph, ctx: PassContext) -> Iterator[Diagnostic]:
    """Every built-in rule, every data rule from policy files, every `mlc.policies` plugin."""
    for rule in PYTHON_RULES:
        yield from rule(ir, ctx)
    facts = spec_facts(ir)
    for file in [BUILTIN_RULES, *policy_files(ctx)]:
        try:
            parsed = load_policy_file(file)
        except DiagnosticError as exc:
            yield from exc.diagnostics
            continue
        for data_rule in parsed.policies:
            yield from data_rule.check(facts, ctx)
    yield from _plugin_diags(ir, ctx)


def check_policy_files(
    ir: IRGraph, ctx: PassContext, files: Iterable[str | Path]
) -> Iterator[Diagnostic]:
    """Only the data rules of the given organisation policy files (for `--policy FILE`)."""
    facts = spec_facts(ir)
    for file in files:
        try:
            parsed = load_policy_file(file)
        except DiagnosticError as exc:
            yield from exc.diagnostics
            continue
        for data_rule in parsed.policies:
            yield from data_rule.check(facts, ctx)
