"""Request guards from the data contract: every row is checked before any prediction.

The rules are the validate step's (`dtype`, `nullable`, `min`, `max`, `allowed`, `regex`,
`unique`, read from `ColumnParams`), applied to the JSON values as sent so that a failure names
the input, the row and the rule; passing rows then become the model's frame, typed as
`cast_to_contract` (the cast the model saw in training) types them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from mlc.runtime.steps._data import allowed_texts, value_text

if TYPE_CHECKING:
    import pandas as pd

    from mlc.compiler.ir.params import ColumnParams

MAX_LISTED = 20
"""Failures listed in one 422 answer (the count says how many there were)."""


@dataclass
class Rejection(Exception):
    """A request refused before scoring: HTTP `status`, a message and the failed `rule`."""

    status: int
    message: str
    rule: str
    failures: list[dict[str, Any]] | None = None

    def body(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"error": self.message}
        if self.failures:
            doc["failures"] = self.failures[:MAX_LISTED]
            doc["failure_count"] = len(self.failures)
        return doc


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _finite_number(value: Any) -> bool:
    return not _is_bool(value) and isinstance(value, (int, float)) and math.isfinite(float(value))


def _dtype_ok(value: Any, dtype: str, allowed: Sequence[Any] | None) -> bool:
    if dtype == "int":
        return _finite_number(value) and float(value).is_integer()
    if dtype == "float":
        return _finite_number(value)
    if dtype == "bool":
        return _is_bool(value)
    if dtype == "datetime":
        if not isinstance(value, str):
            return False
        from datetime import datetime

        try:
            datetime.fromisoformat(value)
        except ValueError:
            return False
        return True
    if dtype == "category" and allowed:
        # Categories declared as numbers or bools may be sent as such (cast_to_contract maps
        # them to the declared value's text).
        return isinstance(value, (str, int, float))
    return isinstance(value, str)


class Guard:
    """The checks for the feature columns of one contract."""

    def __init__(self, columns: Mapping[str, Any], features: Sequence[str]) -> None:
        self.features = list(features)
        self.columns = {name: dict(columns[name]) for name in self.features}
        self._allowed = {
            name: (
                set(allowed_texts(col["allowed"]))
                if col["dtype"] in ("category", "str")
                else {float(a) for a in col["allowed"] if _finite_number(a)}
                | {a for a in col["allowed"] if _is_bool(a)}
            )
            for name, col in self.columns.items()
            if col.get("allowed") is not None
        }
        # Declared texts of category columns: values already equal to one need no mapping.
        self._texts = {
            name: set(allowed_texts(col.get("allowed") or ()))
            for name, col in self.columns.items()
            if col["dtype"] in ("category", "str")
        }
        self._regex = {
            name: re.compile(col["regex"]) for name, col in self.columns.items() if col.get("regex")
        }

    def _value(self, name: str, col: Mapping[str, Any], value: Any) -> tuple[str, str] | None:
        """The failed rule and its explanation for one value, or None."""
        dtype = col["dtype"]
        if value is None:
            return None if col["nullable"] else ("nullable", "null where the column is required")
        if not _dtype_ok(value, dtype, col.get("allowed")):
            return "dtype", f"value {value!r} is not of dtype {dtype}"
        if dtype in ("int", "float"):
            if col.get("min") is not None and value < col["min"]:
                return "min", f"value {value_text(value)} is below min {value_text(col['min'])}"
            if col.get("max") is not None and value > col["max"]:
                return "max", f"value {value_text(value)} is above max {value_text(col['max'])}"
        if name in self._allowed:
            allowed = self._allowed[name]
            ok = (
                value_text(value) in allowed
                if dtype in ("category", "str")
                else (value in allowed if _is_bool(value) else float(value) in allowed)
            )
            if not ok:
                listed = ", ".join(value_text(a) for a in col["allowed"])
                return "allowed", f"value {value_text(value)} not in allowed [{listed}]"
        pattern = self._regex.get(name)
        if pattern is not None and isinstance(value, str) and not pattern.fullmatch(value):
            return "regex", f"value {value!r} does not match {pattern.pattern!r}"
        return None

    def check(self, data: Mapping[str, Sequence[Any]], rows: int) -> None:
        """Raise a 422 `Rejection` listing every failed (input, row, rule); else return."""
        missing = [name for name in self.features if name not in data]
        if missing:
            raise Rejection(
                422,
                "missing required input(s): " + ", ".join(missing),
                "missing",
                [{"input": m, "row": None, "rule": "missing"} for m in missing],
            )
        failures: list[dict[str, Any]] = []
        for name in self.features:
            col = self.columns[name]
            values = data[name]
            for row, value in enumerate(values):
                found = self._value(name, col, value)
                if found is not None:
                    rule, why = found
                    failures.append({"input": name, "row": row, "rule": rule, "message": why})
            if col.get("unique"):
                seen: dict[str, int] = {}
                for row, value in enumerate(values):
                    key = value_text(value)
                    if value is not None and key in seen:
                        failures.append(
                            {
                                "input": name,
                                "row": row,
                                "rule": "unique",
                                "message": f"value {key} repeats row {seen[key]}",
                            }
                        )
                    seen.setdefault(key, row)
        if failures:
            first = failures[0]
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            raise Rejection(
                422,
                f"input '{first['input']}' row {first['row']}: {first['message']} "
                f"(rule {first['rule']}){more}",
                str(first["rule"]),
                failures,
            )

    def frame(self, data: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
        """The checked columns as the model's input frame, typed as `cast_to_contract` types
        them, built straight from the checked values (no generic frame to cast)."""
        import pandas as pd

        try:
            built = {name: self._column(name, data[name]) for name in self.features}
        except (ValueError, TypeError, OverflowError):
            # Values the direct build cannot type are left to the training cast itself.
            return self.cast_frame(data)
        return pd.DataFrame(built, columns=self.features, copy=False)

    def row(self, data: Mapping[str, Sequence[Any]]) -> dict[str, Any] | None:
        """The first row's checked values typed as `frame` types them, for the one-row path;
        None where only the frame build can type a value (timestamps, numbers sent as
        texts of a declared category)."""
        values: dict[str, Any] = {}
        for name in self.features:
            value = data[name][0]
            col = self.columns[name]
            dtype = col["dtype"]
            if dtype == "int":
                if value is None:
                    value = float("nan")
                elif isinstance(value, float):
                    if not value.is_integer():
                        return None
                    value = int(value)
            elif dtype == "float":
                value = float("nan") if value is None else float(value)
            elif dtype == "category" or (dtype == "str" and col.get("allowed")):
                plain = not col.get("allowed")
                known = isinstance(value, str) and (plain or value in self._texts[name])
                if not (value is None or known):
                    return None
            elif dtype == "str":
                value = value if value is None else str(value)
            elif dtype != "bool":
                return None
            values[name] = value
        return values

    def cast_frame(self, data: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
        """The checked columns cast with `cast_to_contract`, the cast the model saw in training."""
        import pandas as pd

        from mlc.runtime.steps._data import cast_to_contract

        frame = pd.DataFrame({name: list(data[name]) for name in self.features})
        return cast_to_contract(frame, cast("Mapping[str, ColumnParams]", self.columns))

    def _column(self, name: str, values: Sequence[Any]) -> Any:
        import numpy as np
        import pandas as pd

        col = self.columns[name]
        dtype = col["dtype"]
        if dtype == "int":
            if any(v is None for v in values):
                return np.array(values, dtype="float64")
            return np.array(values, dtype="int64")
        if dtype == "float":
            return np.array(values, dtype="float64")
        if dtype == "bool":
            return pd.array(list(values), dtype="boolean")
        if dtype == "category" or (dtype == "str" and col.get("allowed")):
            texts = self._texts[name]
            plain = not col.get("allowed")
            if all(v is None or (isinstance(v, str) and (plain or v in texts)) for v in values):
                return np.array(list(values), dtype=object)
            return self._categories(name, values)
        if dtype == "str":
            return np.array([v if v is None else str(v) for v in values], dtype=object)
        if dtype == "datetime":
            return pd.to_datetime(pd.Series(list(values), dtype=object))
        raise TypeError(f"no direct build for dtype {dtype}")

    def _categories(self, name: str, values: Sequence[Any]) -> Any:
        # Numbers and bools sent for declared categories map to the declared value's text.
        import pandas as pd

        from mlc.runtime.steps._data import _as_category

        series = pd.Series(list(values), dtype=object)
        return _as_category(series, self.columns[name].get("allowed")).to_numpy(dtype=object)
