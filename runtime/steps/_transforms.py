"""Picklable scikit-learn transformers used inside saved models (serving imports them too).

Keys for pseudonymisation are never pickled: a saved model holds only the secret reference and
gets the key again through `bind_key` (the runtime does it when it loads a model) or, for `env:`
references, from the environment at transform time.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import os
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline, _final_estimator_has
from sklearn.utils._available_if import available_if

from mlc.runtime import rowpath

# Keys bound in this process, by reference: scikit-learn clones transformers from their params
# (ColumnTransformer, cross-validation), and a clone must still find the key it was given.
_BOUND_KEYS: dict[str, str] = {}


class Pseudonymiser(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Keyed HMAC-SHA256 of each value, reduced to `buckets` integer codes; raw values never pass.

    Args:
        key_ref: a secret reference such as `env:MLC_PSEUDONYM_KEY`.
        buckets: number of codes the hash is reduced to.
    """

    def __init__(self, key_ref: str = "env:MLC_PSEUDONYM_KEY", buckets: int = 2**20) -> None:
        self.key_ref = key_ref
        self.buckets = buckets

    def bind_key(self, key: str) -> None:
        self._key = key
        _BOUND_KEYS[self.key_ref] = key

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_key", None)
        return state

    def _current_key(self) -> bytes:
        key = getattr(self, "_key", None) or _BOUND_KEYS.get(self.key_ref)
        scheme, _, name = self.key_ref.partition(":")
        if key is None and scheme == "env":
            key = os.environ.get(name)
        if not key:
            raise RuntimeError(
                f"pseudonymisation key '{self.key_ref}' is not available; "
                f"set it (e.g. the environment variable {name})"
            )
        return key.encode()

    def fit(self, X: Any, y: Any = None) -> Pseudonymiser:
        self._current_key()
        frame = pd.DataFrame(X)
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
        self.n_features_in_ = frame.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        key = self._current_key()
        frame = pd.DataFrame(X)
        result = np.empty(frame.shape, dtype=np.float64)
        for j, col in enumerate(frame.columns):
            for i, value in enumerate(frame[col].to_numpy()):
                digest = hmac.new(key, str(value).encode(), hashlib.sha256).digest()
                result[i, j] = int.from_bytes(digest[:8], "big") % self.buckets
        return result

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = input_features if input_features is not None else self.feature_names_in_
        return np.asarray([f"{n}_pseudonym" for n in names], dtype=object)


class LogTransform(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """`log(x + offset)`; values below `-offset` are clipped so the result stays finite."""

    def __init__(self, offset: float = 1.0) -> None:
        self.offset = offset

    def fit(self, X: Any, y: Any = None) -> LogTransform:
        frame = pd.DataFrame(X)
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
        self.n_features_in_ = frame.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        values = np.asarray(pd.DataFrame(X), dtype=np.float64)
        return np.log(np.clip(values + self.offset, 1e-12, None))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(
            input_features if input_features is not None else self.feature_names_in_, dtype=object
        )


class CustomTransform(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Calls the user's `module:function(DataFrame) -> DataFrame`; imported by name, so it
    pickles as a reference rather than as code."""

    def __init__(self, function: str = "") -> None:
        self.function = function

    def _fn(self) -> Any:
        module, _, attr = self.function.partition(":")
        return getattr(importlib.import_module(module), attr)

    def fit(self, X: Any, y: Any = None) -> CustomTransform:
        frame = pd.DataFrame(X)
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
        self.n_features_in_ = frame.shape[1]
        self._fn()
        return self

    def transform(self, X: Any) -> np.ndarray:
        frame = pd.DataFrame(X, columns=list(self.feature_names_in_))
        result = pd.DataFrame(self._fn()(frame))
        self.names_out_ = np.asarray([str(c) for c in result.columns], dtype=object)
        return np.asarray(result, dtype=np.float64)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return getattr(self, "names_out_", self.feature_names_in_)


class DerivedFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Adds derived columns with `DataFrame.eval`, before the column transforms."""

    def __init__(self, derived: tuple[tuple[str, str], ...] = ()) -> None:
        self.derived = derived

    def fit(self, X: Any, y: Any = None) -> DerivedFeatures:
        self.names_out_ = np.asarray([str(c) for c in self.transform(X).columns], dtype=object)
        return self

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.names_out_, dtype=object)

    def transform(self, X: Any) -> pd.DataFrame:
        frame = pd.DataFrame(X).copy()
        for name, expr in self.derived:
            frame[name] = frame.eval(expr)
        return frame


class RowPipeline(Pipeline):  # type: ignore[misc]
    """The trained model's `Pipeline`, whose one-row calls take the compiled row path
    (`mlc.runtime.rowpath`): the same answers as the batch path, without pandas and
    `ColumnTransformer` overhead per call, for every server that loads the registered model.
    Anything else (several rows, parameters, a model without a row form) is `Pipeline`'s."""

    def __getstate__(self) -> dict[str, Any]:
        return rowpath.without_cache(super().__getstate__())

    @available_if(_final_estimator_has("predict_proba"))  # type: ignore[untyped-decorator]
    def predict_proba(self, X: Any, **params: Any) -> Any:
        got = None if params else rowpath.answer(self, X, "classification")
        return got if got is not None else super().predict_proba(X, **params)

    def predict(self, X: Any, **params: Any) -> Any:
        final = self.steps[-1][1]
        if not params and not hasattr(final, "classes_"):
            got = rowpath.answer(self, X, "regression")
            if got is not None:
                return got
        elif not params and type(final).__name__ == "HistGradientBoostingClassifier":
            # its predict is the most probable class of predict_proba, but for near-ties
            # (it decides on the raw score, which can round to a tie in probabilities)
            got = rowpath.answer(self, X, "classification")
            if got is not None:
                top = np.sort(got[0])
                if len(top) < 2 or top[-1] - top[-2] > 1e-9:
                    return np.asarray(final.classes_)[got.argmax(axis=1)]
        return super().predict(X, **params)
