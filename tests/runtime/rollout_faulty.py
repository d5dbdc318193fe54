"""A challenger that really fails: scoring raises for rows of one region (a bad release).

Importable by the serving subprocess (the rollout test puts this folder on its PYTHONPATH), so
the registered model unpickles there as it would in production.
"""

from __future__ import annotations

from typing import Any


class FailsOnRegion:
    """Wraps a fitted classifier; any batch holding a row of `region` raises `ValueError`."""

    def __init__(self, model: Any, region: str) -> None:
        self.model = model
        self.region = region
        self.classes_ = model.classes_

    def _check(self, frame: Any) -> None:
        if (frame["region"] == self.region).any():
            raise ValueError(f"cannot score region '{self.region}'")

    def predict(self, frame: Any) -> Any:
        self._check(frame)
        return self.model.predict(frame)

    def predict_proba(self, frame: Any) -> Any:
        self._check(frame)
        return self.model.predict_proba(frame)
