"""Consistency across the infrastructure, serving and monitoring outputs of one spec.

- every canary or blue-green rollout with rollback conditions is watched: the spec monitors
  the model (so the monitoring target emits an alert per condition) and routes alerts;
- every feature the drift rules watch exists in the data contract or the feature set;
- every identity a serving manifest references is one the Terraform target outputs.

The GDPR region rule is the policy pass's (`MLC602`, `mlc.compiler.passes.policies`), so a
region outside the EU/EEA is reported once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mlc.compiler.diagnostics import Diagnostic, Severity
from mlc.compiler.ir import ArtifactType, IRGraph, StepKind
from mlc.compiler.passes.base import PassContext

ROLLOUT_KINDS = ("canary", "blue_green")


def _rollouts(ir: IRGraph, ctx: PassContext) -> Iterator[Diagnostic]:
    deploy = ir.first(StepKind.DEPLOY)
    if deploy is None:
        return
    strategy: dict[str, Any] = deploy.params.get("strategy") or {}
    kind = strategy.get("kind")
    if kind not in ROLLOUT_KINDS:
        return
    rollback = list(strategy.get("rollback") or ())
    if not rollback:
        yield ctx.diag(
            "MLC701",
            f"the {kind} rollout has no rollback conditions, so nothing rolls it back "
            "automatically",
            "deployment.strategy",
            "add 'rollback: [{metric: error_rate, op: \">\", threshold: 0.02}]'",
            Severity.WARNING,
        )
        return
    monitor = ir.first(StepKind.MONITOR)
    if monitor is None:
        yield ctx.diag(
            "MLC702",
            f"the {kind} rollout rolls back on {len(rollback)} condition(s), but "
            "the spec has no 'monitoring' section to alert on them",
            "deployment.strategy.rollback",
            "add 'monitoring: {slos: {latency_p99_ms: 200, error_rate: 0.01}}'",
        )
        return
    watched = {
        (r["metric"], r["op"], float(r["threshold"])) for r in monitor.params.get("rollback") or ()
    }
    for i, cond in enumerate(rollback):
        if (cond["metric"], cond["op"], float(cond["threshold"])) not in watched:
            yield ctx.diag(
                "MLC703",
                f"rollback condition {cond['metric']} {cond['op']} "
                f"{cond['threshold']} has no alert",
                f"deployment.strategy.rollback[{i}]",
            )
        if cond["metric"] == "drift_score" and not monitor.params.get("drift"):
            yield ctx.diag(
                "MLC703",
                "rollback on drift_score needs drift monitoring to measure it",
                f"deployment.strategy.rollback[{i}].metric",
                "add 'monitoring.drift'",
            )
    if ir.first(StepKind.ALERTS) is None:
        yield ctx.diag(
            "MLC704",
            f"rollback alerts of the {kind} rollout are not routed to anyone",
            "deployment.strategy.rollback",
            "add a route under 'monitoring.alerts'",
            Severity.WARNING,
        )


def _drift_features(ir: IRGraph, ctx: PassContext) -> Iterator[Diagnostic]:
    monitor = ir.first(StepKind.MONITOR)
    drift = monitor.params.get("drift") if monitor is not None else None
    if not drift:
        return
    known: set[str] = set()
    validate = ir.first(StepKind.VALIDATE)
    if validate is not None:
        known |= set((validate.params.get("contract") or {}).get("columns") or {})
    for art in ir.artifacts_of(ArtifactType.TRANSFORM):
        known |= set(art.meta.get("columns") or ())
    features = ir.first(StepKind.FEATURES)
    if features is not None:
        known |= {d["name"] for d in features.params.get("derived") or ()}
    for i, feat in enumerate(drift.get("features") or ()):
        if feat not in known:
            yield ctx.diag(
                "MLC705",
                f"drift watches feature '{feat}', which is not in the data contract "
                "or the feature set",
                f"monitoring.drift.features[{i}]",
                "watch one of: " + ", ".join(sorted(known)[:12]),
            )


def _identities(ir: IRGraph, ctx: PassContext) -> Iterator[Diagnostic]:
    identity_steps = ir.steps_of(StepKind.IDENTITY)
    outputs = {ir.artifact(a).meta.get("role") for s in identity_steps for a in s.outputs.values()}
    for step in ir.steps_of(StepKind.DEPLOY, StepKind.MONITOR, StepKind.BATCH_PREDICT):
        art_id = step.inputs.get("identity")
        if art_id is None:
            continue
        artifact = ir.artifact(art_id)
        producer = ir.step(artifact.producer)
        role = artifact.meta.get("role")
        if producer.kind is not StepKind.IDENTITY or role not in outputs:
            yield ctx.diag(
                "MLC706",
                f"'{step.id}' runs as identity '{role}', which the Terraform target "
                "does not output",
                step.origin,
                "identities come from 'security.access' and the built-in roles "
                + ", ".join(sorted(str(r) for r in outputs)),
            )


def check_consistency(ir: IRGraph, ctx: PassContext) -> Iterator[Diagnostic]:
    """Rollback alerts, drift features and identities agree across targets."""
    yield from _rollouts(ir, ctx)
    yield from _drift_features(ir, ctx)
    yield from _identities(ir, ctx)
