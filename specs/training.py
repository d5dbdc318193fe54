"""The `training` section: framework, model and parameters, resources and distribution."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field

from mlc.specs._base import (
    INT32_MAX,
    SEED_MAX,
    Duration,
    EntryPoint,
    FreeValue,
    Resources,
    StrictModel,
    Violation,
)

Framework = Literal["sklearn", "lightning", "custom"]
Task = Literal["classification", "regression"]


class Model(StrictModel):
    name: str = Field(min_length=1)
    """Estimator: a scikit-learn class (`HistGradientBoostingClassifier` or its dotted path),
    or for Lightning a built-in module (`tabular_mlp`)."""
    params: dict[str, FreeValue] = Field(default_factory=dict)


class Distributed(StrictModel):
    strategy: Literal["none", "ddp", "fsdp", "deepspeed"] = "none"
    devices: Annotated[int, Field(ge=1, le=INT32_MAX)] | Literal["auto"] = "auto"
    """Devices per node."""


class EarlyStopping(StrictModel):
    """Stop when the loss on the validation split has stopped improving."""

    patience: int = Field(5, ge=1)
    """Epochs without an improvement of at least `min_delta` before training stops."""
    min_delta: float = Field(0.0, ge=0)


class LightningOptions(StrictModel):
    max_epochs: int = Field(20, ge=1)
    batch_size: int = Field(256, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    precision: Literal["32-true", "16-mixed", "bf16-mixed", "64-true"] = "32-true"
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    early_stopping: EarlyStopping | None = None
    """Needs a validation split (`data.split.validation_size` > 0); the weights kept are those
    of the epoch with the lowest validation loss."""


class Training(StrictModel):
    framework: Framework = "sklearn"
    task: Task = "classification"
    model: Model | None = None
    entry_point: EntryPoint | None = None
    """For `framework: custom`: `module:function(X_train, y_train, params) -> fitted model`."""
    lightning: LightningOptions = LightningOptions()
    resources: Resources = Resources()
    distributed: Distributed = Distributed()
    max_time: Duration | None = None
    """Wall-clock cap for training; the step stops cleanly when it is reached."""
    seed: int = Field(42, ge=0, le=SEED_MAX)
    retries: int = Field(0, ge=0, le=10)
    cache: bool = True

    def violations(self) -> Iterator[Violation]:
        if self.framework == "custom" and self.entry_point is None:
            yield Violation(
                ("entry_point",),
                "MLC320",
                "framework 'custom' needs 'entry_point'",
                "write 'entry_point: mypackage.train:fit'",
            )
        if self.framework != "custom" and self.model is None:
            yield Violation(
                ("model",),
                "MLC321",
                f"framework '{self.framework}' needs 'model' (name and params)",
            )
        if self.framework != "custom" and self.entry_point is not None:
            yield Violation(
                ("entry_point",),
                "MLC322",
                "'entry_point' is only used with framework 'custom'",
            )
        if self.distributed.strategy != "none" and self.framework == "sklearn":
            yield Violation(
                ("distributed", "strategy"),
                "MLC323",
                f"distributed strategy '{self.distributed.strategy}' needs framework 'lightning'",
            )
        gpu = self.resources.gpu
        devices = self.distributed.devices
        if (
            self.lightning.accelerator == "gpu"
            and gpu is not None
            and isinstance(devices, int)
            and devices > gpu.count
        ):
            yield Violation(
                ("distributed", "devices"),
                "MLC325",
                f"distributed.devices ({devices}) is more than the GPUs requested per node "
                f"(resources.gpu.count: {gpu.count}); the extra workers would share a GPU",
                f"set resources.gpu.count: {devices}, or distributed.devices: {gpu.count}",
            )
        if self.resources.nodes > 1 and self.distributed.strategy == "none":
            yield Violation(
                ("resources", "nodes"),
                "MLC324",
                "more than one node needs a distributed strategy",
                "set 'distributed.strategy: ddp'",
            )
