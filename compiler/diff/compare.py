"""Semantic comparison of two resolved specs: added / removed / changed leaves, per section.

Lists of named things (sources, alerts, access roles, variants, derived features, gates) are
matched by their identity, not position, so reordering them is no change. Other lists are values.
Derived facts that no single key holds (e.g. which PII columns reach the model unpseudonymised)
are compared under the virtual section `derived`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mlc.compiler.sourcemap import KeyPath

IDENTITY_KEYS = ("name", "role")
"""Fields that name the items of a list; a list whose items all carry one is matched by it."""
IGNORED_TOP = frozenset({"defaults"})


@dataclass(frozen=True)
class RawChange:
    """One difference between two trees."""

    kind: str
    """`added`, `removed` or `changed`."""
    display: tuple[str, ...]
    """Path segments for display and rule matching; list items as `[name]` or `[index]`."""
    base_path: KeyPath | None
    head_path: KeyPath | None
    old: Any
    new: Any
    context: Any = None
    """The mapping that holds the changed key (head side, else base): a gate's `metric` and
    `op` beside its `threshold`, so a rule can tell which way the bound moved."""


def _identity(items: list[Any]) -> list[str] | None:
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for key in IDENTITY_KEYS:
        if all(i.get(key) is not None for i in items):
            ids = [str(i[key]) for i in items]
            if len(set(ids)) == len(ids):
                return ids
    if all("metric" in i and "op" in i for i in items):  # gates: metric and comparison
        ids = [f"{i['metric']} {i['op']}" for i in items]
        if len(set(ids)) == len(ids):
            return ids
    return None


def diff_trees(
    base: Any,
    head: Any,
    display: tuple[str, ...] = (),
    base_path: KeyPath = (),
    head_path: KeyPath = (),
    context: Any = None,
) -> Iterator[RawChange]:
    """Every leaf difference between `base` and `head`."""
    if isinstance(base, dict) and isinstance(head, dict):
        for key in sorted(set(base) | set(head), key=str):
            if not display and key in IGNORED_TOP:
                continue
            seg = (*display, str(key))
            if key not in head:
                yield RawChange("removed", seg, (*base_path, key), None, base[key], None, base)
            elif key not in base:
                yield RawChange("added", seg, None, (*head_path, key), None, head[key], head)
            else:
                yield from diff_trees(
                    base[key], head[key], seg, (*base_path, key), (*head_path, key), head
                )
        return
    if isinstance(base, list) and isinstance(head, list):
        base_ids, head_ids = _identity(base), _identity(head)
        if base_ids is not None and head_ids is not None:
            where_b = {k: i for i, k in enumerate(base_ids)}
            where_h = {k: i for i, k in enumerate(head_ids)}
            for key in sorted(set(where_b) | set(where_h)):
                seg = (*display, f"[{key}]")
                if key not in where_h:
                    i = where_b[key]
                    yield RawChange("removed", seg, (*base_path, i), None, base[i], None)
                elif key not in where_b:
                    j = where_h[key]
                    yield RawChange("added", seg, None, (*head_path, j), None, head[j])
                else:
                    i, j = where_b[key], where_h[key]
                    yield from diff_trees(base[i], head[j], seg, (*base_path, i), (*head_path, j))
            return
        if len(base) == len(head) and all(isinstance(i, dict) for i in [*base, *head]):
            # same-length lists of unnamed items (transforms): show which item changed, whole
            for i, (a, b) in enumerate(zip(base, head, strict=True)):
                if a != b:
                    yield RawChange(
                        "changed", (*display, f"[{i}]"), (*base_path, i), (*head_path, i), a, b
                    )
            return
    if _same_number(base, head) or (
        base == head and isinstance(base, bool) == isinstance(head, bool)
    ):
        return
    yield RawChange("changed", display, base_path, head_path, base, head, context)


def _same_number(a: Any, b: Any) -> bool:
    numeric = (int, float)
    return (
        isinstance(a, numeric)
        and isinstance(b, numeric)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and float(a) == float(b)
    )


def derived_facts(data: dict[str, Any]) -> dict[str, Any]:
    """Facts computed from several keys, compared like spec keys under `derived`."""
    contract = ((data.get("data") or {}).get("contract") or {}).get("columns") or {}
    feats = data.get("features") or {}
    if not isinstance(contract, dict) or not isinstance(feats, dict):
        return {}
    selection = feats.get("selection") or {}
    include = selection.get("include")
    exclude = set(selection.get("exclude") or ())
    target = feats.get("target")
    used = set(include) if include is not None else set(contract) - exclude - {target}
    pseudo = {
        c
        for t in feats.get("transforms") or ()
        if isinstance(t, dict) and t.get("op") == "pseudonymise"
        for c in t.get("columns") or ()
    }
    pii = {c for c, col in contract.items() if isinstance(col, dict) and col.get("pii")}
    return {
        "pii_features": sorted((pii & used) - pseudo),
        "features": sorted(
            used
            | {d.get("name") for d in feats.get("derived") or () if isinstance(d, dict)} - {None}
        ),
    }


FACETS: tuple[tuple[str, str], ...] = (
    ("deployment.strategy", "traffic"),
    ("deployment.autoscaling", "resources"),
    ("deployment.resources", "resources"),
    ("training.resources", "resources"),
    ("training.distributed", "resources"),
    ("tuning.parallelism", "resources"),
    ("deployment.region", "placement"),
    ("deployment.cloud", "placement"),
    ("deployment.platform", "placement"),
    ("data.contract", "data contract"),
    ("data.sources", "data sources"),
    ("evaluation.gates", "gates"),
    ("evaluation.champion", "gates"),
    ("evaluation.robustness", "gates"),
    ("governance.fairness", "gates"),
    ("derived.pii_features", "data contract"),
    ("training.model", "params"),
    ("training.lightning", "params"),
    ("tuning", "params"),
    ("features", "params"),
    ("derived", "params"),
    ("governance", "governance"),
    ("owners", "governance"),
    ("security", "security"),
    ("budgets", "budgets"),
    ("monitoring", "monitoring"),
    ("feedback", "feedback"),
    ("targets", "targets"),
    ("description", "metadata"),
    ("tags", "metadata"),
    ("name", "metadata"),
)
"""Longest-prefix table from a dotted key path to the facet it belongs to."""


def facet_of(dotted_path: str) -> str:
    """The facet a change belongs to.

    >>> facet_of("deployment.strategy.steps"), facet_of("training.model.params.max_depth")
    ('traffic', 'params')
    """
    best = ("", "other")
    for prefix, facet in FACETS:
        if (
            dotted_path == prefix
            or dotted_path.startswith(prefix + ".")
            or dotted_path.startswith(prefix + "[")
        ) and len(prefix) > len(best[0]):
            best = (prefix, facet)
    return best[1]
