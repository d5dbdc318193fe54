"""A tabular MLP for Lightning, with GPU-resident batching; needs only torch and lightning.

Tabular data that fits in device memory is moved to the device once and batched there by index
slicing (`DeviceBatches`): a CPU `DataLoader` collating small rows is about 25x slower on a
GPU. The module has no other mlc imports, so `benchmarks/bench_gpu_training.py` can load it by
file path on a machine that has only torch and Lightning.

On a GPU a step of this small net is bound by the host launching kernels, so every
microsecond of Python per step shows in throughput. `TabularMLP` therefore steps its optimizer
itself (manual optimization: no closure), runs several steps per Lightning `training_step`
call (so Lightning's per-call hooks and bookkeeping are paid once per `STEPS_PER_CALL`
batches), uses the fused Adam kernel on CUDA, and sets Lightning's per-hook bookkeeping
attribute without `nn.Module.__setattr__`'s parameter checks.

`MLPEstimator` wraps it in the scikit-learn estimator protocol (`fit`, `predict`,
`predict_proba`, `get_params`) so that it sits at the end of an sklearn `Pipeline`; its state
is plain data (weights as numpy arrays), so pickle and skops both save it.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn

if TYPE_CHECKING:
    from mlc.compiler.ir.params import EarlyStoppingParams

try:  # sklearn's base classes give Pipeline/clone the tags they expect; optional on GPU boxes
    from sklearn.base import BaseEstimator as _Base
except ImportError:  # pragma: no cover - the standalone benchmark path
    _Base = object


def make_net(in_features: int, out_features: int, hidden: Sequence[int] = (256, 128)) -> nn.Module:
    """A plain MLP: Linear+ReLU per hidden size, then a Linear head (3 layers by default)."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


