"""Risk rules as data: `rules.yaml` beside this module, extended by organisation policy files.

A rule matches a change by its key path pattern, its kind (added / removed / changed) and
conditions on the old and new values; a change takes the highest risk of the rules it matches.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from mlc.compiler.cost.pricing import cpu_cores, memory_gib
from mlc.compiler.diagnostics import Diagnostic, DiagnosticError
from mlc.compiler.diff.compare import RawChange

RULES_FILE = Path(__file__).with_name("rules.yaml")
RISKS = ("none", "low", "medium", "high")
CONDITIONS = frozenset(
    {
        "increased",
        "decreased",
        "multiplied",
        "loosened",
        "tightened",
        "true_to_false",
        "false_to_true",
        "to_null",
        "items_added",
        "items_removed",
        "to",
        "from",
    }
)
_SEGMENT = re.compile(r"\[[^\]]*\]|[^.\[\]]+")


def split_path(text: str) -> tuple[str, ...]:
    """`a.b[x].c` -> `("a", "b", "[x]", "c")`."""
    return tuple(_SEGMENT.findall(text))


def path_matches(pattern: Sequence[str], path: Sequence[str]) -> bool:
    """Glob match of path segments: `*` / `[*]` one segment, `**` any number."""
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(path_matches(rest, path[i:]) for i in range(len(path) + 1))
    if not path:
        return False
    seg = path[0]
    if head == "[*]":
        ok = seg.startswith("[")
    elif head.startswith("["):
        ok = head == seg
    else:
        ok = not seg.startswith("[") and fnmatch.fnmatchcase(seg, head)
    return ok and path_matches(rest, path[1:])


def _magnitude(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict) and "count" in value:
        return _magnitude(value["count"])
    if isinstance(value, str):
        for parse in (memory_gib, cpu_cores):
            try:
                got = parse(value)
            except ValueError:
                got = None
            if got is not None:
                return float(got)
    return None


def _pairs(old: Any, new: Any) -> list[tuple[float, float]]:
    if isinstance(old, list) and isinstance(new, list):
        out = []
        for a, b in zip(old, new, strict=False):
            ma, mb = _magnitude(a), _magnitude(b)
            if ma is not None and mb is not None:
                out.append((ma, mb))
        return out
    ma, mb = _magnitude(old), _magnitude(new)
    return [(ma, mb)] if ma is not None and mb is not None else []


def threshold_bound(change: RawChange) -> str | None:
    """Whether the changed threshold is an `upper` or a `lower` bound, or None when unknown.

    A comparison beside it decides (`rmse <= 4.5`: upper); without one, the direction of the
    metric beside it: a floor on a higher-is-better metric (accuracy, a fairness ratio) is a
    lower bound, on a lower-is-better one (rmse, a fairness difference) an upper bound.
    """
    from mlc.specs.evaluation import metric_direction

    ctx = change.context if isinstance(change.context, dict) else {}
    op = ctx.get("op")
    if op is None:
        gate = next((s for s in reversed(change.display) if s.startswith("[")), "")
        op = next((o for o in ("<=", ">=", "<", ">") if gate.rstrip("]").endswith(o)), None)
    if op in ("<", "<="):
        return "upper"
    if op in (">", ">="):
        return "lower"
    if op is not None or not isinstance(ctx.get("metric"), str):
        return None  # == and != have no looser side
    try:
        return "upper" if metric_direction(ctx["metric"]) == "lower" else "lower"
    except KeyError:
        return None


def condition_holds(name: str, arg: Any, change: RawChange) -> bool:
    """Whether one rule condition holds for a change."""
    old, new = change.old, change.new
    if name == "increased":
        return any(b > a for a, b in _pairs(old, new)) is bool(arg)
    if name == "decreased":
        return any(b < a for a, b in _pairs(old, new)) is bool(arg)
    if name == "multiplied":
        return any(a > 0 and b / a >= float(arg) for a, b in _pairs(old, new))
    if name in ("loosened", "tightened"):
        bound = threshold_bound(change)
        if bound is None:
            return not bool(arg)
        upper = bound == "upper"
        looser = [(b > a) if upper else (b < a) for a, b in _pairs(old, new)]
        stricter = [(b < a) if upper else (b > a) for a, b in _pairs(old, new)]
        return any(looser if name == "loosened" else stricter) is bool(arg)
    if name == "true_to_false":
        return (old is True and new is False) is bool(arg)
    if name == "false_to_true":
        return (old is False and new is True) is bool(arg)
    if name == "to_null":
        return (old is not None and new is None) is bool(arg)
    if name in ("items_added", "items_removed"):
        a = set(map(str, old)) if isinstance(old, list) else set()
        b = set(map(str, new)) if isinstance(new, list) else set()
        return bool((b - a) if name == "items_added" else (a - b)) is bool(arg)
    if name == "to":
        return bool(new == arg)
    if name == "from":
        return bool(old == arg)
    return False


@dataclass(frozen=True)
class RiskRule:
    id: str
    risk: str
    paths: tuple[tuple[str, ...], ...]
    message: str
    on: str = "any"
    when: tuple[tuple[str, Any], ...] = ()
    source: str = "built-in"

    def matches(self, change: RawChange) -> bool:
        if self.on != "any" and self.on != change.kind:
            return False
        if not any(path_matches(p, change.display) for p in self.paths):
            return False
        return all(condition_holds(name, arg, change) for name, arg in self.when)


def parse_rules(raw: Iterable[Any], source: str) -> list[RiskRule]:
    """Validate and build risk rules.

    Raises:
        DiagnosticError: (MLC621) a rule is malformed; the message names the file and the rule.
    """
    rules = []
    for i, item in enumerate(raw):
        where = f"{source}: risk_rules[{i}]"
        problem = None
        if not isinstance(item, dict):
            problem = "must be a mapping"
        elif not item.get("id") or item.get("risk") not in RISKS[1:]:
            problem = "needs 'id' and 'risk' (high, medium or low)"
        elif not isinstance(item.get("paths"), list) or not item["paths"]:
            problem = "needs 'paths' (a list of key path patterns)"
        elif item.get("on", "any") not in ("any", "added", "removed", "changed"):
            problem = "'on' must be added, removed, changed or any"
        else:
            when = item.get("when") or {}
            if isinstance(when, str):
                when = {when: True}
            unknown = set(when) - CONDITIONS if isinstance(when, dict) else {"?"}
            if unknown:
                problem = f"unknown condition(s) {sorted(map(str, unknown))}; use " + ", ".join(
                    sorted(CONDITIONS)
                )
        if problem is not None:
            raise DiagnosticError(
                [
                    Diagnostic(
                        "MLC621",
                        f"{where} {problem}",
                        None,
                        "see compiler/diff/rules.yaml for the format",
                    )
                ]
            )
        assert isinstance(item, dict)
        when = item.get("when") or {}
        when = {when: True} if isinstance(when, str) else when
        rules.append(
            RiskRule(
                str(item["id"]),
                str(item["risk"]),
                tuple(split_path(str(p)) for p in item["paths"]),
                str(item.get("message", item["id"])),
                str(item.get("on", "any")),
                tuple(sorted(when.items())),
                source,
            )
        )
    return rules


@lru_cache(maxsize=1)
def builtin_rules() -> tuple[RiskRule, ...]:
    raw = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    return tuple(parse_rules(raw["risk_rules"], "built-in"))


def classify(change: RawChange, rules: Sequence[RiskRule]) -> tuple[str, RiskRule | None]:
    """The highest risk among the rules that match, and the first rule at that risk."""
    best: tuple[str, RiskRule | None] = ("low", None)
    for rule in rules:
        if rule.matches(change) and (
            best[1] is None or RISKS.index(rule.risk) > RISKS.index(best[0])
        ):
            best = (rule.risk, rule)
    return best
