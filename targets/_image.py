"""The images emitted manifests run: which mlc extras a spec's steps need, and the Dockerfiles
that build them from the spec's project folder (serving and the kfp runtime)."""

from __future__ import annotations

from collections.abc import Sequence

from mlc.compiler.ir import IRGraph, StepKind

FRAMEWORK_EXTRAS = {
    "xgboost": "boost",
    "lightgbm": "boost",
    "keras": "keras",
    "lightning": "torch",
}
"""training.framework -> the mlc extra its models need to train and to load."""


def image_extras(ir: IRGraph, base: Sequence[str], *, training: bool) -> list[str]:
    """`base` plus the extras the spec's model needs; with `training`, also what its steps
    need to run (Spark for the spark engine, the serving stack for an ONNX export)."""
    extras = list(base)

    def add(extra: str) -> None:
        if extra not in extras:
            extras.append(extra)

    train = ir.first(StepKind.TRAIN)
    if train is not None and str(train.params.get("framework")) in FRAMEWORK_EXTRAS:
        add(FRAMEWORK_EXTRAS[str(train.params["framework"])])
    if training:
        if any(s.params.get("engine") == "spark" for s in ir.steps):
            add("spark")
        if ir.first(StepKind.EXPORT) is not None:
            add("serve")
    return extras
