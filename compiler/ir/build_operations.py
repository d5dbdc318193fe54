"""The operations layer's steps: `storage`, `identity`, `budget`, serving (`deploy`,
`batch_predict` or `export`), `monitor` and `alerts`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlc.compiler.ir.build_data import DataArtifacts, spark_params
from mlc.compiler.ir.build_evaluation import Registered
from mlc.compiler.ir.builder import SpecBuilder, directed, resources
from mlc.compiler.ir.model import ArtifactType, Layer, StepKind

if TYPE_CHECKING:
    from mlc.compiler.ir.params import (
        AlertsParams,
        BatchPredictParams,
        BudgetParams,
        DeploymentParams,
        ExportParams,
        IdentityParams,
        MonitorParams,
        StorageParams,
    )
    from mlc.specs import Spec

IDENTITY_ROLES = ("pipeline", "training", "serving", "monitoring")


def drift_tests(drift: Any) -> Any:
    """`monitoring.drift` dumped, with the test per column type filled in (runtime.drift)."""
    if drift is not None:
        method = drift["method"]
        drift["numeric"] = drift["numeric"] or method
        default = method if method in ("chi2", "jensen_shannon") else "chi2"
        drift["categorical"] = drift["categorical"] or default
    return drift


def _raw_features(spec: Spec) -> list[str]:
    """The contract columns a scoring request carries: all but the label, in contract order."""
    return [c for c in spec.data.contract.columns if c != spec.features.target]


def build_operations(
    spec: Spec, builder: SpecBuilder, data: DataArtifacts, registered: Registered
) -> str | None:
    """Add the operations steps; return the monitor's signal artifact (None without one)."""
    dep, sec, gov, bud = spec.deployment, spec.security, spec.governance, spec.budgets
    dump = builder.dump
    cloud = dep.cloud if dep else "onprem"
    storage_params: StorageParams = {
        "cloud": cloud,
        "region": dep.region if dep else None,
        "encryption": dump(sec.encryption),
        "retention": dump(gov.retention),
        "versioning": dump(spec.data.versioning),
    }
    storage = builder.add(
        "storage",
        StepKind.STORAGE,
        "security.encryption",
        layer=Layer.OPERATIONS,
        params=storage_params,
        outputs={
            "data": (ArtifactType.BUCKET, {"purpose": "data"}),
            "artifacts": (ArtifactType.BUCKET, {"purpose": "artifacts"}),
        },
        requires=[("encryption.at_rest", "security.encryption.at_rest")]
        if sec.encryption.at_rest
        else [],
    )
    identity_params: IdentityParams = {
        "cloud": cloud,
        "roles": list(IDENTITY_ROLES),
        "access": [dump(a) for a in sec.access],
    }
    identities = builder.add(
        "identities",
        StepKind.IDENTITY,
        "security.access",
        layer=Layer.OPERATIONS,
        params=identity_params,
        outputs={role: (ArtifactType.IDENTITY, {"role": role}) for role in IDENTITY_ROLES},
        requires=[("access.roles", "security.access")] if sec.access else [],
    )
    caps = (
        bud.training_usd,
        bud.tuning_usd,
        bud.serving_usd_per_month,
        bud.total_usd_per_month,
        bud.gpu_hours,
    )
    if any(v is not None for v in caps):
        budgets = dump(bud)
        budget_params: BudgetParams = {
            "training_usd": budgets["training_usd"],
            "tuning_usd": budgets["tuning_usd"],
            "serving_usd_per_month": budgets["serving_usd_per_month"],
            "total_usd_per_month": budgets["total_usd_per_month"],
            "gpu_hours": budgets["gpu_hours"],
            "idle_shutdown": budgets["idle_shutdown"],
            "alert_thresholds": budgets["alert_thresholds"],
            "enforce": budgets["enforce"],
            "cloud": cloud,
        }
        builder.add(
            "budget",
            StepKind.BUDGET,
            "budgets",
            layer=Layer.OPERATIONS,
            params=budget_params,
            requires=[("budgets", "budgets")],
        )
    endpoint: str | None = None
    if dep is not None:
        dep_reqs = [(f"mode.{dep.mode}", "deployment.mode")]
        # Batch scoring and export are pipeline steps: whatever runs the pipeline runs them;
        # the platform, cloud and rollout are the endpoint's.
        if dep.mode == "online":
            dep_reqs.append((f"platform.{dep.platform}", "deployment.platform"))
            dep_reqs.append((f"cloud.{dep.cloud}", "deployment.cloud"))
            dep_reqs.append((f"strategy.{dep.strategy.kind}", "deployment.strategy.kind"))
        if dep.mode == "online" and dep.autoscaling.scale_to_zero:
            dep_reqs.append(("autoscaling.scale_to_zero", "deployment.autoscaling.scale_to_zero"))
        if dep.resources.gpu is not None:
            dep_reqs.append(("resources.gpu", "deployment.resources.gpu"))
        if dep.mode == "online" and sec.encryption.in_transit:
            dep_reqs.append(("encryption.in_transit", "security.encryption.in_transit"))
        if dep.mode == "online" and (sec.network.ingress or sec.network.egress):
            dep_reqs.append(("network.policy", "security.network"))
        if dep.mode == "online" and sec.secrets:
            dep_reqs.append(("secrets", "security.secrets"))
        deployment = dump(dep)
        dep_params: DeploymentParams = {
            "mode": deployment["mode"],
            "platform": deployment["platform"],
            "cloud": deployment["cloud"],
            "region": deployment["region"],
            "strategy": deployment["strategy"],
            "autoscaling": deployment["autoscaling"],
            "resources": deployment["resources"],
            "batch": deployment["batch"],
            "edge": deployment["edge"],
            "serving": deployment["serving"],
            "model_name": spec.name,
            "secrets": dict(sec.secrets),
            "network": dump(sec.network),
            "encryption": dump(sec.encryption),
            "access": [dump(a) for a in sec.access],
        }
        dep_inputs = {
            "model_version": registered.model_version,
            "artifacts": storage["artifacts"],
            "identity": identities["serving"],
        }
        if dep.mode == "online":
            endpoint = builder.add(
                "deploy",
                StepKind.DEPLOY,
                "deployment",
                layer=Layer.OPERATIONS,
                params=dep_params,
                inputs=dep_inputs,
                outputs={"endpoint": (ArtifactType.ENDPOINT, {"name": spec.name})},
                resources=resources(dep.resources),
                requires=dep_reqs,
                when="gate.passed",
            )["endpoint"]
        elif dep.mode == "batch":
            mon_drift = spec.monitoring.drift if spec.monitoring is not None else None
            drift = drift_tests(dump(mon_drift))
            if drift is not None and not drift["features"]:
                drift["features"] = sorted(spec.data.contract.columns)
            batch_params: BatchPredictParams = {
                **dep_params,
                "contract": dump(spec.data.contract),
                "target": spec.features.target,
                "task": spec.training.task,
                "engine": spec.data.engine,
                "spark": spark_params(spec),
                "drift": drift,
                "features": _raw_features(spec),
            }
            builder.add(
                "batch-predict",
                StepKind.BATCH_PREDICT,
                "deployment.batch",
                layer=Layer.OPERATIONS,
                params=batch_params,
                inputs={
                    "model_version": registered.model_version,
                    "reference": data.split["train"],
                },
                outputs={"predictions": (ArtifactType.PREDICTIONS, {})},
                resources=resources(dep.resources),
                requires=dep_reqs,
                when="gate.passed",
                # the input at the same path holds new rows on every scheduled run
                cache=False,
            )
        else:
            export_params: ExportParams = {
                **dep_params,
                "contract": dump(spec.data.contract),
                "target": spec.features.target,
                "task": spec.training.task,
                "features": _raw_features(spec),
            }
            builder.add(
                "export",
                StepKind.EXPORT,
                "deployment.edge",
                layer=Layer.OPERATIONS,
                params=export_params,
                inputs={
                    "model_version": registered.model_version,
                    "model": registered.model,
                    "test": data.split["test"],
                },
                outputs={
                    "package": (
                        ArtifactType.MODEL,
                        {"format": dep.edge.format if dep.edge else "onnx"},
                    )
                },
                requires=dep_reqs,
                when="gate.passed",
            )
    mon = spec.monitoring
    if mon is None:
        return None
    mon_reqs: list[tuple[str, str]] = []
    drift = drift_tests(dump(mon.drift))
    if mon.drift is not None:
        mon_reqs.append((f"drift.{mon.drift.method}", "monitoring.drift.method"))
        for field in ("numeric", "categorical"):
            chosen = getattr(mon.drift, field)
            if chosen is not None:
                mon_reqs.append((f"drift.{chosen}", f"monitoring.drift.{field}"))
    if mon.performance is not None:
        mon_reqs.append(("performance.delayed_labels", "monitoring.performance"))
    if mon.slos.latency_p99_ms is not None:
        mon_reqs.append(("slo.latency", "monitoring.slos.latency_p99_ms"))
    if mon.slos.error_rate is not None:
        mon_reqs.append(("slo.error_rate", "monitoring.slos.error_rate"))
    mon_inputs = {"reference": data.split["train"], "identity": identities["monitoring"]}
    if endpoint is not None:
        mon_inputs["endpoint"] = endpoint
    if drift is not None and not drift["features"]:
        drift["features"] = sorted(spec.feature_columns())
    monitor_params: MonitorParams = {
        "slos": dump(mon.slos),
        "drift": drift,
        "window": float(mon.window),
        "min_rows": mon.min_rows,
        "performance": directed(dump(mon.performance)),
        "dashboards": dump(mon.dashboards),
        "model_name": spec.name,
        "rollback": [dump(r) for r in getattr(dep.strategy, "rollback", ())] if dep else [],
        "budgets": dump(bud),
        "target": spec.features.target,
        "task": spec.training.task,
        "metrics": list(spec.evaluation.metrics),
    }
    signal = builder.add(
        "monitor",
        StepKind.MONITOR,
        "monitoring",
        layer=Layer.OPERATIONS,
        params=monitor_params,
        inputs=mon_inputs,
        outputs={"signal": (ArtifactType.SIGNAL, {})},
        requires=mon_reqs,
    )["signal"]
    if mon.alerts:
        alerts_params: AlertsParams = {
            "routes": [dump(a) for a in mon.alerts],
            "model_name": spec.name,
        }
        builder.add(
            "alerts",
            StepKind.ALERTS,
            "monitoring.alerts",
            layer=Layer.OPERATIONS,
            params=alerts_params,
            inputs={"signal": signal},
            requires=[
                (f"alerts.{a.channel}", f"monitoring.alerts[{i}].channel")
                for i, a in enumerate(mon.alerts)
            ],
        )
    return signal
