"""features on the spark engine: the transform's statistics computed by Spark aggregates.

The transform's structure comes from the pandas engine's `build_transform` (the same column
groups, chains, PII and selection rules); each op's state is then computed in Spark on the
train split, one aggregate pass per chain position, and kept as a `FittedPlan`. The numbers
are scikit-learn's: population variance, exact percentiles with linear interpolation (numpy's
default), the most frequent value with ties to the smallest, categories sorted.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.spark import frames
from mlc.runtime.spark.session import first_line, session
from mlc.runtime.spark.transform import FittedPlan, spark_op
from mlc.runtime.steps._data import bind_secrets, out

if TYPE_CHECKING:
    from mlc.compiler.ir.params import FeaturesParams

STEP = "features"
_EPS = 2.220446049250313e-16


def _describe_op(est: Any) -> dict[str, Any]:
    """The op of one scikit-learn step of `build_transform`, before fitting."""
    from sklearn import preprocessing
    from sklearn.impute import SimpleImputer

    from mlc.runtime.steps._transforms import CustomTransform, LogTransform, Pseudonymiser

    if isinstance(est, preprocessing.StandardScaler):
        return {"op": "standard"}
    if isinstance(est, preprocessing.MinMaxScaler):
        return {"op": "minmax"}
    if isinstance(est, preprocessing.RobustScaler):
        return {"op": "robust"}
    if isinstance(est, preprocessing.OneHotEncoder):
        if est.max_categories is not None:
            raise StepError(
                STEP,
                "one_hot with max_categories is not fitted by the spark engine",
                "remove max_categories, or use engine: pandas",
            )
        return {"op": "one_hot", "handle_unknown": est.handle_unknown}
    if isinstance(est, SimpleImputer):
        return {"op": "impute", "strategy": est.strategy, "fill_value": est.fill_value}
    if isinstance(est, LogTransform):
        return {"op": "log", "offset": float(est.offset)}
    if isinstance(est, preprocessing.FunctionTransformer):
        return {"op": "digitize", "edges": list(est.kw_args["edges"])}
    if isinstance(est, preprocessing.KBinsDiscretizer):
        raise StepError(
            STEP,
            "bucketize with a number of quantile bins is not fitted by the spark engine",
            "give the bin edges (features.transforms[].bins: [e1, e2, ...])",
        )
    if isinstance(est, Pseudonymiser):
        return {"op": "pseudonymise", "key_ref": est.key_ref, "buckets": int(est.buckets)}
    if isinstance(est, CustomTransform):
        return {"op": "custom", "function": est.function}
    raise StepError(STEP, f"transform {type(est).__name__} is not fitted by the spark engine")


def _aggregates(op: dict[str, Any], c: Any, numeric: bool) -> list[Any]:
    """The Spark aggregates op `op` needs of one column (expression `c`)."""
    from pyspark.sql import functions as F

    from mlc.runtime.spark.transform import _number

    kind = op["op"]
    x = _number(c) if numeric else c
    if kind == "standard":
        return [F.avg(x), F.var_pop(x), F.count(x)]
    if kind == "minmax":
        return [F.min(x), F.max(x)]
    if kind == "robust":
        return [F.percentile(x, F.array(F.lit(0.25), F.lit(0.5), F.lit(0.75)))]
    if kind == "impute" and op["strategy"] == "mean":
        return [F.avg(x)]
    if kind == "impute" and op["strategy"] == "median":
        return [F.percentile(x, F.lit(0.5))]
    return []


def _state(
    op: dict[str, Any], stats: list[list[Any]], sdf: Any, cols: list[Any], numeric: list[bool]
) -> dict[str, Any]:
    """Op `op` fitted: per-column statistics -> the state the transform applies."""
    from pyspark.sql import functions as F

    kind = op["op"]
    if kind == "standard":
        mean, scale = [], []
        for m, var, n in stats:
            m = 0.0 if m is None else float(m)
            var = 0.0 if var is None else float(var)
            constant = var <= n * _EPS * var + (n * m * _EPS) ** 2
            mean.append(m)
            scale.append(1.0 if constant else math.sqrt(var))
        return {"op": kind, "mean": mean, "scale": scale}
    if kind == "minmax":
        scale, low = [], []
        for lo, hi in stats:
            lo = float(lo) if lo is not None else float("nan")
            hi = float(hi) if hi is not None else float("nan")
            rng = hi - lo
            s = 1.0 / (1.0 if rng < 10 * _EPS else rng)
            scale.append(s)
            low.append(0.0 - lo * s)
        return {"op": kind, "scale": scale, "min": low}
    if kind == "robust":
        center, scale = [], []
        for (q,) in stats:
            q25, q50, q75 = (float(v) for v in q) if q else (0.0, 0.0, 0.0)
            rng = q75 - q25
            center.append(q50)
            scale.append(1.0 if rng < 10 * _EPS else rng)
        return {"op": kind, "center": center, "scale": scale}
    if kind == "impute":
        strategy = op["strategy"]
        fill: list[Any] = []
        for j, c in enumerate(cols):
            if strategy in ("mean", "median"):
                value = stats[j][0]
                fill.append(float("nan") if value is None else float(value))
            elif strategy == "most_frequent":
                counted = sdf.where(c.isNotNull()).groupBy(c.alias("_v")).count()
                rows = counted.orderBy(F.desc("count"), F.asc("_v")).limit(1).collect()
                value = rows[0]["_v"] if rows else None
                fill.append(float(value) if numeric[j] and value is not None else value)
            else:
                given = op["fill_value"]
                fill.append(
                    given if given is not None else (0.0 if numeric[j] else "missing_value")
                )
        return {"op": kind, "fill": fill}
    if kind == "one_hot":
        categories = []
        for c in cols:
            values = [
                r["_v"] for r in sdf.where(c.isNotNull()).select(c.alias("_v")).distinct().collect()
            ]
            categories.append(sorted(values))
        return {"op": kind, "handle_unknown": op["handle_unknown"], "categories": categories}
    return dict(op)


def _names(op: dict[str, Any], names: list[str]) -> list[str]:
    if op["op"] == "one_hot":
        return [
            f"{n}_{cat}" for n, cats in zip(names, op["categories"], strict=True) for cat in cats
        ]
    if op["op"] == "pseudonymise":
        return [f"{n}_pseudonym" for n in names]
    return names


def fit_plan(sdf: Any, skeleton: Any, inputs: list[str], sample: Any = None) -> FittedPlan:
    """Fit `build_transform`'s `skeleton` on the Spark frame `sdf` (features only)."""
    from pyspark.sql import functions as F

    derive, columns = skeleton.steps[0][1], skeleton.steps[1][1]
    derived = [list(d) for d in derive.derived]
    for name, expr in derived:
        try:
            sdf = sdf.withColumn(name, F.expr(expr))
        except Exception as exc:  # analysis errors of the expression
            raise StepError(
                STEP,
                f"cannot compute the derived column '{name}' = {expr} in Spark SQL: "
                f"{first_line(exc)}",
                "on the spark engine features.derived[].expr must be valid in pandas and Spark SQL",
            ) from exc
    types = dict(sdf.dtypes)
    entries = []
    for _name, est, cols in columns.transformers:
        steps = [] if est == "passthrough" else [s for _, s in est.steps]
        entries.append({"columns": list(cols), "ops": [_describe_op(s) for s in steps]})
    # Current expression and numeric-ness of every (entry, column), advanced op by op.
    exprs = [[F.col(f"`{c}`") for c in e["columns"]] for e in entries]
    numeric = [
        [not types[c].startswith(("string", "boolean")) for c in e["columns"]] for e in entries
    ]
    depth = max((len(e["ops"]) for e in entries), default=0)
    for d in range(depth):
        aggs: list[Any] = []
        spans: dict[tuple[int, int], tuple[int, int]] = {}
        for i, e in enumerate(entries):
            if d >= len(e["ops"]):
                continue
            for j, c in enumerate(exprs[i]):
                wanted = _aggregates(e["ops"][d], c, numeric[i][j])
                spans[(i, j)] = (len(aggs), len(aggs) + len(wanted))
                aggs.extend(wanted)
        row = (
            sdf.agg(*[a.alias(f"a{k}") for k, a in enumerate(aggs)]).collect()[0] if aggs else None
        )
        for i, e in enumerate(entries):
            if d >= len(e["ops"]):
                continue
            op = e["ops"][d]
            if d < len(e["ops"]) - 1 and op["op"] in ("one_hot", "pseudonymise", "custom"):
                raise StepError(
                    STEP,
                    f"'{op['op']}' must be the last transform of its columns on the spark engine",
                    "reorder features.transforms",
                )
            stats = [
                [row[f"a{k}"] for k in range(*spans[(i, j)])] if row is not None else []
                for j in range(len(exprs[i]))
            ]
            e["ops"][d] = _state(op, stats, sdf, exprs[i], numeric[i])
            if op["op"] not in ("one_hot", "pseudonymise", "custom"):
                # The next op's statistics are of this op's output.
                exprs[i] = [spark_op(e["ops"][d], j, c)[0] for j, c in enumerate(exprs[i])]
                if op["op"] != "impute":
                    numeric[i] = [True] * len(exprs[i])
    names_all: list[str] = []
    for e in entries:
        names = list(e["columns"])
        for op in e["ops"]:
            names = _names(op, names)
        if any(op["op"] == "custom" for op in e["ops"]):
            names = _custom_names(e, sample)
        names_all.extend(names)
    plan: dict[str, Any] = {
        "inputs": list(inputs),
        "derived": derived,
        "entries": entries,
        "names_all": names_all,
        "names": names_all,
        "keep": None,
    }
    model = FittedPlan(plan)
    if len(skeleton.steps) > 2:
        selector = skeleton.steps[2][1]
        from sklearn.feature_selection import VarianceThreshold

        if not isinstance(selector, VarianceThreshold):
            raise StepError(
                STEP,
                "selection method 'k_best' is not fitted by the spark engine",
                "use features.selection.method: variance or none, or engine: pandas",
            )
        plan["keep"] = _variance_keep(model, sdf)
        plan["names"] = [names_all[k] for k in plan["keep"]]
    return model


