"""The evaluation and governance sections' steps: `fairness`, `evaluate`, `explain`, `gate`,
`model_card` and `register`.

One candidate model flows through evaluate, fairness, explain, gate, register and the card, so
that every verdict is about the bytes that get registered: with mitigation the fairness step runs
right after training and its mitigated `model` is the candidate; without, the candidate is the
trained model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlc.compiler.ir.build_data import DataArtifacts
from mlc.compiler.ir.build_training import TrainingArtifacts
from mlc.compiler.ir.builder import SpecBuilder, directed, direction
from mlc.compiler.ir.model import ArtifactType, StepKind

if TYPE_CHECKING:
    from mlc.compiler.ir.params import (
        EvaluateParams,
        ExplainParams,
        FairnessParams,
        GateParams,
        ModelCardParams,
        RegisterParams,
    )
    from mlc.specs import Spec


@dataclass(frozen=True)
class Registered:
    """What the evaluation section hands to operations: the registration and its model."""

    model_version: str
    model: str
    """The candidate model artifact: the bytes the gate judged and register logged."""


def build_evaluation(
    spec: Spec, builder: SpecBuilder, data: DataArtifacts, trained: TrainingArtifacts
) -> Registered:
    """Add the evaluation and governance steps; return the registration and its model."""
    ev, gov, training, feats = spec.evaluation, spec.governance, spec.training, spec.features
    dump, split = builder.dump, data.split
    candidate = trained.model
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
        fairness_spec = dump(gov.fairness)
        fair_params: FairnessParams = {
            "sensitive_attributes": fairness_spec["sensitive_attributes"],
            "metric": fairness_spec["metric"],
            "threshold": fairness_spec["threshold"],
            "mitigation": fairness_spec["mitigation"],
            "target": feats.target,
        }
        fair = builder.add(
            "fairness",
            StepKind.FAIRNESS,
            "governance.fairness",
            params=fair_params,
            inputs={"model": trained.model, "test": split["test"], "train": split["train"]},
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
    eval_params: EvaluateParams = {
        "metrics": list(ev.metrics),
        "directions": {m: direction(m) for m in ev.metrics},
        "task": training.task,
        "target": feats.target,
        "robustness": [dump(r) for r in ev.robustness],
    }
    evaluated = builder.add(
        "evaluate",
        StepKind.EVALUATE,
        "evaluation",
        params=eval_params,
        inputs={"model": candidate, "test": split["test"]},
        outputs={
            "metrics": (ArtifactType.METRICS, {"metrics": sorted(ev.metrics)}),
            "predictions": (ArtifactType.PREDICTIONS, {}),
        },
        requires=eval_reqs,
    )
    gate_inputs = {"metrics": evaluated["metrics"]}
    if ev.champion is not None and ev.champion.compare and ev.champion.same_holdout:
        # the registered champion is scored on these very rows beside the candidate
        gate_inputs["model"] = candidate
        gate_inputs["test"] = split["test"]
    if fairness_metrics is not None:
        gate_inputs["fairness"] = fairness_metrics
    if gov.explainability is not None:
        # Explanations rank only what the model is meant to read: columns the spec keeps out of
        # the features, and PII columns, are not listed (nor permuted).
        columns = spec.data.contract.columns
        kept_out = set(feats.selection.exclude) | {c for c, col in columns.items() if col.pii}
        if feats.selection.include is not None:
            kept_out |= set(columns) - set(feats.selection.include)
        explain_params: ExplainParams = {
            "method": gov.explainability.method,
            "top_k": gov.explainability.top_k,
            "target": feats.target,
            "task": training.task,
            "exclude": sorted(kept_out - {feats.target}),
        }
        explained = builder.add(
            "explain",
            StepKind.EXPLAIN,
            "governance.explainability",
            params=explain_params,
            inputs={"model": candidate, "test": split["test"]},
            outputs={"report": (ArtifactType.REPORT, {"format": "json"})},
            requires=[(f"explain.{gov.explainability.method}", "governance.explainability.method")],
        )
        reports["explain"] = explained["report"]
    gate_params: GateParams = {
        "gates": [directed(dump(g)) for g in ev.gates],
        "champion": directed(dump(ev.champion)),
        "fairness": directed(dump(gov.fairness)),
        "robustness": [dump(r) for r in ev.robustness],
        "model_name": spec.name,
        "target": feats.target,
        "task": training.task,
    }
    gate = builder.add(
        "gate",
        StepKind.GATE,
        "evaluation.gates",
        params=gate_params,
        inputs=gate_inputs,
        outputs={"verdict": (ArtifactType.VERDICT, {})},
    )
    # The card is written whether or not the gate passed; register (only when it passed) logs
    # the card into the registered version's MLflow run, beside the hyperparameters it was
    # trained with and the tuning trials.
    card_params: ModelCardParams = {
        "model_name": spec.name,
        "description": spec.description,
        "owners": list(gov.owners or spec.owners),
        "approvers": list(gov.approvers),
        "risk": gov.risk,
        "compliance": list(gov.compliance),
        "card": dump(gov.model_card),
        "task": training.task,
    }
    card = builder.add(
        "model-card",
        StepKind.MODEL_CARD,
        "governance.model_card",
        params=card_params,
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
        # the train split, profiled with the model as the reference for drift
        "reference": split["train"],
        **reports,
    }
    if trained.best_params is not None and trained.study is not None:
        register_inputs["params"] = trained.best_params
        register_inputs["study"] = trained.study
    register_params: RegisterParams = {
        "model_name": spec.name,
        "promotion": dump(spec.feedback.promotion),
        "approvers": list(gov.approvers),
        "contract": dump(spec.data.contract),
        "target": feats.target,
        "task": training.task,
        "model": dump(training.model),
        "tuning_storage": spec.tuning.storage if spec.tuning is not None else None,
        "promote_by": "rollout"
        if spec.deployment is not None and spec.deployment.strategy.kind in ("canary", "blue_green")
        else "register",
    }
    registered = builder.add(
        "register",
        StepKind.REGISTER,
        "governance",
        params=register_params,
        inputs=register_inputs,
        outputs={"model_version": (ArtifactType.MODEL_VERSION, {})},
        when="gate.passed",
        cache=False,
    )
    return Registered(registered["model_version"], candidate)
