"""User entry points for the runtime tests: a working and a raising custom trainer/transform."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.linear_model import LogisticRegression


def fit(x: Any, y: Any, params: dict[str, Any]) -> LogisticRegression:
    return LogisticRegression(max_iter=200).fit(x, y)


def broken(x: Any, y: Any, params: dict[str, Any]) -> None:
    raise RuntimeError("the user's trainer fell over")


def double(frame: pd.DataFrame) -> pd.DataFrame:
    return frame * 2.0
