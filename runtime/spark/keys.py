"""The hash split's assignment, computed alike by pandas (hashlib) and Spark (`sha2`).

A row's place is `u = int(sha256("<seed>:<key text>")[:13 hex digits]) / 16**13`, a fraction
in [0, 1) with 52 bits, which a double holds exactly, so both engines compare the same number
with the same thresholds: `u < test_size` is test, `u < test_size + validation_size` is
validation, the rest is train. The key's text is `value_text` of the value (`7`, `abc`), which
is what Spark's `cast(key as string)` writes for the int and text columns a key may be.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from mlc.runtime.steps._data import value_text

if TYPE_CHECKING:
    import pandas as pd

HEX_DIGITS = 13
SCALE = float(16**HEX_DIGITS)


def fraction(key: Any, seed: int) -> float:
    """The hash split's fraction of one key value."""
    digest = hashlib.sha256(f"{seed}:{value_text(key)}".encode()).hexdigest()
    return int(digest[:HEX_DIGITS], 16) / SCALE


def fractions(keys: pd.Series, seed: int) -> Any:
    """`fraction` of every value of `keys`, as a numpy array."""
    import numpy as np

    return np.fromiter((fraction(k, seed) for k in keys), dtype=np.float64, count=len(keys))


def spark_fraction(column: Any, seed: int) -> Any:
    """The same fraction as a Spark column expression."""
    from pyspark.sql import functions as F

    text = F.concat(F.lit(f"{seed}:"), column.cast("string"))
    head = F.substring(F.sha2(text, 256), 1, HEX_DIGITS)
    return F.conv(head, 16, 10).cast("bigint").cast("double") / F.lit(SCALE)


def part_of(u: float, test_size: float, validation_size: float) -> str:
    """The part a fraction falls in."""
    if u < test_size:
        return "test"
    if u < round(test_size + validation_size, 9):
        return "validation"
    return "train"
