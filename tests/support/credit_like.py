"""Small credit-shaped data and contracts for runtime tests that fit their own models."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

REGIONS = ["north", "south", "east", "west"]
PURPOSES = ["car", "home", "education"]


def column(dtype: str, **kw: Any) -> dict[str, Any]:
    """A contract column as the IR carries it (`ColumnParams`), every key set."""
    base = {
        "dtype": dtype,
        "nullable": False,
        "min": None,
        "max": None,
        "allowed": None,
        "unique": False,
        "regex": None,
        "pii": False,
        "description": "",
    }
    return {**base, **kw}


def frame(seed: int, rows: int) -> pd.DataFrame:
    """age, income, region, purpose and a `default` label that depends on them (seeded)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.integers(18, 90, rows),
            "income": rng.lognormal(10, 0.5, rows).round(2),
            "region": rng.choice(REGIONS, rows),
            "purpose": rng.choice(PURPOSES, rows),
        }
    )
    score = (df["age"] - 50) / 20 + np.log(df["income"]) - 10 + (df["region"] == "east")
    df["default"] = (score + rng.normal(0, 0.5, rows) > 0).astype(int)
    return df
