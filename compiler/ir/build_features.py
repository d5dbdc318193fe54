"""The features section's step: `features`, the transform fitted on the train part."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlc.compiler.ir.build_data import DataArtifacts, spark_params
from mlc.compiler.ir.builder import SpecBuilder
from mlc.compiler.ir.model import ArtifactType, StepKind

if TYPE_CHECKING:
    from mlc.compiler.ir.params import FeaturesParams
    from mlc.specs import Spec


def build_features(spec: Spec, builder: SpecBuilder, data: DataArtifacts) -> str:
    """Add the `features` step; return its transform artifact."""
    feats, contract = spec.features, spec.data.contract
    feature_reqs = [
        (f"transform.{t.op}", f"features.transforms[{i}].op")
        for i, t in enumerate(feats.transforms)
    ]
    params: FeaturesParams = {
        "target": feats.target,
        "task": spec.training.task,
        "transforms": [builder.dump(t) for t in feats.transforms],
        "derived": [builder.dump(d) for d in feats.derived if d.name != feats.target],
        "selection": builder.dump(feats.selection),
        "dtypes": {c: col.dtype for c, col in sorted(contract.columns.items())},
        "pii": sorted(c for c, col in contract.columns.items() if col.pii),
    }
    spark = spark_params(spec)
    if spark is not None:
        params["engine"] = "spark"
        params["spark"] = spark
    features = builder.add(
        "features",
        StepKind.FEATURES,
        "features",
        params=params,
        inputs={"train": data.split["train"]},
        outputs={
            "transform": (ArtifactType.TRANSFORM, {"columns": sorted(spec.feature_columns())})
        },
        requires=feature_reqs,
    )
    return features["transform"]
