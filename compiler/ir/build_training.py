"""The training and tuning sections' steps: `tune` (when the spec tunes) and `train`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlc.compiler.ir.build_data import DataArtifacts, spark_params
from mlc.compiler.ir.builder import SpecBuilder, direction, resources
from mlc.compiler.ir.model import ArtifactType, StepKind

if TYPE_CHECKING:
    from mlc.compiler.ir.params import TrainParams, TuneParams
    from mlc.specs import Spec


@dataclass(frozen=True, slots=True)
class TrainingArtifacts:
    """What training produces for evaluation and governance."""

    model: str
    """The trained model."""
    best_params: str | None
    """Tuning's best hyperparameters (None without tuning)."""
    study: str | None
    """Tuning's study report (None without tuning)."""


def build_training(
    spec: Spec, builder: SpecBuilder, data: DataArtifacts, transform: str
) -> TrainingArtifacts:
    training, target = spec.training, spec.features.target
    train_params: TrainParams = {
        "framework": training.framework,
        "task": training.task,
        "target": target,
        "model": builder.dump(training.model),
        "entry_point": training.entry_point,
        "lightning": builder.dump(training.lightning),
        "boost": builder.dump(training.boost),
        "keras": builder.dump(training.keras),
        "distributed": builder.dump(training.distributed),
        "seed": training.seed,
        "max_time": training.max_time,
    }
    if training.sample is not None:
        train_params["sample"] = training.sample
    spark = spark_params(spec)
    if spark is not None:
        # spark_ml trains in Spark; the others read the spark engine's frames
        train_params["spark"] = spark
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
    train_inputs = {"train": data.split["train"], "transform": transform}
    if "validation" in data.split:
        train_inputs["validation"] = data.split["validation"]
    best_params: str | None = None
    study: str | None = None
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
        tuning_spec = builder.dump(tuning)
        tune_params: TuneParams = {
            "engine": tuning_spec["engine"],
            "objective": {
                "metric": tuning.objective.metric,
                "direction": tuning.objective.direction
                or ("minimize" if direction(tuning.objective.metric) == "lower" else "maximize"),
            },
            "search_space": tuning_spec["search_space"],
            "trials": tuning_spec["trials"],
            "timeout": tuning_spec["timeout"],
            "parallelism": tuning_spec["parallelism"],
            "pruner": tuning_spec["pruner"],
            "sampler": tuning_spec["sampler"],
            "cv_folds": tuning_spec["cv_folds"],
            "storage": tuning_spec["storage"],
            "framework": train_params["framework"],
            "task": train_params["task"],
            "target": train_params["target"],
            "model": builder.dump(training.model),
            "seed": train_params["seed"],
            "metric_direction": direction(tuning.objective.metric),
            "lightning": train_params["lightning"],
            "boost": train_params["boost"],
            "keras": train_params["keras"],
            "distributed": train_params["distributed"],
            "max_time": train_params["max_time"],
        }
        if training.sample is not None:
            tune_params["sample"] = training.sample
        tuned = builder.add(
            "tune",
            StepKind.TUNE,
            "tuning",
            params=tune_params,
            inputs={"train": data.split["train"], "transform": transform},
            outputs={
                "best_params": (ArtifactType.PARAMS, {}),
                "study": (ArtifactType.REPORT, {"format": "json"}),
            },
            resources=resources(res),
            retries=training.retries,
            cache=training.cache,
            timeout_s=tuning.timeout,
            requires=tune_reqs,
        )
        best_params, study = tuned["best_params"], tuned["study"]
        train_inputs["params"] = best_params
    trained = builder.add(
        "train",
        StepKind.TRAIN,
        "training",
        params=train_params,
        inputs=train_inputs,
        outputs={
            "model": (ArtifactType.MODEL, {"framework": training.framework, "task": training.task})
        },
        resources=resources(res),
        retries=training.retries,
        cache=training.cache,
        timeout_s=training.max_time,
        requires=train_reqs,
    )
    return TrainingArtifacts(model=trained["model"], best_params=best_params, study=study)
