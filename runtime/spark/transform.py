"""The feature transform fitted by Spark, applied to pandas rows (serving) or Spark frames.

`FittedPlan` is a scikit-learn transformer whose fitted state is plain data (the `plan`, a
constructor argument, so `clone` keeps it): the statistics Spark computed (means, scales,
medians, categories, ...). Its pandas `transform` repeats scikit-learn's arithmetic for each
op, in the same order, so a model trained on the spark engine scores pandas rows exactly as
the pandas engine's `Pipeline` would; `apply_spark` is the same arithmetic as Spark SQL. No
pyspark import at module level: serving unpickles this without Spark.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from mlc.runtime.steps._transforms import CustomTransform, Pseudonymiser

_EPS = float(np.finfo(np.float64).eps)
_BLOCK = 64  # HMAC-SHA256 block size


class FittedPlan(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Apply a Spark-fitted feature plan; `fit` keeps the plan (it was fitted on the train
    split by the features step, before training)."""

    def __init__(self, plan: dict[str, Any] | None = None) -> None:
        self.plan = plan

    # bind_secrets (runtime.steps._data) finds keyed parts under `transformers`.
    @property
    def transformers(self) -> list[tuple[str, Any, list[str]]]:
        return [
            (f"op{i}.{j}", part, entry["columns"])
            for i, entry in enumerate(self._plan()["entries"])
            for j, part in enumerate(self._parts(i))
            if part is not None
        ]

    def _plan(self) -> dict[str, Any]:
        if self.plan is None:
            raise RuntimeError("the feature plan is empty: fit it with the spark engine")
        return self.plan

    def _parts(self, i: int) -> list[Any]:
        """The stateful helper objects of entry `i` (pseudonymisers, custom functions)."""
        cache: dict[int, list[Any]] = self.__dict__.setdefault("_part_cache", {})
        if i not in cache:
            parts: list[Any] = []
            for op in self._plan()["entries"][i]["ops"]:
                if op["op"] == "pseudonymise":
                    parts.append(Pseudonymiser(key_ref=op["key_ref"], buckets=op["buckets"]))
                elif op["op"] == "custom":
                    parts.append(CustomTransform(function=op["function"]))
                else:
                    parts.append(None)
            cache[i] = parts
        return cache[i]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_part_cache", None)
        return state

    def fit(self, X: Any, y: Any = None) -> FittedPlan:
        plan = self._plan()
        self.feature_names_in_ = np.asarray(plan["inputs"], dtype=object)
        self.n_features_in_ = len(plan["inputs"])
        return self

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self._plan()["names"], dtype=object)

    def transform(self, X: Any) -> np.ndarray:
        plan = self._plan()
        frame = pd.DataFrame(X).copy()
        for name, expr in plan["derived"]:
            frame[name] = frame.eval(expr)
        blocks = []
        for i, entry in enumerate(plan["entries"]):
            cols = list(entry["columns"])
            values: Any = frame[cols]
            for op, part in zip(entry["ops"], self._parts(i), strict=True):
                values = _apply_pandas(op, part, values, cols)
            blocks.append(np.asarray(values))
        matrix = np.hstack(blocks) if blocks else np.empty((len(frame), 0))
        keep = plan.get("keep")
        if keep is not None:
            matrix = matrix[:, keep]
        return matrix


def _apply_pandas(op: dict[str, Any], part: Any, values: Any, cols: list[str]) -> Any:
    kind = op["op"]
    if kind == "standard":
        a = np.array(values, dtype=np.float64)
        a -= np.asarray(op["mean"])
        a /= np.asarray(op["scale"])
        return a
    if kind == "minmax":
        a = np.array(values, dtype=np.float64)
        a *= np.asarray(op["scale"])
        a += np.asarray(op["min"])
        return a
    if kind == "robust":
        a = np.array(values, dtype=np.float64)
        a -= np.asarray(op["center"])
        a /= np.asarray(op["scale"])
        return a
    if kind == "impute":
        frame = pd.DataFrame(np.asarray(values, dtype=object))
        numeric = all(isinstance(f, int | float) and not isinstance(f, bool) for f in op["fill"])
        out = np.empty(frame.shape, dtype=np.float64 if numeric else object)
        for j, fill in enumerate(op["fill"]):
            column = frame[j]
            mask = column.isna().to_numpy()
            col = column.to_numpy(dtype=np.float64 if numeric else object, na_value=np.nan)
            col = col.copy()
            col[mask] = fill
            out[:, j] = col
        return out
    if kind == "log":
        a = np.asarray(pd.DataFrame(values), dtype=np.float64)
        return np.log(np.clip(a + op["offset"], 1e-12, None))
    if kind == "digitize":
        return np.digitize(np.asarray(values, dtype=np.float64), op["edges"]).astype(np.float64)
    if kind == "one_hot":
        frame = pd.DataFrame(np.asarray(values, dtype=object))
        outs = []
        for j, cats in enumerate(op["categories"]):
            column = frame[j].to_numpy(dtype=object)
            known = np.zeros(len(column), dtype=bool)
            for cat in cats:
                hit = np.asarray([v == cat for v in column], dtype=bool)
                known |= hit
                outs.append(hit.astype(np.float64))
            if op["handle_unknown"] == "error" and not known.all():
                unknown = sorted({str(v) for v in column[~known]})[:5]
                raise ValueError(
                    f"Found unknown categories {unknown} in column {j} during transform"
                )
        return np.column_stack(outs) if outs else np.empty((len(frame), 0))
    if kind == "pseudonymise":
        return part.transform(pd.DataFrame(np.asarray(values, dtype=object)))
    if kind == "custom":
        frame = pd.DataFrame(np.asarray(values, dtype=object), columns=cols)
        frame = frame.infer_objects()
        return part.fit(frame).transform(frame)
    raise ValueError(f"unknown op in the feature plan: {kind}")


