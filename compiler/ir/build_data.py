"""The data section's steps: one `ingest` per source, `validate` (join and contract), `split`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlc.compiler.ir.builder import SpecBuilder
from mlc.compiler.ir.model import ArtifactType, StepKind

if TYPE_CHECKING:
    from mlc.compiler.ir.params import IngestParams, SparkParams, SplitParams, ValidateParams
    from mlc.specs import Spec


@dataclass(frozen=True, slots=True)
class DataArtifacts:
    """What the data section produces for the sections after it."""

    split: dict[str, str]
    """Split part (`train`, `test`, and `validation` when there is one) -> dataset artifact."""


def spark_params(spec: Spec) -> SparkParams | None:
    """The spark engine's settings (`data.spark` or its defaults); None for pandas."""
    if spec.data.engine != "spark":
        return None
    settings = spec.data.spark
    if settings is None:
        return {"master": "local[1]", "conf": {}}
    return {"master": settings.master, "conf": dict(sorted(settings.conf.items()))}


def build_data(spec: Spec, builder: SpecBuilder) -> DataArtifacts:
    data, feats, training = spec.data, spec.features, spec.training
    dump = builder.dump
    contract_columns = sorted(data.contract.columns)
    sources: dict[str, str] = {}
    spark = spark_params(spec)
    for i, source in enumerate(data.sources):
        origin = f"data.sources[{i}]"
        reqs = [(f"source.{source.format}", f"{origin}.format")]
        if data.engine == "spark":
            reqs.append(("engine.spark", "data.engine"))
        ingest: IngestParams = {
            "source": dump(source),
            "engine": data.engine,
            "versioning": dump(data.versioning),
        }
        if spark is not None:
            ingest["spark"] = spark
        out = builder.add(
            f"ingest-{source.name}",
            StepKind.INGEST,
            origin,
            params=ingest,
            outputs={"dataset": (ArtifactType.DATASET, {"columns": contract_columns})},
            requires=reqs,
        )
        sources[source.name] = out["dataset"]
    validate_reqs = [(f"contract.{data.contract.on_failure}", "data.contract.on_failure")]
    if data.engine == "spark":
        validate_reqs.append(("engine.spark", "data.engine"))
    validate: ValidateParams = {
        "contract": dump(data.contract),
        "engine": data.engine,
        "sources": [s.name for s in data.sources],
        "join_on": {s.name: list(s.join_on) for s in data.sources[1:]},
    }
    if spark is not None:
        validate["spark"] = spark
    validated = builder.add(
        "validate",
        StepKind.VALIDATE,
        "data.contract",
        params=validate,
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
    split_spec = dump(data.split)
    split_params: SplitParams = {
        "method": split_spec["method"],
        "test_size": split_spec["test_size"],
        "validation_size": split_spec["validation_size"],
        "seed": split_spec["seed"],
        "stratify_by": split_spec["stratify_by"],
        "time_column": split_spec["time_column"],
        "minimum": split_spec["minimum"],
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
        split_params["derived_target"] = dump(derived_target)
    if data.split.key is not None:
        split_params["key"] = data.split.key
    if spark is not None:
        split_params["engine"] = "spark"
        split_params["spark"] = spark
    split = builder.add(
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
    return DataArtifacts(split=split)