class DeviceBatches:
    """Shuffled mini-batches cut by index slicing from tensors held on one device.

    Moves `x`/`y` to `device` once (no copy when they are already there); each epoch draws a
    permutation on that device. Under DDP each rank takes every `world_size`-th index of it,
    padded so that all ranks get the same number of rows.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        device: torch.device | str = "cpu",
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.x = x.to(device, non_blocking=True)
        self.y = y.to(device, non_blocking=True)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.generator = torch.Generator(device=self.x.device)
        self.generator.manual_seed(seed)

    def __len__(self) -> int:
        per_rank = math.ceil(self.x.shape[0] / self.world_size)
        return math.ceil(per_rank / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.x.shape[0]
        if self.shuffle:
            order = torch.randperm(n, device=self.x.device, generator=self.generator)
        else:
            order = torch.arange(n, device=self.x.device)
        if self.world_size > 1:
            # Every rank must make the same number of steps, or DDP's gradient all-reduce
            # waits forever on the rank with one batch fewer: pad with the first indices to a
            # multiple of the world size, as `DistributedSampler` does.
            total = math.ceil(n / self.world_size) * self.world_size
            if total > n:
                order = torch.cat([order, order[: total - n]])
            order = order[self.rank :: self.world_size]
        for start in range(0, order.shape[0], self.batch_size):
            idx = order[start : start + self.batch_size]
            yield self.x[idx], self.y[idx]


# Lightning warns on every fit that the `dataloader_iter` step signature is experimental and
# that `batch_idx` in hooks lags when a step takes several batches (no hook of ours reads it).
# Set at import rather than around `fit` so that spawned DDP workers, which import this module
# to unpickle the module, are quiet too.
warnings.filterwarnings("ignore", message="Found `dataloader_iter` argument")
warnings.filterwarnings("ignore", message="You are using the `dataloader_iter` step flavor")
# Lightning 2.6 calls a torch pytree check that torch 2.11+ deprecates, once per fit: not ours
# to act on, and it would show in every `mlc run` of a Lightning spec.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")

# Lightning's info lines ("GPU available: …", a tip to install a logging service, "`Trainer.fit`
# stopped: …") would cut into `mlc run`'s one-line-per-step display, several times per step
# when tuning fits once per fold. Warnings still show.
_INFO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


@contextlib.contextmanager
def _lightning_info_muted() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _INFO_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


# Optimizer steps per Lightning `training_step` call (see `TabularMLP.training_step`).
STEPS_PER_CALL = 8

# Attributes Lightning or the training step set on every step; never parameters, buffers or
# submodules, so `nn.Module.__setattr__`'s bookkeeping for those is skipped.
_PLAIN_ATTRS = frozenset({"_current_fx_name", "_loss_sum"})


class TabularMLP(L.LightningModule):
    """MLP for classification (cross-entropy) or regression (MSE) on a float feature matrix."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        task: str = "classification",
        hidden: Sequence[int] = (256, 128),
        learning_rate: float = 1e-3,
        steps_per_call: int = STEPS_PER_CALL,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = make_net(in_features, out_features, hidden)
        self.task = task
        self.learning_rate = learning_rate
        self.data: tuple[torch.Tensor, torch.Tensor] | None = None
        self.validation: tuple[torch.Tensor, torch.Tensor] | None = None
        self.keep_best = False
        self.best_val_loss = math.inf
        self._best_state: dict[str, torch.Tensor] | None = None
        self.batch_size = 256
        self.seed = 0
        self.epoch_loss = float("nan")
        self._loss_sum: torch.Tensor | None = None
        self.automatic_optimization = False
        self.steps_per_call = steps_per_call
        self._parent_pid = os.getpid()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _PLAIN_ATTRS:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def setup(self, stage: str) -> None:
        if os.getpid() != self._parent_pid:  # a spawned DDP worker: it only trains, then ends
            for name in _INFO_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task == "classification":
            return nn.functional.cross_entropy(out, y)
        return nn.functional.mse_loss(out.squeeze(-1), y)

    def train_dataloader(self) -> DeviceBatches:
        assert self.data is not None, "call set_data(x, y) before fit"
        # Lightning has placed the module on its device by now: the data moves there once.
        return DeviceBatches(
            self.data[0],
            self.data[1],
            self.batch_size,
            device=self.device,
            seed=self.seed,
            rank=self.global_rank,
            world_size=self.trainer.world_size if self._trainer else 1,
        )

    def set_data(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int = 0) -> None:
        self.data = (x, y)
        self.batch_size = batch_size
        self.seed = seed

    def set_validation(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.validation = (x, y)

    def val_dataloader(self) -> DeviceBatches | list[Any]:
        if self.validation is None:
            return []
        return DeviceBatches(
            self.validation[0],
            self.validation[1],
            max(self.batch_size, 4096),  # no gradients: larger batches, fewer launches
            device=self.device,
            shuffle=False,
            rank=self.global_rank,
            world_size=self.trainer.world_size if self._trainer else 1,
        )

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        # Averaged over the epoch's batches (weighted by rows) and across DDP ranks.
        self.log("val_loss", self.loss(self(x), y), sync_dist=True, batch_size=len(y))

    def training_step(self, dataloader_iter: Iterator[Any]) -> None:
        """Up to `steps_per_call` optimizer steps, one per batch drawn from the iterator.

        Taking the iterator (Lightning's `dataloader_iter` form) rather than one batch lets a
        call run several steps: Lightning's own per-call work (hooks, progress, batch
        transfer) is paid once per `steps_per_call` batches. Steps go through Lightning's
        optimizer wrapper, so precision plugins (the 16-mixed grad scaler), DDP and step
        counting (`global_step`) behave as with automatic optimization.
        """
        optimizer = self.optimizers()
        device = self.device
        for taken in range(self.steps_per_call):
            try:
                (x, y), _, _ = next(dataloader_iter)
            except StopIteration:
                if taken == 0:
                    raise  # ends the epoch
                return
            if x.device != device:  # a loader other than DeviceBatches
                x, y = x.to(device), y.to(device)
            loss = self.loss(self(x), y)
            optimizer.zero_grad(set_to_none=True)  # type: ignore[union-attr]
            self.manual_backward(loss)
            optimizer.step()  # type: ignore[union-attr]
            # Summed on the device; read once per epoch so steps never wait on a host sync.
            detached = loss.detach()
            self._loss_sum = detached if self._loss_sum is None else self._loss_sum + detached

    def on_train_epoch_end(self) -> None:
        if self._loss_sum is not None:
            self.epoch_loss = float(self._loss_sum) / max(1, self.trainer.num_training_batches)
            self._loss_sum = None
        # Logged (not only kept on the module) because spawned DDP workers send the trainer's
        # callback metrics back to the calling process, and nothing else of theirs.
        # `batch_size` only weights batch averages, which these epoch values are not.
        self.log("epoch_loss", self.epoch_loss, sync_dist=True, batch_size=1)
        self.log("epochs_done", float(self.current_epoch + 1), sync_dist=True, batch_size=1)
        # The validation loop of this epoch has run (val_loss is in, averaged over ranks);
        # early stopping reads it after this hook.
        val_loss = self.trainer.callback_metrics.get("val_loss")
        if self.keep_best and val_loss is not None and float(val_loss) < self.best_val_loss:
            self.best_val_loss = float(val_loss)
            self._best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        if self.keep_best and math.isfinite(self.best_val_loss):
            self.log("best_val_loss", self.best_val_loss, sync_dist=True, batch_size=1)

    def on_train_end(self) -> None:
        # With early stopping the weights kept are the best epoch's, not the last one's
        # (`patience` epochs later). In spawned DDP workers this runs before rank 0's weights
        # are sent back, so the step process gets the best ones too.
        if self._best_state is not None:
            self.net.load_state_dict(self._best_state)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # Lightning has moved the module to its device by now. The fused kernel updates all
        # parameters in one launch where the default (foreach) Adam takes about a dozen.
        fused = self.device.type == "cuda"
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate, fused=fused or None)


