"""Adapters for frameworks beyond scikit-learn: XGBoost, LightGBM, Keras, user Lightning modules.

Each adapter ends in a scikit-learn estimator, so the train step's `Pipeline` (transform, then
model), evaluation, explain, batch scoring and serving treat every framework alike. A framework
whose package is missing is a step error naming the extra that installs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from mlc.runtime.context import StepError

EXTRAS = {
    "xgboost": ("xgboost", "boost"),
    "lightgbm": ("lightgbm", "boost"),
    "keras": ("keras", "keras"),
    "lightning": ("lightning", "torch"),
}
"""framework -> (package imported, mlc extra that installs it)."""

BOOSTING = ("xgboost", "lightgbm")


def require(framework: str, step: str) -> Any:
    """Import the framework's package, or fail naming the extra to install."""
    package, extra = EXTRAS[framework]
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise StepError(
            step,
            f"framework '{framework}' needs the package '{package}', which is not installed "
            f"({exc})",
            f"pip install 'mlc[{extra}]'",
        ) from None


KERAS_BACKEND_DISTS = {"torch": "torch", "tensorflow": "tensorflow-cpu", "jax": "jax"}
"""Keras backend -> the distribution a model trained under it needs to reload."""


def extra_requirements(own_types: Sequence[str], keras_backend: str = "torch") -> list[str]:
    """Distributions a logged model needs beyond scikit-learn's, from the types it contains
    (and, for a Keras model, the backend it was trained under)."""
    dists: list[str] = []
    if any(t.startswith("xgboost.") for t in own_types):
        dists.append("xgboost")
    if any(t.startswith("lightgbm.") for t in own_types):
        dists.append("lightgbm")
    if any(t.startswith("mlc.runtime.frameworks.keras_model.") for t in own_types):
        # The model reloads under the backend it was trained with.
        dists += ["keras", "h5py", KERAS_BACKEND_DISTS.get(keras_backend, keras_backend)]
    return dists