# -- Spark ----------------------------------------------------------------------------------------


def _number(c: Any) -> Any:
    """A numeric column as double, NaN read as missing (pandas' NaN is Spark's null here)."""
    from pyspark.sql import functions as F

    d = c.cast("double")
    return F.when(F.isnan(d), F.lit(None).cast("double")).otherwise(d)


def _hmac_bucket(c: Any, key: bytes, buckets: int) -> Any:
    """`Pseudonymiser`'s HMAC-SHA256 bucket of `str(value)`, built from Spark's `sha2`."""
    import hashlib

    from pyspark.sql import functions as F

    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner_key = bytes(b ^ 0x36 for b in key).hex()
    outer_key = bytes(b ^ 0x5C for b in key).hex()
    message = F.encode(c.cast("string"), "UTF-8")
    inner = F.unhex(F.sha2(F.concat(F.unhex(F.lit(inner_key)), message), 256))
    outer = F.sha2(F.concat(F.unhex(F.lit(outer_key)), inner), 256)
    head = F.conv(F.substring(outer, 1, 16), 16, 10).cast("decimal(20,0)")
    return F.pmod(head, F.lit(buckets)).cast("double")


def spark_op(op: dict[str, Any], j: int, c: Any, part: Any = None) -> list[Any]:
    """Op `op` of column `j` (expression `c`) as Spark expressions (one per output)."""
    from pyspark.sql import functions as F

    kind = op["op"]
    if kind == "standard":
        return [(_number(c) - F.lit(op["mean"][j])) / F.lit(op["scale"][j])]
    if kind == "minmax":
        return [_number(c) * F.lit(op["scale"][j]) + F.lit(op["min"][j])]
    if kind == "robust":
        return [(_number(c) - F.lit(op["center"][j])) / F.lit(op["scale"][j])]
    if kind == "impute":
        fill = op["fill"][j]
        if isinstance(fill, str):
            return [F.coalesce(c.cast("string"), F.lit(fill))]
        return [F.coalesce(_number(c), F.lit(float(fill)))]
    if kind == "log":
        x = _number(c)
        return [
            F.when(x.isNull(), F.lit(float("nan"))).otherwise(
                F.log(F.greatest(x + F.lit(float(op["offset"])), F.lit(1e-12)))
            )
        ]
    if kind == "digitize":
        x = _number(c)
        count = F.lit(0.0)
        for edge in op["edges"]:
            count = count + F.when(x >= F.lit(float(edge)), 1.0).otherwise(0.0)
        # np.digitize puts NaN after the last edge.
        return [F.when(x.isNull(), F.lit(float(len(op["edges"])))).otherwise(count)]
    if kind == "one_hot":
        cats = op["categories"][j]
        outs = [F.when(c == F.lit(cat), 1.0).otherwise(0.0) for cat in cats]
        if op["handle_unknown"] == "error" and cats:
            guard = F.when(
                c.isNull() | ~c.isin(cats),
                F.raise_error(F.concat(F.lit("unknown category: "), c.cast("string"))),
            )
            outs = [F.coalesce(guard.cast("double"), o) for o in outs]
        return outs
    if kind == "pseudonymise":
        return [_hmac_bucket(c, part._current_key(), int(op["buckets"]))]
    raise ValueError(f"op '{kind}' is applied by pandas only (not as Spark SQL)")


def apply_spark(model: FittedPlan, sdf: Any, carry: tuple[str, ...] = ()) -> Any:
    """The feature matrix of `sdf` as a Spark frame with one double column per feature (and
    the columns named in `carry`, e.g. the label, unchanged after them)."""
    from pyspark.sql import functions as F

    plan = model._plan()
    for name, expr in plan["derived"]:
        sdf = sdf.withColumn(name, F.expr(expr))
    outputs: list[Any] = []
    for i, entry in enumerate(plan["entries"]):
        parts = model._parts(i)
        for j, column in enumerate(entry["columns"]):
            exprs = [F.col(f"`{column}`")]
            for op, part in zip(entry["ops"], parts, strict=True):
                if len(exprs) != 1:
                    raise ValueError("an op after one_hot is not supported on the spark engine")
                exprs = spark_op(op, j, exprs[0], part)
            outputs.append(exprs)
    # Column blocks are laid out per entry as scikit-learn's ColumnTransformer does: all
    # outputs of an entry's first column, then its second, ... (one_hot's categories too).
    flat = [e for exprs in outputs for e in exprs]
    keep = plan.get("keep")
    names_all = plan["names_all"]
    chosen = range(len(flat)) if keep is None else keep
    carried = [F.col(f"`{c}`") for c in carry]
    return sdf.select(*[flat[k].alias(names_all[k]) for k in chosen], *carried)