def _user_module_class(ref: str, pickled: bytes | None) -> Any:
    """A user LightningModule's class for loading a saved model: imported by its path, or,
    where the user's package is not installed (a serving image), the copy pickled by value.

    Only torch, numpy and cloudpickle here: a registered model loads with mlc's modules that
    the saved classes import at module level, and nothing of the train step."""
    import importlib

    module_name, _, attr = ref.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        if pickled is None:
            raise
        import cloudpickle

        return cloudpickle.loads(pickled)


def _device_count(accelerator: str) -> int:
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.cuda.device_count()
    return 1


def num_nodes() -> int:
    """Nodes of a multi-node run: `MLC_NUM_NODES`, which the kfp target's TrainJob sets (with
    `NODE_RANK`, `MASTER_ADDR` and `MASTER_PORT`, which Lightning reads) on every node."""
    return max(1, int(os.environ.get("MLC_NUM_NODES") or 1))


def launch_plan(strategy: str, devices: int | str, accelerator: str = "auto") -> tuple[str, Any]:
    """The Lightning strategy and devices for the spec's `distributed` settings.

    mlc trains inside a step process (`mlc run`, or one container's `python -m mlc.runtime
    step`), so workers must not be started the way Lightning's plain `ddp` does it: that
    re-runs the process's command line once per extra device, which here would re-run the
    whole `mlc run` (or the step, writing its outputs twice). DDP therefore runs as
    `ddp_spawn`: the workers are spawned, train, and hand rank 0's weights and logged metrics
    back to the step process, the only one that writes outputs. `none` means one device,
    whatever the machine has; FSDP and DeepSpeed, which have no spawned form in Lightning,
    are refused on more than one device.
    """
    count = _device_count(accelerator) if devices == "auto" else int(devices)
    if strategy == "ddp" and num_nodes() > 1:
        # One step process per node (a Kubeflow TrainJob's), each spawning its devices' ranks.
        return "ddp_spawn", devices
    if strategy in ("none", "auto"):
        if devices == "auto":
            return "auto", 1
        return ("ddp_spawn" if count > 1 else "auto"), devices
    if strategy == "ddp":
        return ("ddp_spawn" if count > 1 else "auto"), devices
    if strategy in ("fsdp", "deepspeed") and count > 1:
        raise ValueError(
            f"strategy '{strategy}' on {count} devices would re-run this process's command in "
            "every rank; mlc trains inside one step process: use strategy 'ddp' (spawned "
            "workers) or devices: 1"
        )
    return strategy, devices


