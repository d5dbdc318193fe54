"""gate: every gate, the fairness threshold, robustness drops and the champion comparison.

Writes the `verdict` artifact `{"passed": bool, "checks": [{name, kind, metric, op, value,
threshold, passed, reason}]}`. A failing gate is not an exception: the orchestrator reads the
verdict. The champion's metrics come from the optional `champion` input (a metrics artifact) or
`ctx.extra["champion_metrics"]` (a `{metric: value}` dict); with neither, there is no champion
and the comparison passes with that reason.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext
from mlc.runtime.steps._data import need, out
from mlc.runtime.steps._metrics import LOWER_IS_BETTER

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


def run(
    params: dict[str, Any], inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Evaluate the checks; write the `verdict` artifact and return it."""
    doc = artifacts.load_json(need(inputs, "metrics", STEP), "metrics")
    metrics: dict[str, float] = doc.get("metrics", {})
    checks = []
    for g in params.get("gates") or ():
        name = g.get("name") or f"{g['metric']} {g['op']} {g['threshold']}"
        checks.append(
            _check(
                name, "gate", g["metric"], metrics.get(g["metric"]), g["op"], float(g["threshold"])
            )
        )
    fairness = params.get("fairness")
    if fairness:
        if "fairness" in inputs:
            fdoc = artifacts.load_json(inputs["fairness"], "metrics")
            value = fdoc.get("mitigated_value")
            if value is None:
                value = fdoc.get("value")
            reason = "after mitigation" if fdoc.get("mitigated_value") is not None else ""
        else:
            value, reason = None, "no fairness metrics were passed to the gate"
        op = ">=" if fairness["metric"].endswith("_ratio") else "<="
        checks.append(
            _check(
                f"fairness {fairness['metric']}",
                "fairness",
                fairness["metric"],
                value,
                op,
                float(fairness["threshold"]),
                reason,
            )
        )
    measured = {(r["kind"], tuple(r.get("features") or ())): r for r in doc.get("robustness") or ()}
    for r in params.get("robustness") or ():
        found = measured.get((r["kind"], tuple(r.get("features") or ())))
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
    champion = params.get("champion")
    if champion and champion.get("compare", True):
        metric = champion["metric"]
        margin = float(champion.get("min_improvement", 0.0))
        incumbent = _champion_metrics(inputs, ctx)
        value = metrics.get(metric)
        if incumbent is None or metric not in incumbent:
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
            lower = metric in LOWER_IS_BETTER
            bar = incumbent[metric] - margin if lower else incumbent[metric] + margin
            checks.append(
                _check(
                    f"champion {metric}",
                    "champion",
                    metric,
                    value,
                    "<=" if lower else ">=",
                    bar,
                    f"champion {incumbent[metric]:.6g}, margin {margin:g}",
                )
            )
    passed = all(c["passed"] for c in checks)
    verdict = {"passed": passed, "checks": checks, "model_name": params.get("model_name")}
    artifacts.save_json(out(outputs, "verdict", STEP), "verdict", verdict, "verdict", passed=passed)
    return {
        "passed": passed,
        "failed": [c["name"] for c in checks if not c["passed"]],
        "checks": len(checks),
    }
