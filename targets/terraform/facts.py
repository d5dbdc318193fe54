"""Cloud-neutral facts the Terraform templates render: storage, budgets, endpoint traffic.

Everything here reads the IR only (the `storage`, `identities`, `budget` and `deploy` steps) and
returns plain data; the per-cloud policy details live in `mlc.targets.terraform.access`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mlc.compiler.diagnostics import Diagnostic
from mlc.compiler.ir import IRGraph, Step, StepKind
from mlc.targets import _cloud

MANAGED = {"sagemaker": "aws", "vertex": "gcp", "azureml": "azure"}
"""Managed-endpoint platforms and the cloud each runs on."""

# Strategies each managed platform can express in its endpoint's traffic configuration.
_EXPRESSIBLE = {
    "sagemaker": {"recreate", "canary", "ab", "shadow", "blue_green"},
    "vertex": {"recreate", "canary", "ab", "blue_green"},
    "azureml": {"recreate", "canary", "ab", "shadow", "blue_green"},
}
_AZUREML_MAX_MIRROR = 50
_SAGEMAKER_MAX_VARIANTS = 10
_AZURE_MAX_NOTIFICATIONS = 5


@dataclass
class Variant:
    """One served model version and its share of live traffic (percent)."""

    name: str
    alias: str
    weight: int


@dataclass
class Endpoint:
    """A managed endpoint: where it runs and how its traffic is split."""

    platform: str
    instance: str
    min_replicas: int
    max_replicas: int
    strategy: str
    variants: list[Variant]
    shadow: Variant | None = None
    bake_time_s: int = 0
    canary_steps: list[int] = field(default_factory=list)

    @property
    def traffic(self) -> dict[str, int]:
        return {v.name: v.weight for v in self.variants}


def step_of(ir: IRGraph, kind: StepKind) -> Step | None:
    """The first step of `kind`, or None."""
    return next((s for s in ir.steps if s.kind is kind), None)


def days(seconds: float | None) -> int | None:
    """A retention in seconds as whole days, rounded up (clouds count lifecycle in days)."""
    return None if seconds is None else max(1, math.ceil(seconds / 86400))


def storage(ir: IRGraph) -> dict[str, Any]:
    """Buckets, their key and lifecycle rules from the `storage` step."""
    step = step_of(ir, StepKind.STORAGE)
    params = step.params if step else {}
    enc = params.get("encryption") or {}
    ret = params.get("retention") or {}
    versioning = params.get("versioning") or {}
    return {
        "cmk": bool(enc.get("at_rest", True)),
        "kms_key": enc.get("kms_key"),
        "tls_only": bool(enc.get("in_transit", True)),
        "keep_versions": int(versioning.get("keep") or 5),
        "data_days": days(ret.get("data")),
        "models_days": days(ret.get("models")),
        "logs_days": days(ret.get("logs")),
    }


def budgets(ir: IRGraph) -> list[dict[str, Any]]:
    """One monthly budget per cap in `budgets`, each with its alert thresholds (percent).

    `total_usd_per_month` watches everything tagged with the model; the others watch the spend
    tagged with their workload (`serving`, `training`, `tuning`).
    """
    step = step_of(ir, StepKind.BUDGET)
    if step is None:
        return []
    params = step.params
    thresholds = sorted({int(t) for t in params.get("alert_thresholds") or (50, 80, 100)})
    caps = (
        ("total", "total_usd_per_month", "budgets.total_usd_per_month"),
        ("serving", "serving_usd_per_month", "budgets.serving_usd_per_month"),
        ("training", "training_usd", "budgets.training_usd"),
        ("tuning", "tuning_usd", "budgets.tuning_usd"),
    )
    out = []
    for key, field_name, origin in caps:
        amount = params.get(field_name)
        if amount is None:
            continue
        out.append(
            {
                "key": key,
                "amount": _money(float(amount)),
                "thresholds": thresholds,
                "workload": None if key == "total" else key,
                "origin": origin,
            }
        )
    return out


def _money(amount: float) -> str:
    return str(int(amount)) if amount == int(amount) else f"{amount:.2f}"


def endpoint(ir: IRGraph) -> Endpoint | None:
    """The managed endpoint, when the deployment platform is sagemaker, vertex or azureml."""
    step = step_of(ir, StepKind.DEPLOY)
    if step is None or step.params.get("platform") not in MANAGED:
        return None
    params = step.params
    cloud = MANAGED[params["platform"]]
    res = step.resources
    gpu = res.gpu_type if res.gpu_type and _cloud.offers_gpu(cloud, res.gpu_type) else None
    instance = _cloud.managed_instance(cloud, res.cpu, res.memory, gpu)
    auto = params.get("autoscaling") or {}
    strategy = params.get("strategy") or {"kind": "recreate"}
    kind = strategy["kind"]
    managed = Endpoint(
        platform=params["platform"],
        instance=instance,
        min_replicas=max(1, int(auto.get("min_replicas", 1))),
        max_replicas=int(auto.get("max_replicas", 1)),
        strategy=kind,
        variants=[Variant("primary", "champion", 100)],
        bake_time_s=int(strategy.get("bake_time") or 0),
    )
    if kind == "canary":
        steps = [int(s) for s in strategy["steps"]]
        managed.canary_steps = steps
        first = steps[0]
        managed.variants = [Variant("stable", "champion", 100 - first)] if first < 100 else []
        managed.variants.append(Variant("canary", "challenger", first))
    elif kind == "ab":
        managed.variants = [
            Variant(v["name"], v["model_alias"], int(v["weight"])) for v in strategy["variants"]
        ]
    elif kind == "shadow":
        managed.shadow = Variant("shadow", "challenger", int(strategy.get("mirror_percent", 100)))
    elif kind == "blue_green":
        managed.variants = [Variant("blue", "champion", 100), Variant("green", "challenger", 0)]
    return managed


def strategy_problems(ir: IRGraph) -> list[Diagnostic]:
    """Strategies the managed platform cannot express, located at the spec key."""
    step = step_of(ir, StepKind.DEPLOY)
    if step is None or step.params.get("platform") not in MANAGED:
        return []
    platform = step.params["platform"]
    strategy = step.params.get("strategy") or {"kind": "recreate"}
    kind = strategy["kind"]
    out = []
    if kind not in _EXPRESSIBLE[platform]:
        able = sorted(k for k, v in _EXPRESSIBLE.items() if kind in v)
        out.append(
            Diagnostic(
                "MLC433",
                f"platform '{platform}' cannot express strategy '{kind}': its endpoints "
                "have no traffic mirroring",
                hint="use canary, ab or blue_green"
                + (f", or platform {' / '.join(able)}" if able else ""),
                path="deployment.strategy.kind",
            )
        )
    if (
        kind == "shadow"
        and platform == "azureml"
        and int(strategy.get("mirror_percent", 100)) > _AZUREML_MAX_MIRROR
    ):
        out.append(
            Diagnostic(
                "MLC433",
                f"platform 'azureml' mirrors at most {_AZUREML_MAX_MIRROR}% of traffic, "
                f"not {strategy['mirror_percent']}%",
                hint=f"set mirror_percent <= {_AZUREML_MAX_MIRROR}",
                path="deployment.strategy.mirror_percent",
            )
        )
    if (
        kind == "ab"
        and platform == "sagemaker"
        and len(strategy["variants"]) > _SAGEMAKER_MAX_VARIANTS
    ):
        out.append(
            Diagnostic(
                "MLC433",
                f"platform 'sagemaker' serves at most {_SAGEMAKER_MAX_VARIANTS} production "
                f"variants, not {len(strategy['variants'])}",
                hint="drop variants",
                path="deployment.strategy.variants",
            )
        )
    if kind == "blue_green" and platform == "sagemaker" and strategy.get("switch") == "manual":
        out.append(
            Diagnostic(
                "MLC433",
                "platform 'sagemaker' switches blue/green traffic itself; a manual switch "
                "cannot be expressed",
                hint="set switch: auto, or use platform kserve / k8s",
                path="deployment.strategy.switch",
            )
        )
    return out


def placement_problems(ir: IRGraph) -> list[Diagnostic]:
    """A cloud Terraform cannot provision, a region or GPU type the cloud does not offer."""
    cloud = str(ir.settings.get("deployment", {}).get("cloud") or "onprem")
    region = ir.settings.get("deployment", {}).get("region")
    if cloud not in _cloud.CLOUDS:
        return [
            Diagnostic(
                "MLC430",
                f"target 'terraform' provisions aws, gcp or azure, not '{cloud}'",
                hint="set deployment.cloud to aws, gcp or azure",
                # without a deployment the spec's objectionable key is the target's own entry
                # (when the spec lists it; else the location falls back to the spec's start)
                path="deployment.cloud"
                if step_of(ir, StepKind.DEPLOY)
                or step_of(ir, StepKind.BATCH_PREDICT)
                or "terraform" not in ir.settings.get("target_options", {})
                else "targets.terraform",
            )
        ]
    out = []
    if not _cloud.is_region(cloud, str(region)):
        from mlc.compiler.diagnostics import did_you_mean

        out.append(
            Diagnostic(
                "MLC431",
                f"region '{region}' does not exist on {cloud}",
                hint=did_you_mean(str(region), _cloud.REGIONS[cloud])
                or f"use a {cloud} region such as {sorted(_cloud.REGIONS[cloud])[0]}",
                path="deployment.region",
            )
        )
    for step in ir.steps:
        gpu = step.resources.gpu_type
        if gpu is None or _cloud.offers_gpu(cloud, gpu):
            continue
        section = "deployment" if step.layer.value == "operations" else "training"
        offered = ", ".join(sorted(_cloud.GPU_TYPES[cloud]))
        out.append(
            Diagnostic(
                "MLC432",
                f"GPU type '{gpu}' is not offered by {cloud}",
                hint=f"{cloud} offers: {offered}",
                path=f"{section}.resources.gpu.type",
            )
        )
    return list({d.render(): d for d in out}.values())