def fit_mlp(
    x: Any,
    y: Any,
    *,
    task: str = "classification",
    out_features: int | None = None,
    hidden: Sequence[int] = (256, 128),
    learning_rate: float = 1e-3,
    batch_size: int = 256,
    max_epochs: int = 20,
    accelerator: str = "auto",
    devices: int | str = "auto",
    precision: str = "32-true",
    strategy: str = "auto",
    max_time: float | None = None,
    seed: int = 0,
    callbacks: Sequence[L.Callback] = (),
    steps_per_call: int = STEPS_PER_CALL,
    validation: tuple[Any, Any] | None = None,
    early_stopping: EarlyStoppingParams | None = None,
) -> tuple[TabularMLP, L.Trainer]:
    """Train a `TabularMLP` on a float matrix `x` and labels `y` (class indices or targets).

    `x`/`y` may be numpy arrays or tensors already on the GPU; either way the data crosses to
    the device once. `validation` (features, labels) is scored after every epoch (`val_loss`);
    `early_stopping` (`patience`, `min_delta`) stops on it and needs `validation`. Returns the
    module (still on its device) and the trainer.
    """
    if early_stopping is not None and validation is None:
        raise ValueError("early stopping needs validation rows to watch")
    torch.manual_seed(seed)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long if task == "classification" else torch.float32)
    if out_features is None:
        out_features = int(yt.max().item()) + 1 if task == "classification" else 1
    module = TabularMLP(xt.shape[1], out_features, task, hidden, learning_rate, steps_per_call)
    module.set_data(xt, yt, batch_size, seed)
    extra: list[L.Callback] = []
    if validation is not None:
        xv = torch.as_tensor(validation[0], dtype=torch.float32)
        yv = torch.as_tensor(validation[1], dtype=yt.dtype)
        module.set_validation(xv, yv)
        if early_stopping is not None:
            module.keep_best = True
            extra.append(
                EarlyStopping(
                    monitor="val_loss",
                    mode="min",
                    patience=early_stopping["patience"],
                    min_delta=early_stopping["min_delta"],
                )
            )
    strategy, devices = launch_plan(strategy, devices, accelerator)
    with _lightning_info_muted():
        trainer = _trainer(
            accelerator, devices, precision, strategy, max_epochs, max_time, validation,
            [*callbacks, *extra],
        )  # fmt: skip
        trainer.fit(module)
    return module, trainer


def _trainer(
    accelerator: str,
    devices: Any,
    precision: str,
    strategy: str,
    max_epochs: int,
    max_time: float | None,
    validation: Any,
    callbacks: list[L.Callback],
) -> L.Trainer:
    return L.Trainer(
        accelerator=accelerator,
        devices=devices,
        precision=precision,  # type: ignore[arg-type]
        strategy=strategy,
        num_nodes=num_nodes() if strategy == "ddp_spawn" else 1,
        max_epochs=max_epochs,
        max_time=datetime.timedelta(seconds=max_time) if max_time else None,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1.0 if validation is not None else 0,
        callbacks=callbacks,
        # The same seed and data must give the same weights, so the same model bytes and hash
        # (a rerun must not register a "new" model). The CPU kernels this net uses are
        # deterministic for a given thread count; this makes CUDA pick deterministic kernels
        # (and cuBLAS a fixed workspace). "warn": an op without a deterministic kernel says
        # so instead of failing the fit.
        deterministic="warn",
    )


