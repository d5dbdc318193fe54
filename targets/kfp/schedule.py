"""Schedules as KFP recurring runs: the `retrain-trigger` schedule triggers and the batch
scoring schedule (`deployment.batch.schedule`).

KFP's scheduler reads six-field cron expressions (seconds first); spec crons have five fields or
a macro, so both are rewritten here. Other trigger kinds (drift, performance, data volume) are
events, realised by the monitoring target, not by a schedule.
"""

from __future__ import annotations

from typing import Any

from mlc.compiler.ir import IRGraph, StepKind

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def kfp_cron(cron: str) -> str:
    """A spec cron (five fields or a macro) as KFP's six-field expression.

    >>> kfp_cron("0 3 * * 1"), kfp_cron("@daily")
    ('0 0 3 * * 1', '0 0 0 * * *')
    """
    return "0 " + _MACROS.get(cron.strip(), cron.strip())


def recurring_runs(
    ir: IRGraph,
    package: str,
    namespace: str,
    service_account: str,
    experiment: str,
    parameters: dict[str, Any],
) -> dict[str, Any] | None:
    """The recurring-run definition beside the package, or None when nothing is scheduled."""
    schedules: list[dict[str, Any]] = []
    for step in ir.steps_of(StepKind.RETRAIN_TRIGGER):
        for i, trigger in enumerate(step.params.get("triggers", [])):
            if trigger.get("kind") != "schedule":
                continue
            schedules.append(
                {
                    "name": f"{ir.name}-retrain-{len(schedules) + 1}",
                    "cron_expression": kfp_cron(str(trigger["cron"])),
                    "origin": f"feedback.triggers[{i}]",
                    "max_concurrency": 1,
                    "no_catchup": True,
                    "enabled": True,
                    "parameters": dict(sorted(parameters.items())),
                }
            )
    for step in ir.steps_of(StepKind.BATCH_PREDICT):
        batch = step.params.get("batch") or {}
        if not batch.get("schedule"):
            continue
        # The whole pipeline on the batch's schedule: unchanged steps are cache hits, an
        # identical model registers nothing, and batch-predict (never cached) scores the input.
        schedules.append(
            {
                "name": f"{ir.name}-batch",
                "cron_expression": kfp_cron(str(batch["schedule"])),
                "origin": "deployment.batch.schedule",
                "max_concurrency": 1,
                "no_catchup": True,
                "enabled": True,
                "parameters": dict(sorted(parameters.items())),
            }
        )
    if not schedules:
        return None
    return {
        "kind": "mlc.kfp/RecurringRuns",
        "version": 1,
        "pipeline": ir.name,
        "pipeline_package": package,
        "namespace": namespace,
        "service_account": service_account,
        "experiment": experiment or ir.name,
        "recurring_runs": schedules,
    }
