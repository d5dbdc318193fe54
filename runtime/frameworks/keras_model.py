"""Keras 3 models as scikit-learn estimators (`framework: keras`).

The model comes from the user's builder (`package.module:build_model(input_dim, params) ->
keras.Model`) or is the built-in tabular MLP. Keras picks its backend once, at its first import,
from `KERAS_BACKEND`: the estimator sets it from the spec before importing keras (torch by
default, as torch is installed with mlc's Lightning support), and refuses a second backend in the
same process rather than silently training on the first one.

For classification the model outputs one value per class: logits, unless its last layer has a
softmax activation (then probabilities). A model the builder returns uncompiled is compiled with
Adam at `learning_rate` and the task's loss. The fitted estimator keeps the model as the bytes of
a `.keras` file, plain data that pickle and skops save, and reloads it under the same backend.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlc.runtime.context import StepError

try:
    from sklearn.base import BaseEstimator as _Base
except ImportError:  # pragma: no cover
    _Base = object

if TYPE_CHECKING:
    from mlc.compiler.ir.params import TrainParams, TuneParams

STEP = "train"


_BACKEND_PACKAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "torch": (("torch",), "'mlc[keras]'"),
    "tensorflow": (("tensorflow",), "'mlc[tensorflow]'"),
    "jax": (("jax", "jaxlib"), "'jax[cpu]'"),
}
"""backend -> (modules whose absence means the backend is missing, what installs them)."""


def keras_module(backend: str, step: str = STEP) -> Any:
    """Keras imported under `backend`; an error when it was imported under another one."""
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend
    try:
        import keras
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        modules, install = _BACKEND_PACKAGES.get(backend, ((), ""))
        if missing in modules:
            raise StepError(
                step,
                f"keras backend '{backend}' needs the package '{missing}', which is not installed",
                f"pip install {install}, or set "
                "training.keras.backend: torch (installed with mlc[keras])",
            ) from None
        raise StepError(
            step,
            f"framework 'keras' needs the package 'keras', which is not installed ({exc})",
            "pip install 'mlc[keras]'",
        ) from None
    current = keras.backend.backend()
    if current != backend:
        raise StepError(
            step,
            f"keras is already loaded with backend '{current}' in this process, and the spec "
            f"asks for '{backend}'",
            f"set training.keras.backend: {current}, or start a fresh process",
        )
    return keras


def make_estimator(
    params: TrainParams | TuneParams, model_params: dict[str, Any], step: str
) -> KerasEstimator:
    options = params["keras"]
    keras_module(options["backend"], step)
    builder = options["builder"]
    if builder is not None:
        from mlc.runtime.steps._data import import_entry

        import_entry(builder, step, "keras builder")
    else:
        model = params["model"]
        name = model["name"] if model is not None else "tabular_mlp"
        if name != "tabular_mlp":
            raise StepError(
                step,
                f"unknown Keras model '{name}'",
                "use the built-in 'tabular_mlp', or name a builder in training.keras.builder",
            )
        unknown = sorted(set(model_params) - {"hidden", "dropout"})
        if unknown:
            raise StepError(
                step,
                "the built-in Keras tabular_mlp has no parameter(s) " + ", ".join(unknown),
                "valid: dropout, hidden",
            )
    early = options["early_stopping"]
    return KerasEstimator(
        task=params["task"],
        builder=builder,
        backend=options["backend"],
        epochs=options["epochs"],
        batch_size=options["batch_size"],
        learning_rate=options["learning_rate"],
        seed=params["seed"],
        params=dict(model_params),
        early_stopping_patience=early["patience"] if early is not None else None,
        early_stopping_min_delta=early["min_delta"] if early is not None else 0.0,
        max_time=params["max_time"],
    )


def _tabular_mlp(keras: Any, input_dim: int, out: int, params: dict[str, Any]) -> Any:
    layers: list[Any] = [keras.Input((input_dim,))]
    for width in params.get("hidden", [64, 32]):
        layers.append(keras.layers.Dense(int(width), activation="relu"))
        if params.get("dropout"):
            layers.append(keras.layers.Dropout(float(params["dropout"])))
    layers.append(keras.layers.Dense(out))
    return keras.Sequential(layers)


class KerasEstimator(_Base):  # type: ignore[misc]
    """A Keras model behind `fit` / `predict` / `predict_proba`, state as `.keras` bytes."""

    def __init__(
        self,
        task: str = "classification",
        builder: str | None = None,
        backend: str = "torch",
        epochs: int = 20,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        seed: int = 0,
        params: dict[str, Any] | None = None,
        early_stopping_patience: int | None = None,
        early_stopping_min_delta: float = 0.0,
        max_time: float | None = None,
    ) -> None:
        self.task = task
        self.builder = builder
        self.backend = backend
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.seed = seed
        self.params = params
        self.early_stopping_patience = early_stopping_patience
        self.early_stopping_min_delta = early_stopping_min_delta
        self.max_time = max_time

    @property
    def _estimator_type(self) -> str:
        return "classifier" if self.task == "classification" else "regressor"

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.estimator_type = self._estimator_type
        return tags

    def _build(self, keras: Any, input_dim: int, out: int) -> Any:
        params = dict(self.params or {})
        if self.builder is None:
            return _tabular_mlp(keras, input_dim, out, params)
        from mlc.runtime.steps._data import import_entry

        fn = import_entry(self.builder, STEP, "keras builder")
        try:
            model = fn(input_dim, params)
        except Exception as exc:  # the user's builder may raise anything
            raise StepError(
                STEP,
                f"keras builder '{self.builder}'({input_dim}, {params}) raised "
                f"{type(exc).__name__}: {exc}",
            ) from exc
        if not isinstance(model, keras.Model):
            raise StepError(
                STEP,
                f"keras builder '{self.builder}' returned {type(model).__name__} "
                f"({model!r:.80}), not a keras.Model",
                "return a keras.Model (keras.Sequential or the functional API)",
            )
        width = model.output_shape[-1] if model.output_shape else None
        if width != out:
            raise StepError(
                STEP,
                f"keras builder '{self.builder}' returned a model with output shape "
                f"{model.output_shape}; this {self.task} needs {out} output(s)",
                "one output per class for classification, one for regression",
            )
        return model

    def fit(
        self,
        X: Any,
        y: Any,
        validation: tuple[Any, Any] | None = None,
        time_limit: float | None = None,
    ) -> KerasEstimator:
        keras = keras_module(self.backend)
        keras.utils.set_random_seed(self.seed)
        x = np.asarray(X, dtype=np.float32)
        y_arr = np.asarray(y)
        if self.task == "classification":
            self.classes_, target = np.unique(y_arr, return_inverse=True)
            out = len(self.classes_)
        else:
            target, out = y_arr.astype(np.float32), 1
        self.n_features_in_ = x.shape[1]
        model = self._build(keras, x.shape[1], out)
        if not getattr(model, "compiled", False):
            loss = (
                keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                if self.task == "classification"
                else keras.losses.MeanSquaredError()
            )
            model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss=loss)
        callbacks: list[Any] = []
        limits = [t for t in (self.max_time, time_limit) if t is not None]
        if limits:
            callbacks.append(_Deadline(keras, time.monotonic() + min(limits)))
        val = None
        if validation is not None:
            xv = np.asarray(validation[0], dtype=np.float32)
            yv = np.asarray(validation[1])
            if self.task == "classification":
                known = np.isin(yv, self.classes_)
                xv, yv = xv[known], np.searchsorted(self.classes_, yv[known])
            else:
                yv = yv.astype(np.float32)
            val = (xv, yv) if len(xv) else None
        if val is not None and self.early_stopping_patience is not None:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor="val_loss",
                    patience=self.early_stopping_patience,
                    min_delta=self.early_stopping_min_delta,
                    restore_best_weights=True,
                )
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # as in `_forward`
            history = self._fit_model(model, x, target, val, callbacks)
        losses = history.history.get("loss", [float("nan")])
        self.epochs_ = len(losses)
        self.final_loss_ = float(losses[-1])
        val_losses = history.history.get("val_loss")
        self.val_loss_ = float(min(val_losses)) if val_losses else None
        stopped_early = any(isinstance(c, keras.callbacks.EarlyStopping) and c.stopped_epoch
                            for c in callbacks)  # fmt: skip
        self.stopped_ = (
            "max_epochs"
            if self.epochs_ >= self.epochs
            else ("early_stopping" if stopped_early else "max_time")
        )
        last = model.layers[-1] if model.layers else None
        self.probabilities_ = getattr(last, "activation", None) is keras.activations.softmax
        self.model_ = model
        return self

    def _fit_model(self, model: Any, x: Any, target: Any, val: Any, callbacks: list[Any]) -> Any:
        return model.fit(
            x,
            target,
            epochs=self.epochs,
            batch_size=self.batch_size,
            validation_data=val,
            callbacks=callbacks,
            verbose=0,
            shuffle=True,
        )

    def _forward(self, X: Any) -> np.ndarray:
        x = np.asarray(X, dtype=np.float32)
        with warnings.catch_warnings():
            # keras' torch backend converts tensors with a numpy 1 call; numpy 2 warns per batch
            warnings.simplefilter("ignore", DeprecationWarning)
            out = self.model_.predict(x, verbose=0)
        result: np.ndarray = np.asarray(out, dtype=np.float64)
        return result.reshape(len(x), -1)

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.task != "classification":
            raise AttributeError("predict_proba is only available for classification")
        out = self._forward(X)
        if self.probabilities_:
            return out
        shifted = np.exp(out - out.max(axis=1, keepdims=True))
        result: np.ndarray = shifted / shifted.sum(axis=1, keepdims=True)
        return result

    def predict(self, X: Any) -> np.ndarray:
        out = self._forward(X)
        if self.task == "classification":
            result: np.ndarray = self.classes_[out.argmax(axis=1)]
            return result
        return out[:, 0]

    def onnx_network(self, opset: int, step: str = "export") -> bytes:
        """The fitted network as ONNX bytes: input `features` [N, n_features_in_] float32,
        output `logits` [N, outputs] (probabilities when `probabilities_`).

        Keras' own exporter (`Model.export(format="onnx")`): on torch a dynamic batch takes
        TorchScript (`dynamo=False`), so onnxscript is not needed; on tensorflow it needs
        tf2onnx.
        """
        import onnx

        model = self.model_
        keras = keras_module(self.backend, step)
        spec = keras.InputSpec(shape=(None, int(self.n_features_in_)), dtype="float32")
        training = getattr(model, "training", None)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "net.onnx"
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # tracer warnings on each Python int
                    model.export(
                        str(path),
                        format="onnx",
                        verbose=False,
                        input_signature=[spec],
                        opset_version=opset,
                    )
            except ImportError as exc:
                raise StepError(
                    step,
                    f"Keras' ONNX export on backend '{self.backend}' needs a package that is "
                    f"not installed ({exc})",
                    "export with training.keras.backend: torch, or install the named package",
                ) from None
            except Exception as exc:  # Keras and the exporters raise many types
                raise StepError(
                    step,
                    f"Keras' ONNX export of the network failed: {type(exc).__name__}: {exc}"[:500],
                    "the network must run on one float32 input of shape (batch, features)",
                ) from None
            finally:
                # the torch exporter leaves the module in eval mode
                if training is not None and hasattr(model, "train"):
                    model.train(training)
            net = onnx.load_from_string(path.read_bytes())
        graph = net.graph
        if len(graph.input) != 1 or len(graph.output) != 1:
            raise StepError(
                step,
                f"the exported Keras network has {len(graph.input)} input(s) and "
                f"{len(graph.output)} output(s)",
                "build a model with one input and one output",
            )
        # The merge with the preprocessing graph wires tensors by these names.
        rename = {graph.input[0].name: "features", graph.output[0].name: "logits"}
        for node in graph.node:
            node.input[:] = [rename.get(n, n) for n in node.input]
            node.output[:] = [rename.get(n, n) for n in node.output]
        for item in (*graph.input, *graph.output, *graph.value_info):
            item.name = rename.get(item.name, item.name)
        # tf2onnx imports ai.onnx.ml at version 2 with no node in it; the preprocessing graph
        # imports it at 3, and merging two graphs needs one version per domain.
        used = {node.domain for node in graph.node} | {"", "ai.onnx"}
        kept = [op for op in net.opset_import if op.domain in used]
        del net.opset_import[:]
        net.opset_import.extend(kept)
        data: bytes = net.SerializeToString()
        return data

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        model = state.pop("model_", None)
        if model is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.keras"
                model.save(path)
                state["model_bytes_"] = path.read_bytes()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        data = state.pop("model_bytes_", None)
        self.__dict__.update(state)
        if data is not None:
            keras = keras_module(self.backend, "load")
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.keras"
                path.write_bytes(data)
                self.model_ = keras.saving.load_model(path, compile=False)


class _Deadline:
    """A Keras callback ending training after the epoch in which the deadline passed."""

    def __new__(cls, keras: Any, deadline: float) -> Any:
        class Deadline(keras.callbacks.Callback):  # type: ignore[misc]
            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                if time.monotonic() >= deadline:
                    self.model.stop_training = True

        return Deadline()