class MLPEstimator(_Base):  # type: ignore[misc]
    """scikit-learn style wrapper around `fit_mlp`; its state is plain data (see `__getstate__`).

    Args mirror `fit_mlp`. After `fit`: `classes_` (classification), `epochs_`, `stopped_`.
    """

    def __init__(
        self,
        task: str = "classification",
        hidden: Sequence[int] = (256, 128),
        learning_rate: float = 1e-3,
        batch_size: int = 256,
        max_epochs: int = 20,
        accelerator: str = "auto",
        devices: int | str = "auto",
        precision: str = "32-true",
        strategy: str = "auto",
        max_time: float | None = None,
        seed: int = 0,
        early_stopping_patience: int | None = None,
        early_stopping_min_delta: float = 0.0,
        module: str | None = None,
        module_params: dict[str, Any] | None = None,
    ) -> None:
        self.task = task
        self.hidden = hidden
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.accelerator = accelerator
        self.devices = devices
        self.precision = precision
        self.strategy = strategy
        self.max_time = max_time
        self.seed = seed
        self.early_stopping_patience = early_stopping_patience
        self.early_stopping_min_delta = early_stopping_min_delta
        # A user LightningModule (`package.module:Class`) and its constructor's params; None:
        # the built-in TabularMLP (`hidden`, `learning_rate` apply to it only).
        self.module = module
        self.module_params = module_params

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        keys = (
            "task",
            "hidden",
            "learning_rate",
            "batch_size",
            "max_epochs",
            "accelerator",
            "devices",
            "precision",
            "strategy",
            "max_time",
            "seed",
            "early_stopping_patience",
            "early_stopping_min_delta",
            "module",
            "module_params",
        )
        return {k: getattr(self, k, None) for k in keys}

    def set_params(self, **params: Any) -> MLPEstimator:
        for k, v in params.items():
            setattr(self, k, v)
        return self

    @property
    def _estimator_type(self) -> str:
        return "classifier" if self.task == "classification" else "regressor"

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.estimator_type = self._estimator_type
        return tags

    def fit(
        self,
        X: Any,
        y: Any,
        validation: tuple[Any, Any] | None = None,
        time_limit: float | None = None,
    ) -> MLPEstimator:
        """Train; `validation` (features, labels) is scored every epoch and, with
        `early_stopping_patience`, stops training. Without it the patience is not used (as in
        tuning's cross-validation folds). `time_limit` (seconds) caps this fit below
        `max_time` without being a parameter: the caller's deadline is not part of the model."""
        limits = [t for t in (self.max_time, time_limit) if t is not None]
        max_time = min(limits) if limits else None
        x = np.asarray(X, dtype=np.float32)
        y_arr = np.asarray(y)
        if self.task == "classification":
            self.classes_, target = np.unique(y_arr, return_inverse=True)
            out = len(self.classes_)
        else:
            target, out = y_arr.astype(np.float32), 1
        self.n_features_in_ = x.shape[1]
        val = None if validation is None else self._encode_validation(*validation)
        early: EarlyStoppingParams | None = None
        if self.early_stopping_patience is not None and val is not None:
            early = {
                "patience": self.early_stopping_patience,
                "min_delta": self.early_stopping_min_delta,
            }
        if self.module is not None:
            return self._fit_user_module(x, target, out, val, early, max_time)
        module, trainer = fit_mlp(
            x,
            target,
            task=self.task,
            out_features=out,
            hidden=tuple(self.hidden),
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            accelerator=self.accelerator,
            devices=self.devices,
            precision=self.precision,
            strategy=self.strategy,
            max_time=max_time,
            seed=self.seed,
            validation=val,
            early_stopping=early,
        )
        metrics = trainer.callback_metrics
        if math.isnan(module.epoch_loss) and "epoch_loss" in metrics:
            # Spawned DDP workers trained: only their logged metrics came back.
            self.epochs_ = int(metrics["epochs_done"])
            self.final_loss_ = float(metrics["epoch_loss"])
        else:
            self.epochs_ = int(trainer.current_epoch)
            self.final_loss_ = module.epoch_loss
        stopper = trainer.early_stopping_callback
        if self.epochs_ >= self.max_epochs:
            self.stopped_ = "max_epochs"
        elif stopper is not None and (stopper.stopped_epoch > 0 or max_time is None):
            # In spawned workers the callback's state stays there: without a time cap, early
            # stopping is the only way to end before max_epochs.
            self.stopped_ = "early_stopping"
        else:
            self.stopped_ = "max_time"
        # The validation loss of the weights kept: the best epoch's under early stopping.
        key = "best_val_loss" if "best_val_loss" in metrics else "val_loss"
        self.val_loss_ = float(metrics[key]) if key in metrics else None
        # Only the network is kept: the LightningModule would carry its trainer along.
        self.module_ = module.net.cpu().eval()
        self.out_features_ = out
        return self

    def _fit_user_module(
        self,
        x: np.ndarray,
        target: np.ndarray,
        out: int,
        val: tuple[np.ndarray, np.ndarray] | None,
        early: EarlyStoppingParams | None,
        max_time: float | None,
    ) -> MLPEstimator:
        # Imported here: this module loads by file path (the GPU benchmark) without mlc.
        from mlc.runtime.frameworks import lightning_module

        trainer, best = lightning_module.fit(self, x, target, out, val, early, max_time)
        metrics = trainer.callback_metrics
        self.epochs_ = int(trainer.current_epoch)
        loss = metrics.get("train_loss", metrics.get("loss"))
        self.final_loss_ = float(loss) if loss is not None else float("nan")
        stopper = trainer.early_stopping_callback
        if self.epochs_ >= self.max_epochs:
            self.stopped_ = "max_epochs"
        elif stopper is not None and stopper.stopped_epoch > 0:
            self.stopped_ = "early_stopping"
        else:
            self.stopped_ = "max_time"
        last = float(metrics["val_loss"]) if "val_loss" in metrics else None
        self.val_loss_ = best if best is not None else last
        self.out_features_ = out
        return self

    def _encode_validation(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray] | None:
        x = np.asarray(X, dtype=np.float32)
        y_arr = np.asarray(y)
        if self.task == "classification":
            # Labels the training rows never showed cannot be scored by this head: dropped.
            known = np.isin(y_arr, self.classes_)
            x, y_enc = x[known], np.searchsorted(self.classes_, y_arr[known])
        else:
            y_enc = y_arr.astype(np.float32)
        return (x, y_enc) if len(x) else None

    def __getstate__(self) -> dict[str, Any]:
        """Plain data only: the weights as numpy arrays, no torch objects.

        The registry saves pipelines with skops, which refuses torch tensors, and a pickle of
        plain arrays loads without torch's unpickler.
        """
        state = dict(self.__dict__)
        net = state.pop("module_", None)
        if net is not None and getattr(self, "module", None) is not None:
            from mlc.runtime.frameworks import lightning_module

            return lightning_module.state_of(state, net)
        if net is not None:
            state["weights_"] = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        weights = state.pop("weights_", None)
        pickled = state.pop("module_class_", None)
        self.__dict__.update(state)
        if weights is not None and getattr(self, "module", None) is not None:
            cls = _user_module_class(str(self.module), pickled)
            params = dict(self.module_params or {})
            net = cls(self.n_features_in_, self.out_features_, params)
            net.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in weights.items()})
            self.module_ = net.eval()
        elif weights is not None:
            net = make_net(self.n_features_in_, self.out_features_, tuple(self.hidden))
            net.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in weights.items()})
            self.module_ = net.eval()

    def _forward(self, X: Any) -> np.ndarray:
        x = torch.as_tensor(np.asarray(X, dtype=np.float32))
        with torch.no_grad():
            result: np.ndarray = self.module_(x).float().numpy()
        # A user module's regression head may return (n,) where the built-in returns (n, 1).
        return result.reshape(len(result), -1)

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.task != "classification":
            raise AttributeError("predict_proba is only available for classification")
        result: np.ndarray = torch.softmax(torch.as_tensor(self._forward(X)), dim=1).numpy()
        return result

    def predict(self, X: Any) -> np.ndarray:
        out = self._forward(X)
        if self.task == "classification":
            result: np.ndarray = self.classes_[out.argmax(axis=1)]
            return result
        return out[:, 0]
