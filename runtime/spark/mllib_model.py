"""Spark MLlib models as plain numpy estimators, so that they serve like any other model.

A fitted MLlib model needs a SparkSession (a JVM) to predict, and `mlflow.spark` would start
one in the serving process for every pandas request. MLlib's linear models and tree ensembles
are small, fully described by their coefficients and trees, so `train_mllib` copies them out
into these classes, whose predictions are MLlib's (checked on the training rows as it copies).
No pyspark import here: serving unpickles these without Spark.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin


class Trees:
    """Decision trees as flat arrays: internal nodes go left when `x[feature] <= threshold`."""

    def __init__(self, trees: list[dict[str, Any]], weights: list[float]) -> None:
        self.trees = trees
        self.weights = weights

    def leaf_values(self, X: np.ndarray, t: int) -> np.ndarray:
        """Each row's leaf value (a vector per row) in tree `t`."""
        tree = self.trees[t]
        feature = np.asarray(tree["feature"])
        threshold = np.asarray(tree["threshold"])
        left, right = np.asarray(tree["left"]), np.asarray(tree["right"])
        value = np.asarray(tree["value"], dtype=np.float64)
        node = np.zeros(len(X), dtype=np.int64)
        rows = np.arange(len(X))
        while True:
            internal = feature[node] >= 0
            if not internal.any():
                break
            idx = rows[internal]
            at = node[idx]
            go_left = X[idx, feature[at]] <= threshold[at]
            node[idx] = np.where(go_left, left[at], right[at])
        return value[node]


class _MLlib(BaseEstimator):  # type: ignore[misc]
    def __init__(self, kind: str = "", state: dict[str, Any] | None = None) -> None:
        self.kind = kind
        self.state = state

    def fit(self, X: Any, y: Any = None) -> Any:
        # Fitted by Spark (mlc.runtime.spark.mllib); a Pipeline only needs the method.
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return self.state is not None

    def _state(self) -> dict[str, Any]:
        if self.state is None:
            raise RuntimeError("this MLlib model copy holds no fitted state")
        return self.state

    def _margin(self, X: Any) -> np.ndarray:
        """Linear models: X @ coefficients + intercept (one column per class or output)."""
        s = self._state()
        a = np.asarray(X, dtype=np.float64)
        coef = np.asarray(s["coefficients"], dtype=np.float64)
        margin: np.ndarray = a @ coef.T + np.asarray(s["intercept"], dtype=np.float64)
        return margin

    def _trees(self) -> Trees:
        s = self._state()
        return Trees(s["trees"], s["weights"])


class MLlibClassifier(ClassifierMixin, _MLlib):  # type: ignore[misc]
    """LogisticRegression, RandomForestClassifier or GBTClassifier copied from MLlib."""

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self._state()["classes"])

    def predict_proba(self, X: Any) -> np.ndarray:
        a = np.asarray(X, dtype=np.float64)
        if self.kind == "logistic":
            m = self._margin(a)
            if m.shape[1] == 1:
                p1 = 1.0 / (1.0 + np.exp(-m[:, 0]))
                return np.column_stack([1.0 - p1, p1])
            e = np.exp(m - m.max(axis=1, keepdims=True))
            softmax: np.ndarray = e / e.sum(axis=1, keepdims=True)
            return softmax
        trees = self._trees()
        if self.kind == "random_forest":
            # MLlib sums each tree's class distribution at the leaf, then normalises.
            raw = np.zeros((len(a), len(self.classes_)))
            for t in range(len(trees.trees)):
                leaf = trees.leaf_values(a, t)
                total = leaf.sum(axis=1, keepdims=True)
                raw += np.divide(leaf, total, out=np.zeros_like(leaf), where=total > 0)
            proba: np.ndarray = raw / raw.sum(axis=1, keepdims=True)
            return proba
        # GBT: log loss on labels -1/+1, so P(1) = 1 / (1 + exp(-2 * margin)).
        margin = np.zeros(len(a))
        for t, w in enumerate(trees.weights):
            margin += w * trees.leaf_values(a, t)[:, 0]
        p1 = 1.0 / (1.0 + np.exp(-2.0 * margin))
        return np.column_stack([1.0 - p1, p1])

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])


class MLlibRegressor(RegressorMixin, _MLlib):  # type: ignore[misc]
    """LinearRegression, RandomForestRegressor or GBTRegressor copied from MLlib."""

    def predict(self, X: Any) -> np.ndarray:
        a = np.asarray(X, dtype=np.float64)
        if self.kind == "linear":
            return np.asarray(self._margin(a)[:, 0])
        trees = self._trees()
        total = np.zeros(len(a))
        for t, w in enumerate(trees.weights):
            total += w * trees.leaf_values(a, t)[:, 0]
        if self.kind == "random_forest":
            return total / len(trees.weights)
        return total
