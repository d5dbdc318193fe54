"""The feedback section's step: `retrain_trigger`, when the spec has triggers or active
learning."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlc.compiler.ir.builder import SpecBuilder, directed
from mlc.compiler.ir.model import Layer, StepKind

if TYPE_CHECKING:
    from mlc.compiler.ir.params import RetrainTriggerParams
    from mlc.specs import Spec


def build_feedback(spec: Spec, builder: SpecBuilder, signal: str | None) -> None:
    fb = spec.feedback
    if not fb.triggers and fb.active_learning is None:
        return
    params: RetrainTriggerParams = {
        "triggers": [
            directed(t) if t.get("kind") == "performance_drop" else t
            for t in map(builder.dump, fb.triggers)
        ],
        "active_learning": builder.dump(fb.active_learning),
        "promotion": builder.dump(fb.promotion),
        "model_name": spec.name,
        "target": spec.features.target,
    }
    requires = [
        (f"trigger.{t.kind}", f"feedback.triggers[{i}].kind") for i, t in enumerate(fb.triggers)
    ]
    if fb.active_learning is not None:
        requires.append(("active_learning", "feedback.active_learning"))
    builder.add(
        "retrain-trigger",
        StepKind.RETRAIN_TRIGGER,
        "feedback",
        layer=Layer.OPERATIONS,
        params=params,
        inputs={"signal": signal} if signal else {},
        requires=requires,
    )
