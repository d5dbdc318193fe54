"""Spec -> IR. Deterministic: ids come from spec names, never from hashing or iteration order."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from mlc.compiler.ir.graph import IRGraph
from mlc.compiler.ir.model import (
    Artifact,
    ArtifactId,
    ArtifactType,
    Layer,
    Requirement,
    Resources,
    Step,
    StepId,
    StepKind,
)

if TYPE_CHECKING:
    # Only for annotations: generated IRs (tests, benchmarks, the local executor's callers) and
    # IR files read back must not pay for importing the spec models.
    from mlc.specs import Spec
    from mlc.specs._base import Resources as SpecResources

IDENTITY_ROLES = ("pipeline", "training", "serving", "monitoring")


def spec_hash(spec: Spec, dumped: dict[str, Any] | None = None) -> str:
    """sha256 of the resolved spec's canonical JSON: equal for equal meaning, any layout.

    `dumped` is `spec.model_dump(mode="json", by_alias=True)` when the caller has it already.
    """
    if dumped is None:
        dumped = spec.model_dump(mode="json", by_alias=True)
    canonical = json.dumps(dumped, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _resources(res: SpecResources) -> Resources:
    return Resources(
        cpu=res.cpu,
        memory=res.memory,
        gpu_count=res.gpu.count if res.gpu else 0,
        gpu_type=res.gpu.type if res.gpu else None,
        nodes=res.nodes,
    )


class _Dumper:
    """`model.model_dump(mode="json", by_alias=True)` of the spec's sub-models, from one dump.

    The spec is dumped once; each sub-model's part is found by walking the models and the dump
    side by side. Dumping a nested model on its own would build that model's serializer first
    (pydantic defers it), which cost more than the whole IR build.
    """

    def __init__(self, spec: Spec) -> None:
        self.dumped: dict[str, Any] = spec.model_dump(mode="json", by_alias=True)
        self._parts: dict[int, Any] = {}
        self._walk(spec, self.dumped)

    def _walk(self, value: Any, dumped: Any) -> None:
        from pydantic import BaseModel

        if isinstance(value, BaseModel):
            if not isinstance(dumped, dict):
                return
            self._parts[id(value)] = dumped
            for name, info in type(value).model_fields.items():
                key = info.serialization_alias or info.alias or name
                if key in dumped:
                    self._walk(getattr(value, name), dumped[key])
        elif isinstance(value, (list, tuple)) and isinstance(dumped, list):
            if len(value) == len(dumped):
                for item, part in zip(value, dumped, strict=True):
                    self._walk(item, part)
        elif isinstance(value, dict) and isinstance(dumped, dict):
            for key, item in value.items():
                if isinstance(key, str) and key in dumped:
                    self._walk(item, dumped[key])

    def __call__(self, model: Any) -> Any:
        if model is None:
            return None
        part = self._parts.get(id(model))
        if part is None:
            return model.model_dump(mode="json", by_alias=True)
        return _copy(part)


def _copy(value: Any) -> Any:
    """A deep copy of JSON data (steps own their params)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


class IRBuilder:
    """Collects steps and artifacts, then freezes them into an `IRGraph`."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.artifacts: list[Artifact] = []

    def add(
        self,
        step_id: str,
        kind: StepKind,
        origin: str,
        *,
        layer: Layer = Layer.PIPELINE,
        params: dict[str, Any] | None = None,
        inputs: dict[str, str] | None = None,
        outputs: dict[str, tuple[ArtifactType, dict[str, Any]]] | None = None,
        resources: Resources | None = None,
        retries: int = 0,
        cache: bool = True,
        timeout_s: float | None = None,
        requires: list[tuple[str, str]] | None = None,
        when: str | None = None,
    ) -> dict[str, str]:
        """Add a step; return its outputs as name -> artifact id (`<step>.<name>`)."""
        out_ids: dict[str, ArtifactId] = {}
        for name, (atype, meta) in (outputs or {}).items():
            art = ArtifactId(f"{step_id}.{name}")
            out_ids[name] = art
            self.artifacts.append(
                Artifact(id=art, type=atype, producer=StepId(step_id), name=name, meta=meta)
            )
        reqs = sorted({(f, o) for f, o in (requires or [])})
        self.steps.append(
            Step(
                id=StepId(step_id),
                kind=kind,
                layer=layer,
                origin=origin,
                params=params or {},
                inputs={k: ArtifactId(v) for k, v in (inputs or {}).items()},
                outputs=out_ids,
                resources=resources or Resources(),
                retries=retries,
                cache=cache,
                timeout_s=timeout_s,
                requires=tuple(Requirement(feature=f, origin=o) for f, o in reqs),
                when=when,
            )
        )
        return dict(out_ids)


def _direction(metric: str) -> str:
    """`higher` or `lower` (is better), from the spec's one metric table: runtime steps and
    targets compare with the direction the IR carries, never with a list of their own."""
    from mlc.specs.evaluation import metric_direction

    return metric_direction(metric)


def _directed(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """A metric entry of the params (gate, champion, fairness, monitor, trigger) plus its
    metric's `direction`."""
    if entry is None:
        return None
    return {**entry, "direction": _direction(str(entry["metric"]))}


