"""gate: every gate, the fairness threshold, robustness drops and the champion comparison.

Writes the `verdict` artifact `{"passed": bool, "checks": [{name, kind, metric, op, value,
threshold, passed, reason}]}`; fairness checks come one per sensitive attribute, with its
`attribute` and the `groups` (highest, lowest rate) behind the value, both also in the name.
A failing gate is not an exception: the orchestrator reads the verdict. With
`champion.same_holdout` (the default) and a registered champion (`ctx.extra["champion"]`), the
champion is scored on the candidate's own test rows (`_champion.py`: per sensitive group, with
an optional bootstrap interval); otherwise its metrics come from the optional `champion` input
(a metrics artifact) or `ctx.extra["champion_metrics"]` (a `{metric: value}` dict); with
neither, there is no champion and the comparison passes with that reason.
"""

from __future__ import annotations

import math
import operator
from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext
from mlc.runtime.steps._data import need, out
from mlc.runtime.steps._metrics import direction_of

if TYPE_CHECKING:
    from mlc.compiler.ir.params import FairnessGateParams, GateParams

STEP = "gate"
OPS = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


def _check(
    name: str,
    kind: str,
    metric: str,
    value: float | None,
    op: str,
    threshold: float,
    reason: str = "",
) -> dict[str, Any]:
    ok = value is not None and not math.isnan(value) and OPS[op](value, threshold)
    if value is None and not reason:
        reason = f"metric '{metric}' was not computed"
    return {
        "name": name,
        "kind": kind,
        "metric": metric,
        "value": value,
        "op": op,
        "threshold": threshold,
        "passed": bool(ok),
        "reason": reason,
    }


def _champion_metrics(inputs: dict[str, str], ctx: StepContext) -> dict[str, float] | None:
    if "champion" in inputs and artifacts.exists(inputs["champion"]):
        doc = artifacts.load_json(inputs["champion"], "metrics")
        return dict(doc.get("metrics", doc))
    extra = ctx.extra.get("champion_metrics")
    return dict(extra) if extra else None


def _fairness_checks(fairness: FairnessGateParams, inputs: dict[str, str]) -> list[dict[str, Any]]:
    """One check per sensitive attribute, on the candidate model's disparity; each names the
    attribute and the two groups whose rates make it (highest vs lowest)."""
    metric = fairness["metric"]
    threshold = float(fairness["threshold"])
    # a ratio is 1 for equal treatment (the threshold is a floor), a difference 0 (a ceiling)
    op = ">=" if direction_of(fairness, STEP) == "higher" else "<="
    if "fairness" not in inputs:
        reason = "no fairness metrics were passed to the gate"
        return [_check(f"fairness {metric}", "fairness", metric, None, op, threshold, reason)]
    fdoc = artifacts.load_json(inputs["fairness"], "metrics")
    mitigation = fdoc.get("mitigation") or "none"
    after = f"after mitigation ({mitigation})" if fdoc.get("candidate") == "mitigated" else ""
    by_attribute = fdoc.get("by_attribute") or {}
    if not by_attribute:
        return [_check(f"fairness {metric}", "fairness", metric, fdoc.get("value"), op, threshold)]
    checks = []
    for attr in sorted(by_attribute):
        worst = (fdoc.get("worst_groups") or {}).get(attr) or {}
        high, low = worst.get("high") or {}, worst.get("low") or {}
        groups = f": {high.get('group')} vs {low.get('group')}" if high and low else ""
        reason = (
            f"{worst['rate']} {high['group']} {high['value']:.3g} vs "
            f"{low['group']} {low['value']:.3g}"
            if high and low
            else ""
        )
        check = _check(
            f"fairness {metric} ({attr}{groups})",
            "fairness",
            metric,
            by_attribute[attr],
            op,
            threshold,
            "; ".join(r for r in (reason, after) if r),
        )
        check["attribute"] = attr
        if high and low:
            check["groups"] = [high["group"], low["group"]]
        checks.append(check)
    return checks


def run(
    params: GateParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Evaluate the checks; write the `verdict` artifact and return it."""
    doc = artifacts.load_json(need(inputs, "metrics", STEP), "metrics")
    metrics: dict[str, float] = doc.get("metrics", {})
    checks = []
    for g in params["gates"]:
        name = g["name"] or f"{g['metric']} {g['op']} {g['threshold']}"
        checks.append(
            _check(
                name, "gate", g["metric"], metrics.get(g["metric"]), g["op"], float(g["threshold"])
            )
        )
    fairness = params["fairness"]
    if fairness is not None:
        checks += _fairness_checks(fairness, inputs)
    measured = {(r["kind"], tuple(r.get("features") or ())): r for r in doc.get("robustness") or ()}
    for r in params["robustness"]:
        found = measured.get((r["kind"], tuple(r["features"])))
        checks.append(
            _check(
                f"robustness {r['kind']} drop",
                "robustness",
                found["metric"] if found else r["kind"],
                found["drop"] if found else None,
                "<=",
                float(r["max_drop"]),
                (found.get("error") or "") if found else "robustness was not measured by evaluate",
            )
        )
    champion = params["champion"]
    if champion is not None and champion["compare"]:
        metric = champion["metric"]
        margin = float(champion["min_improvement"])
        incumbent = _champion_metrics(inputs, ctx)
        value = metrics.get(metric)
        info = ctx.extra.get("champion")
        same_rows = (
            champion.get("same_holdout", True)
            and isinstance(info, dict)
            and info.get("version") is not None
            and "model" in inputs
            and "test" in inputs
        )
        if same_rows:
            from mlc.runtime.steps._champion import compare
            from mlc.runtime.steps._data import load_frame, load_model

            assert isinstance(info, dict)
            checks.append(
                compare(
                    champion,
                    info,
                    load_model(inputs, "model", STEP, ctx),
                    load_frame(inputs, "test", STEP),
                    target=params["target"],
                    task=params["task"],
                    groups=list(fairness["sensitive_attributes"]) if fairness else [],
                    model_name=params["model_name"],
                    ctx=ctx,
                )
            )
        elif incumbent is None or metric not in incumbent:
            checks.append(
                {
                    "name": f"champion {metric}",
                    "kind": "champion",
                    "metric": metric,
                    "value": value,
                    "op": "n/a",
                    "threshold": None,
                    "passed": value is not None,
                    "reason": "no champion yet"
                    if value is not None
                    else f"metric '{metric}' was not computed",
                }
            )
        else:
            lower = direction_of(champion, STEP) == "lower"
            bar = incumbent[metric] - margin if lower else incumbent[metric] + margin
            checks.append(
                _check(
                    f"champion {metric}",
                    "champion",
                    metric,
                    value,
                    "<=" if lower else ">=",
                    bar,
                    f"champion {incumbent[metric]:.6g} as recorded at its registration (other "
                    f"test rows), margin {margin:g}",
                )
            )
    passed = all(c["passed"] for c in checks)
    verdict = {"passed": passed, "checks": checks, "model_name": params["model_name"]}
    artifacts.save_json(out(outputs, "verdict", STEP), "verdict", verdict, "verdict", passed=passed)
    return {
        "passed": passed,
        "failed": [c["name"] for c in checks if not c["passed"]],
        "checks": len(checks),
    }
