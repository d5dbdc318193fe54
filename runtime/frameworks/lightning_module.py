"""A user's `LightningModule`, trained by `MLPEstimator` like the built-in `tabular_mlp`.

The contract: `Class(input_dim, output_dim, params)` (params: the spec's `model.params`), with
`forward(x)` (logits, one per class, or one value for regression), `training_step(batch,
batch_idx)` returning the loss, and `configure_optimizers()`; with early stopping also
`validation_step` logging `val_loss`. Batches are `(x, y)`: float32 features, and class indices
(int64) or float32 targets, already on the module's device: the data moves there once and is
batched by index slicing (`DeviceBatches`), as for the built-in MLP. Precision, accelerator,
devices, DDP, the time cap and early stopping come from the same trainer settings.

The fitted estimator keeps the module's weights as numpy arrays, its class by import path and,
pickled by value, the class itself, so a registered model loads where the user's package is
not installed (a serving image).
"""

from __future__ import annotations

import importlib
import inspect
import math
from typing import TYPE_CHECKING, Any

from mlc.runtime.context import StepError

if TYPE_CHECKING:
    from mlc.compiler.ir.params import EarlyStoppingParams

STEP = "train"
REQUIRED = ("forward", "training_step", "configure_optimizers")


def load_class(ref: str, step: str = STEP) -> Any:
    """Import `package.module:Class` and check it is a LightningModule with the contract's
    methods and constructor; the error names everything missing at once."""
    import lightning as L

    from mlc.runtime.steps._data import import_entry

    cls = import_entry(ref, step, "Lightning module")
    if not (inspect.isclass(cls) and issubclass(cls, L.LightningModule)):
        raise StepError(
            step,
            f"Lightning module '{ref}' is {type(cls).__name__} {cls!r}, not a LightningModule "
            "subclass",
            "point training.lightning.module at a class deriving lightning.LightningModule",
        )
    missing = [m for m in REQUIRED if getattr(cls, m) is getattr(L.LightningModule, m)]
    try:
        sig = inspect.signature(cls.__init__)
        sig.bind(None, 1, 1, {})
    except TypeError:
        missing.append("__init__(self, input_dim, output_dim, params)")
    if missing:
        raise StepError(
            step,
            f"Lightning module '{ref}' lacks " + ", ".join(missing),
            "define __init__(self, input_dim, output_dim, params), forward(x), "
            "training_step(batch, batch_idx) returning the loss, and configure_optimizers()",
        )
    return cls


def has_validation_step(cls: Any) -> bool:
    import lightning as L

    return cls.validation_step is not L.LightningModule.validation_step


def build(cls: Any, ref: str, input_dim: int, output_dim: int, params: dict[str, Any]) -> Any:
    import lightning as L

    try:
        module = cls(input_dim, output_dim, dict(params))
    except Exception as exc:  # the user's constructor may raise anything
        raise StepError(
            STEP,
            f"Lightning module '{ref}'({input_dim}, {output_dim}, {params}) raised "
            f"{type(exc).__name__}: {exc}",
        ) from exc
    if not isinstance(module, L.LightningModule):
        raise StepError(STEP, f"Lightning module '{ref}' built {type(module).__name__}")
    return module


def _data_module(
    x: Any, y: Any, batch_size: int, seed: int, validation: tuple[Any, Any] | None
) -> Any:
    import lightning as L

    from mlc.runtime.lightning_mlp import DeviceBatches

    class _Rows(L.LightningDataModule):
        """Batches cut on the trainer's device (the module is there when loaders are asked)."""

        def _batches(self, xs: Any, ys: Any, size: int, shuffle: bool) -> DeviceBatches:
            trainer = self.trainer
            assert trainer is not None, "loaders are asked for by the trainer"
            return DeviceBatches(
                xs,
                ys,
                size,
                device=trainer.strategy.root_device,
                shuffle=shuffle,
                seed=seed,
                rank=trainer.global_rank,
                world_size=trainer.world_size,
            )

        def train_dataloader(self) -> DeviceBatches:
            return self._batches(x, y, batch_size, True)

        def val_dataloader(self) -> Any:
            if validation is None:
                return []
            return self._batches(validation[0], validation[1], max(batch_size, 4096), False)

    return _Rows()


def _keep_best() -> Any:
    import lightning as L

    class _KeepBest(L.Callback):
        """The weights of the epoch with the lowest validation loss, put back at the end."""

        def __init__(self) -> None:
            self.best = math.inf
            self.state: dict[str, Any] | None = None

        def on_validation_end(self, trainer: Any, module: Any) -> None:
            loss = trainer.callback_metrics.get("val_loss")
            if loss is not None and float(loss) < self.best:
                self.best = float(loss)
                self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}

        def on_train_end(self, trainer: Any, module: Any) -> None:
            if self.state is not None:
                module.load_state_dict(self.state)

    return _KeepBest()


def fit(
    estimator: Any,
    x: Any,
    target: Any,
    out_features: int,
    validation: tuple[Any, Any] | None,
    early: EarlyStoppingParams | None,
    max_time: float | None,
) -> tuple[Any, float | None]:
    """Train the user's module with the estimator's trainer settings; returns the trainer and
    the best validation loss seen (None without early stopping)."""
    import torch
    from lightning.pytorch.callbacks import EarlyStopping

    from mlc.runtime import lightning_mlp

    ref = str(estimator.module)
    cls = load_class(ref)
    if early is not None and not has_validation_step(cls):
        raise StepError(
            STEP,
            f"early stopping watches val_loss, and Lightning module '{ref}' has no validation_step",
            "define validation_step logging self.log('val_loss', loss), or drop "
            "training.lightning.early_stopping",
        )
    torch.manual_seed(estimator.seed)
    classification = estimator.task == "classification"
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(target, dtype=torch.long if classification else torch.float32)
    module = build(cls, ref, xt.shape[1], out_features, estimator.module_params or {})
    val = None
    if validation is not None and has_validation_step(cls):
        val = (
            torch.as_tensor(validation[0], dtype=torch.float32),
            torch.as_tensor(validation[1], dtype=yt.dtype),
        )
    callbacks: list[Any] = []
    keep = _keep_best()
    if early is not None and val is not None:
        callbacks += [
            EarlyStopping(
                monitor="val_loss",
                mode="min",
                patience=early["patience"],
                min_delta=early["min_delta"],
            ),
            keep,
        ]
    strategy, devices = lightning_mlp.launch_plan(
        estimator.strategy, estimator.devices, estimator.accelerator
    )
    data = _data_module(xt, yt, estimator.batch_size, estimator.seed, val)
    with lightning_mlp._lightning_info_muted():
        trainer = lightning_mlp._trainer(
            estimator.accelerator, devices, estimator.precision, strategy,
            estimator.max_epochs, max_time, val, callbacks,
        )  # fmt: skip
        trainer.fit(module, datamodule=data)
    estimator.module_ = module.cpu().eval()
    # The validation loss of the weights kept: the best epoch's under early stopping (in
    # spawned DDP workers the callback's state stays there: then the last epoch's).
    best = keep.best if math.isfinite(keep.best) else None
    return trainer, best


def state_of(estimator_state: dict[str, Any], net: Any) -> dict[str, Any]:
    """The pickled form of a fitted user module: weights, and the class by value."""
    import cloudpickle

    cls = type(net)
    state = dict(estimator_state)
    state["weights_"] = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    package = cls.__module__.partition(".")[0]
    module = importlib.import_module(package)
    cloudpickle.register_pickle_by_value(module)
    try:
        state["module_class_"] = cloudpickle.dumps(cls)
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    return state