def build_ir(spec: Spec) -> IRGraph:
    """Build the IR of a validated spec."""
    b = IRBuilder()
    _dump = _Dumper(spec)
    data, feats, training = spec.data, spec.features, spec.training
    contract_columns = sorted(data.contract.columns)
    feature_columns = sorted(spec.feature_columns())

    # -- data ------------------------------------------------------------------------------------
    sources: dict[str, str] = {}
    for i, source in enumerate(data.sources):
        origin = f"data.sources[{i}]"
        reqs = [(f"source.{source.format}", f"{origin}.format")]
        if data.engine == "spark":
            reqs.append(("engine.spark", "data.engine"))
        out = b.add(
            f"ingest-{source.name}",
            StepKind.INGEST,
            origin,
            params={
                "source": _dump(source),
                "engine": data.engine,
                "versioning": _dump(data.versioning),
            },
            outputs={"dataset": (ArtifactType.DATASET, {"columns": contract_columns})},
            requires=reqs,
        )
        sources[source.name] = out["dataset"]
    validate_reqs = [(f"contract.{data.contract.on_failure}", "data.contract.on_failure")]
    if data.engine == "spark":
        validate_reqs.append(("engine.spark", "data.engine"))
    validated = b.add(
        "validate",
        StepKind.VALIDATE,
        "data.contract",
        params={
            "contract": _dump(data.contract),
            "engine": data.engine,
            "sources": [s.name for s in data.sources],
            "join_on": {s.name: list(s.join_on) for s in data.sources[1:]},
        },
        inputs=sources,
        outputs={
            "dataset": (ArtifactType.DATASET, {"columns": contract_columns}),
            "report": (ArtifactType.REPORT, {"format": "json"}),
        },
        requires=validate_reqs,
    )
    # The split checks sample sizes against what later steps do with each part (gates on test,
    # folds of the train part, groups of the sensitive attributes), and computes a derived
    # target before splitting so that stratification sees it.
    derived_target = next((d for d in feats.derived if d.name == feats.target), None)
    split_params: dict[str, Any] = {
        **_dump(data.split),
        "target": feats.target,
        "task": training.task,
        "gates": len(spec.evaluation.gates),
        "cv_folds": spec.tuning.cv_folds if spec.tuning is not None else None,
        "sensitive_attributes": (
            list(spec.governance.fairness.sensitive_attributes)
            if spec.governance.fairness is not None
            else []
        ),
    }
    if derived_target is not None:
        split_params["derived_target"] = _dump(derived_target)
    split = b.add(
        "split",
        StepKind.SPLIT,
        "data.split",
        params=split_params,
        inputs={"dataset": validated["dataset"]},
        outputs={
            name: (ArtifactType.DATASET, {"columns": contract_columns})
            for name in (
                ("train", "validation", "test") if data.split.validation_size else ("train", "test")
            )
        },
        requires=[(f"split.{data.split.method}", "data.split.method")],
    )
    feature_reqs = [
        (f"transform.{t.op}", f"features.transforms[{i}].op")
        for i, t in enumerate(feats.transforms)
    ]
    features = b.add(
        "features",
        StepKind.FEATURES,
        "features",
        params={
            "target": feats.target,
            "transforms": [_dump(t) for t in feats.transforms],
            "derived": [_dump(d) for d in feats.derived if d.name != feats.target],
            "selection": _dump(feats.selection),
            "dtypes": {c: col.dtype for c, col in sorted(data.contract.columns.items())},
            "pii": sorted(c for c, col in data.contract.columns.items() if col.pii),
        },
        inputs={"train": split["train"]},
        outputs={"transform": (ArtifactType.TRANSFORM, {"columns": feature_columns})},
        requires=feature_reqs,
    )

    # -- training --------------------------------------------------------------------------------
    train_params = {
        "framework": training.framework,
        "task": training.task,
        "target": feats.target,
        "model": _dump(training.model),
        "entry_point": training.entry_point,
        "lightning": _dump(training.lightning),
        "distributed": _dump(training.distributed),
        "seed": training.seed,
        "max_time": training.max_time,
    }
    train_reqs = [(f"framework.{training.framework}", "training.framework")]
    res = training.resources
    for key in ("cpu", "memory", "gpu"):
        if getattr(res, key) is not None:
            train_reqs.append((f"resources.{key}", f"training.resources.{key}"))
    if res.nodes > 1:
        train_reqs.append(("resources.nodes", "training.resources.nodes"))
    if training.distributed.strategy != "none":
        train_reqs.append(
            (f"distributed.{training.distributed.strategy}", "training.distributed.strategy")
        )
    if training.max_time is not None:
        train_reqs.append(("max_time", "training.max_time"))
    if training.retries:
        train_reqs.append(("retries", "training.retries"))
    train_inputs = {"train": split["train"], "transform": features["transform"]}
    if "validation" in split:
        train_inputs["validation"] = split["validation"]
    if spec.tuning is not None:
        tuning = spec.tuning
        tune_reqs = [
            (f"tuning.{tuning.engine}", "tuning.engine"),
            (f"tuning.pruner.{tuning.pruner}", "tuning.pruner"),
        ]
        if tuning.parallelism > 1:
            tune_reqs.append(("tuning.parallel", "tuning.parallelism"))
        if tuning.storage:
            tune_reqs.append(("tuning.shared_storage", "tuning.storage"))
        if tuning.timeout is not None:
            tune_reqs.append(("max_time", "tuning.timeout"))
        tuned = b.add(
            "tune",
            StepKind.TUNE,
            "tuning",
            params={
                **_dump(tuning),
                **{k: train_params[k] for k in ("framework", "task", "target", "model", "seed")},
                "metric_direction": _direction(tuning.objective.metric),
            },
            inputs={"train": split["train"], "transform": features["transform"]},
            outputs={
                "best_params": (ArtifactType.PARAMS, {}),
                "study": (ArtifactType.REPORT, {"format": "json"}),
            },
            resources=_resources(res),
            retries=training.retries,
            cache=training.cache,
            timeout_s=tuning.timeout,
            requires=tune_reqs,
        )
        train_inputs["params"] = tuned["best_params"]
    trained = b.add(
        "train",
        StepKind.TRAIN,
        "training",
        params=train_params,
        inputs=train_inputs,
        outputs={
            "model": (ArtifactType.MODEL, {"framework": training.framework, "task": training.task})
        },
        resources=_resources(res),
        retries=training.retries,
        cache=training.cache,
        timeout_s=training.max_time,
        requires=train_reqs,
    )

    # -- evaluation and governance ---------------------------------------------------------------
    # One candidate model flows through evaluate, fairness, explain, gate, register and the card,
    # so that every verdict is about the bytes that get registered: with mitigation the fairness
    # step runs right after training and its mitigated `model` is the candidate; without, the
    # candidate is the trained model.
    ev = spec.evaluation
    gov = spec.governance
    candidate = trained["model"]
    reports: dict[str, str] = {}
    fairness_metrics: str | None = None
    if gov.fairness is not None:
        mitigated = gov.fairness.mitigation != "none"
        fair_outputs: dict[str, tuple[ArtifactType, dict[str, Any]]] = {
            "metrics": (ArtifactType.METRICS, {"metrics": [gov.fairness.metric]}),
            "report": (ArtifactType.REPORT, {"format": "json"}),
        }
        if mitigated:
            fair_outputs["model"] = (
                ArtifactType.MODEL,
                {
                    "framework": training.framework,
                    "task": training.task,
                    "mitigated": gov.fairness.mitigation,
                },
            )
        fair = b.add(
            "fairness",
            StepKind.FAIRNESS,
            "governance.fairness",
            params={**_dump(gov.fairness), "target": feats.target},
            inputs={"model": trained["model"], "test": split["test"], "train": split["train"]},
            outputs=fair_outputs,
            requires=[(f"fairness.{gov.fairness.mitigation}", "governance.fairness.mitigation")],
        )
        if mitigated:
            candidate = fair["model"]
        fairness_metrics = fair["metrics"]
        reports["fairness"] = fair["report"]
    eval_reqs = []
    if ev.champion is not None:
        eval_reqs.append(("evaluation.champion", "evaluation.champion"))
    for i, r in enumerate(ev.robustness):
        eval_reqs.append((f"robustness.{r.kind}", f"evaluation.robustness[{i}].kind"))
    evaluated = b.add(
        "evaluate",
        StepKind.EVALUATE,
        "evaluation",
        params={
            "metrics": list(ev.metrics),
            "directions": {m: _direction(m) for m in ev.metrics},
            "task": training.task,
            "target": feats.target,
            "robustness": [_dump(r) for r in ev.robustness],
        },
        inputs={"model": candidate, "test": split["test"]},
        outputs={
            "metrics": (ArtifactType.METRICS, {"metrics": sorted(ev.metrics)}),
            "predictions": (ArtifactType.PREDICTIONS, {}),
        },
        requires=eval_reqs,
    )
    gate_inputs = {"metrics": evaluated["metrics"]}
    if fairness_metrics is not None:
        gate_inputs["fairness"] = fairness_metrics
    if gov.explainability is not None:
        # Explanations rank only what the model is meant to read: columns the spec keeps out of
        # the features, and PII columns, are not listed (nor permuted).
        contract_cols = set(data.contract.columns)
        kept_out = set(feats.selection.exclude) | {
            c for c, col in data.contract.columns.items() if col.pii
        }
        if feats.selection.include is not None:
            kept_out |= contract_cols - set(feats.selection.include)
        explained = b.add(
            "explain",
            StepKind.EXPLAIN,
            "governance.explainability",
            params={
                **_dump(gov.explainability),
                "target": feats.target,
                "task": training.task,
                "exclude": sorted(kept_out - {feats.target}),
            },
            inputs={"model": candidate, "test": split["test"]},
            outputs={"report": (ArtifactType.REPORT, {"format": "json"})},
            requires=[(f"explain.{gov.explainability.method}", "governance.explainability.method")],
        )
        reports["explain"] = explained["report"]
    gate = b.add(
        "gate",
        StepKind.GATE,
        "evaluation.gates",
        params={
            "gates": [_directed(_dump(g)) for g in ev.gates],
            "champion": _directed(_dump(ev.champion)),
            "fairness": _directed(_dump(gov.fairness)),
            "robustness": [_dump(r) for r in ev.robustness],
            "model_name": spec.name,
        },
        inputs=gate_inputs,
        outputs={"verdict": (ArtifactType.VERDICT, {})},
    )
    # The card is written whether or not the gate passed; register (only when it passed) logs
    # the card into the registered version's MLflow run, beside the hyperparameters it was
    # trained with and the tuning trials.
    card = b.add(
        "model-card",
        StepKind.MODEL_CARD,
        "governance.model_card",
        params={
            "model_name": spec.name,
            "description": spec.description,
            "owners": list(gov.owners or spec.owners),
            "approvers": list(gov.approvers),
            "risk": gov.risk,
            "compliance": list(gov.compliance),
            "card": _dump(gov.model_card),
            "task": training.task,
        },
        inputs={
            "model": candidate,
            "metrics": evaluated["metrics"],
            "verdict": gate["verdict"],
            **reports,
        },
        outputs={"card": (ArtifactType.REPORT, {"format": "markdown"})},
        cache=False,
    )
    register_inputs = {
        "model": candidate,
        "metrics": evaluated["metrics"],
        "verdict": gate["verdict"],
        "card": card["card"],
        **reports,
    }
    if spec.tuning is not None:
        register_inputs["params"] = train_inputs["params"]
        register_inputs["study"] = tuned["study"]
    registered = b.add(
        "register",
        StepKind.REGISTER,
        "governance",
        params={
            "model_name": spec.name,
            "promotion": _dump(spec.feedback.promotion),
            "approvers": list(gov.approvers),
            "contract": _dump(data.contract),
            "target": feats.target,
            "task": training.task,
            "model": _dump(training.model),
            "tuning_storage": spec.tuning.storage if spec.tuning is not None else None,
        },
        inputs=register_inputs,
        outputs={"model_version": (ArtifactType.MODEL_VERSION, {})},
        when="gate.passed",
        cache=False,
    )

    # -- operations ------------------------------------------------------------------------------
    dep = spec.deployment
    sec = spec.security
    cloud = dep.cloud if dep else "onprem"
    region = dep.region if dep else None
    storage = b.add(
        "storage",
        StepKind.STORAGE,
        "security.encryption",
        layer=Layer.OPERATIONS,
        params={
            "cloud": cloud,
            "region": region,
            "encryption": _dump(sec.encryption),
            "retention": _dump(gov.retention),
            "versioning": _dump(data.versioning),
        },
        outputs={
            "data": (ArtifactType.BUCKET, {"purpose": "data"}),
            "artifacts": (ArtifactType.BUCKET, {"purpose": "artifacts"}),
        },
        requires=[("encryption.at_rest", "security.encryption.at_rest")]
        if sec.encryption.at_rest
        else [],
    )
    identities = b.add(
        "identities",
        StepKind.IDENTITY,
        "security.access",
        layer=Layer.OPERATIONS,
        params={
            "cloud": cloud,
            "roles": list(IDENTITY_ROLES),
            "access": [_dump(a) for a in sec.access],
        },
        outputs={role: (ArtifactType.IDENTITY, {"role": role}) for role in IDENTITY_ROLES},
        requires=[("access.roles", "security.access")] if sec.access else [],
    )
    bud = spec.budgets
    if any(
        v is not None
        for v in (
            bud.training_usd,
            bud.tuning_usd,
            bud.serving_usd_per_month,
            bud.total_usd_per_month,
            bud.gpu_hours,
        )
    ):
        b.add(
            "budget",
            StepKind.BUDGET,
            "budgets",
            layer=Layer.OPERATIONS,
            params={**_dump(bud), "cloud": cloud},
            requires=[("budgets", "budgets")],
        )
    endpoint: str | None = None
    if dep is not None:
        dep_reqs = [
            (f"mode.{dep.mode}", "deployment.mode"),
            (f"platform.{dep.platform}", "deployment.platform"),
            (f"cloud.{dep.cloud}", "deployment.cloud"),
        ]
        if dep.mode == "online":
            dep_reqs.append((f"strategy.{dep.strategy.kind}", "deployment.strategy.kind"))
        if dep.autoscaling.scale_to_zero:
            dep_reqs.append(("autoscaling.scale_to_zero", "deployment.autoscaling.scale_to_zero"))
        if dep.resources.gpu is not None:
            dep_reqs.append(("resources.gpu", "deployment.resources.gpu"))
        if sec.encryption.in_transit:
            dep_reqs.append(("encryption.in_transit", "security.encryption.in_transit"))
        if sec.network.ingress or sec.network.egress:
            dep_reqs.append(("network.policy", "security.network"))
        if sec.secrets:
            dep_reqs.append(("secrets", "security.secrets"))
        dep_params = {
            **_dump(dep),
            "model_name": spec.name,
            "secrets": dict(sec.secrets),
            "network": _dump(sec.network),
            "encryption": _dump(sec.encryption),
            "access": [_dump(a) for a in sec.access],
        }
        dep_inputs = {
            "model_version": registered["model_version"],
            "artifacts": storage["artifacts"],
            "identity": identities["serving"],
        }
        if dep.mode == "online":
            endpoint = b.add(
                "deploy",
                StepKind.DEPLOY,
                "deployment",
                layer=Layer.OPERATIONS,
                params=dep_params,
                inputs=dep_inputs,
                outputs={"endpoint": (ArtifactType.ENDPOINT, {"name": spec.name})},
                resources=_resources(dep.resources),
                requires=dep_reqs,
                when="gate.passed",
            )["endpoint"]
        elif dep.mode == "batch":
            b.add(
                "batch-predict",
                StepKind.BATCH_PREDICT,
                "deployment.batch",
                layer=Layer.OPERATIONS,
                params=dep_params,
                inputs=dep_inputs,
                outputs={"predictions": (ArtifactType.PREDICTIONS, {})},
                resources=_resources(dep.resources),
                requires=dep_reqs,
                when="gate.passed",
            )
        else:
            b.add(
                "export",
                StepKind.EXPORT,
                "deployment.edge",
                layer=Layer.OPERATIONS,
                params=dep_params,
                inputs=dep_inputs,
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
    signal: str | None = None
    if mon is not None:
        mon_reqs: list[tuple[str, str]] = []
        if mon.drift is not None:
            mon_reqs.append((f"drift.{mon.drift.method}", "monitoring.drift.method"))
        if mon.performance is not None:
            mon_reqs.append(("performance.delayed_labels", "monitoring.performance"))
        if mon.slos.latency_p99_ms is not None:
            mon_reqs.append(("slo.latency", "monitoring.slos.latency_p99_ms"))
        if mon.slos.error_rate is not None:
            mon_reqs.append(("slo.error_rate", "monitoring.slos.error_rate"))
        mon_inputs = {"reference": split["train"], "identity": identities["monitoring"]}
        if endpoint is not None:
            mon_inputs["endpoint"] = endpoint
        drift = _dump(mon.drift)
        if drift is not None and not drift["features"]:
            drift["features"] = feature_columns
        signal = b.add(
            "monitor",
            StepKind.MONITOR,
            "monitoring",
            layer=Layer.OPERATIONS,
            params={
                "slos": _dump(mon.slos),
                "drift": drift,
                "performance": _directed(_dump(mon.performance)),
                "dashboards": _dump(mon.dashboards),
                "model_name": spec.name,
                "rollback": [_dump(r) for r in getattr(dep.strategy, "rollback", ())]
                if dep
                else [],
                "budgets": _dump(bud),
            },
            inputs=mon_inputs,
            outputs={"signal": (ArtifactType.SIGNAL, {})},
            requires=mon_reqs,
        )["signal"]
        if mon.alerts:
            b.add(
                "alerts",
                StepKind.ALERTS,
                "monitoring.alerts",
                layer=Layer.OPERATIONS,
                params={"routes": [_dump(a) for a in mon.alerts], "model_name": spec.name},
                inputs={"signal": signal},
                requires=[
                    (f"alerts.{a.channel}", f"monitoring.alerts[{i}].channel")
                    for i, a in enumerate(mon.alerts)
                ],
            )
    fb = spec.feedback
    if fb.triggers or fb.active_learning is not None:
        b.add(
            "retrain-trigger",
            StepKind.RETRAIN_TRIGGER,
            "feedback",
            layer=Layer.OPERATIONS,
            params={
                "triggers": [
                    _directed(t) if t.get("kind") == "performance_drop" else t
                    for t in map(_dump, fb.triggers)
                ],
                "active_learning": _dump(fb.active_learning),
                "promotion": _dump(fb.promotion),
                "model_name": spec.name,
            },
            inputs={"signal": signal} if signal else {},
            requires=[
                (f"trigger.{t.kind}", f"feedback.triggers[{i}].kind")
                for i, t in enumerate(fb.triggers)
            ]
            + (
                [("active_learning", "feedback.active_learning")]
                if fb.active_learning is not None
                else []
            ),
        )

    metadata = {
        "description": spec.description,
        "owners": sorted(spec.owners),
        "tags": dict(sorted(spec.tags.items())),
        "api_version": spec.api_version,
        "spec_hash": spec_hash(spec, _dump.dumped),
    }
    settings = {
        "governance": _dump(gov),
        "security": _dump(sec),
        "budgets": _dump(bud),
        "deployment": {"cloud": cloud, "region": region},
        "overridable": sorted(spec.overridable),
        "target_options": {k: spec.targets[k] for k in sorted(spec.targets)},
    }
    return IRGraph(spec.name, metadata, settings, b.steps, b.artifacts)