def _custom_names(entry: dict[str, Any], sample: Any) -> list[str]:
    """A custom function's output names, from running the entry on a few sample rows."""
    model = FittedPlan(
        {"inputs": [], "derived": [], "entries": [entry], "names": [], "names_all": []}
    )
    if sample is None:
        raise StepError(STEP, "a custom transform needs sample rows to name its outputs")
    part = model._parts(0)[-1]
    model.transform(sample)
    return [str(n) for n in part.get_feature_names_out()]


def _variance_keep(model: FittedPlan, sdf: Any) -> list[int]:
    """scikit-learn's VarianceThreshold(0) support: variance and range both above zero."""
    from pyspark.sql import functions as F

    from mlc.runtime.spark.transform import apply_spark

    plan = model.plan or {}
    matrix = apply_spark(model, sdf)
    aggs = []
    for k, name in enumerate(matrix.columns):
        c = F.col(f"`{name}`")
        aggs += [F.var_pop(c).alias(f"v{k}"), (F.max(c) - F.min(c)).alias(f"r{k}")]
    row = matrix.agg(*aggs).collect()[0]
    keep = []
    for k in range(len(plan["names_all"])):
        var, rng = row[f"v{k}"], row[f"r{k}"]
        if var is not None and rng is not None and min(float(var), float(rng)) > 0:
            keep.append(k)
    if not keep:
        raise StepError(STEP, "no feature has any variance in the train split")
    return keep


def run(
    params: FeaturesParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    from mlc.runtime.steps.features import build_transform

    spark = session(params.get("spark"), STEP)
    train = frames.load(spark, inputs, "train", STEP)
    target = params["target"]
    if target not in train.columns:
        raise StepError(
            STEP,
            f"target column '{target}' is not in the data",
            "columns: " + ", ".join(map(str, train.columns)),
        )
    x = train.drop(target)
    skeleton = build_transform(params, list(map(str, x.columns)), ctx)
    custom = any(t["op"] == "custom" for t in params["transforms"])
    sample = x.limit(100).toPandas() if custom else None
    try:
        model = fit_plan(x, skeleton, list(map(str, x.columns)), sample)
    except StepError:
        raise
    except Exception as exc:  # py4j errors, a user function
        raise StepError(
            STEP, f"fitting the feature transform in Spark failed: {first_line(exc)}"
        ) from exc
    model.fit(None)
    bind_secrets(model, ctx)
    names = list(model.get_feature_names_out())
    digest = artifacts.save_object(
        out(outputs, "transform", STEP),
        model,
        "transform",
        features=names,
        task=params["task"],
        engine="spark",
    )
    return {"features_in": len(x.columns), "features_out": len(names), "hash": digest}
