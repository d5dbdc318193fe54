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

Framework = Literal["sklearn", "lightning", "custom", "xgboost", "lightgbm", "keras", "spark_ml"]
Task = Literal["classification", "regression"]


class Model(StrictModel):
    name: str = Field(min_length=1)
    """Estimator: a scikit-learn class (`HistGradientBoostingClassifier` or its dotted path),
    for Lightning and Keras the built-in `tabular_mlp`, for XGBoost and LightGBM the library's
    scikit-learn class (`XGBClassifier`, `LGBMRegressor`; by default the task's)."""
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
    module: EntryPoint | None = None
    """A user `LightningModule` (`package.module:Class`) trained instead of `tabular_mlp`:
    `Class(input_dim, output_dim, params)` with `forward`, `training_step` and
    `configure_optimizers` (and `validation_step` logging `val_loss` for early stopping);
    batches are `(x, y)`, float32 features and class indices (or float targets)."""


class BoostOptions(StrictModel):
    """XGBoost and LightGBM options (`framework: xgboost | lightgbm`)."""

    early_stopping: EarlyStopping | None = None
    """The library's own early stopping on the validation split (`data.split.validation_size`
    > 0): stop adding trees after `patience` rounds without a loss improvement of `min_delta`,
    keep the best round's trees. Tuning trials stop on a fifth of each fold's training rows."""


class KerasOptions(StrictModel):
    """Keras 3 options (`framework: keras`)."""

    builder: EntryPoint | None = None
    """`package.module:build_model(input_dim, params) -> keras.Model` (params: `model.params`);
    without it the built-in tabular MLP. A model returned uncompiled is compiled with Adam and
    the task's loss."""
    backend: Literal["torch", "tensorflow", "jax"] = "torch"
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(256, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    early_stopping: EarlyStopping | None = None
    """On the validation split's loss; the best epoch's weights are kept."""


class Training(StrictModel):
    framework: Framework = "sklearn"
    task: Task = "classification"
    model: Model | None = None
    entry_point: EntryPoint | None = None
    """For `framework: custom`: `module:function(X_train, y_train, params) -> fitted model`."""
    lightning: LightningOptions = LightningOptions()
    boost: BoostOptions = BoostOptions()
    keras: KerasOptions = KerasOptions()
    resources: Resources = Resources()
    distributed: Distributed = Distributed()
    max_time: Duration | None = None
    """Wall-clock cap for training; the step stops cleanly when it is reached."""
    seed: int = Field(42, ge=0, le=SEED_MAX)
    sample: int | None = Field(None, ge=1)
    """Rows of the train split the train and tune steps read at most, drawn uniformly with
    `seed` (None: all). For a framework that trains in memory on a split larger than memory,
    e.g. on `data.engine: spark`: only the drawn rows are read. The train summary says how
    many of how many; evaluation still scores the whole test split."""
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
        if self.model is None and self._needs_model():
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
        yield from self._foreign_options()
        if self.distributed.strategy != "none" and self.framework not in ("lightning", "custom"):
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
        if self.sample is not None and self.framework == "spark_ml":
            yield Violation(
                ("sample",),
                "MLC318",
                "framework 'spark_ml' trains on the whole split in Spark; a sample would "
                "only discard rows",
                "drop training.sample",
            )
        if self.resources.nodes > 1 and self.distributed.strategy == "none":
            yield Violation(
                ("resources", "nodes"),
                "MLC324",
                "more than one node needs a distributed strategy",
                "set 'distributed.strategy: ddp'",
            )

    def _needs_model(self) -> bool:
        """Whether `model` must be given: XGBoost and LightGBM default to the task's class, a
        Lightning module or Keras builder from an entry point takes `model.params` alone."""
        if self.framework == "lightning":
            return self.lightning.module is None
        return self.framework == "sklearn"

    def _foreign_options(self) -> Iterator[Violation]:
        """Options of a framework other than the one chosen: silently unused otherwise."""
        owners = (
            (("lightning", "module"), self.lightning.module is not None, "lightning"),
            (("boost", "early_stopping"), self.boost.early_stopping is not None, "xgboost"),
            (("keras", "builder"), self.keras.builder is not None, "keras"),
        )
        for path, given, framework in owners:
            if not given or self.framework == framework:
                continue
            if framework == "xgboost" and self.framework == "lightgbm":
                continue
            wanted = "xgboost' or 'lightgbm" if framework == "xgboost" else framework
            yield Violation(
                path,
                "MLC329",
                f"training.{'.'.join(path)} is only used with framework '{wanted}', "
                f"and framework is '{self.framework}'",
                f"set training.framework: {framework}, or drop training.{'.'.join(path)}",
            )
