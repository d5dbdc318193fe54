"""One-row scoring: a registered model's transforms and trees replayed on one row's values.

A fitted scikit-learn `Pipeline` spends almost all of a one-row call outside the model: pandas
indexing, `check_array` and one sub-pipeline per column group in `ColumnTransformer`, and
`DataFrame.eval` for derived columns. `compile_row` reads the fitted parameters once and
returns a scorer that takes one row as a mapping of column to value and applies the same
arithmetic in the same order, so its outputs equal the batch path's (the parity tests hold
them to 1e-9 on whole datasets).

What is replayed: `DerivedFeatures` (arithmetic, comparisons and pandas' math functions on
numpy scalars), `ColumnTransformer`, `SimpleImputer`, the standard/min-max/robust scalers,
`OneHotEncoder` (no dropped or infrequent categories), `LogTransform`, `Pseudonymiser`,
fixed-edge buckets, feature selection, `HistGradientBoosting*` trees (all trees of a level
at once) and fairlearn's threshold rule in `MitigatedModel`. Any other step is called on its
one-row input as the batch path calls it, so an unknown step costs speed, never correctness.
"""

from __future__ import annotations

import ast
import contextvars
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Row = Mapping[str, Any]

_CALLED: contextvars.ContextVar[list[str]] = contextvars.ContextVar("mlc_rowpath_called")


def _called_as_is(est: Any) -> None:
    """Note a step the row path calls as the batch path does (its cost is that step's own)."""
    found = _CALLED.get(None)
    if found is not None:
        found.append(type(est).__name__)


class RowScorer:
    """A compiled one-row scorer; `called` names the steps it calls as they are (empty: every
    step is replayed by this module, so a call costs tens of microseconds)."""

    def __init__(self, fn: Callable[[Row], Any], called: Sequence[str]) -> None:
        self._fn = fn
        self.called = tuple(dict.fromkeys(called))

    def __call__(self, row: Row) -> Any:
        return self._fn(row)


class Unsupported(Exception):
    """A model this module cannot score row by row (the batch path is used)."""


# -- derived columns ------------------------------------------------------------------------

_FUNCTIONS = frozenset(
    # pandas.eval's math functions, each the numpy ufunc of that name
    {"sin", "cos", "tan", "exp", "log", "expm1", "log1p", "sqrt", "sinh", "cosh", "tanh"}
    | {"arcsin", "arccos", "arctan", "arccosh", "arcsinh", "arctanh", "abs", "arctan2"}
)
_BINARY = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.BitAnd: "&",
    ast.BitOr: "|",
}
_COMPARE = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
}


def _expr_source(node: ast.AST, names: set[str]) -> str:
    """Python source for a pandas.eval expression over numpy scalars, or Unsupported."""
    if isinstance(node, ast.Expression):
        return _expr_source(node.body, names)
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise Unsupported(f"name '{node.id}' is not a column")
        return f"v[{node.id!r}]"
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return repr(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op = _BINARY[type(node.op)]
        return f"({_expr_source(node.left, names)} {op} {_expr_source(node.right, names)})"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Invert)):
        op = {ast.USub: "-", ast.UAdd: "+", ast.Invert: "~"}[type(node.op)]
        return f"({op}{_expr_source(node.operand, names)})"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return f"(~{_expr_source(node.operand, names)})"
    if isinstance(node, ast.BoolOp):
        op = " & " if isinstance(node.op, ast.And) else " | "
        return "(" + op.join(_expr_source(v, names) for v in node.values) + ")"
    if isinstance(node, ast.Compare) and all(type(o) in _COMPARE for o in node.ops):
        parts, left = [], _expr_source(node.left, names)
        for cmp, right_node in zip(node.ops, node.comparators, strict=True):
            right = _expr_source(right_node, names)
            parts.append(f"({left} {_COMPARE[type(cmp)]} {right})")
            left = right
        return "(" + " & ".join(parts) + ")"
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        args = ", ".join(_expr_source(a, names) for a in node.args)
        return f"_np.{node.func.id}({args})"
    raise Unsupported(f"expression part {ast.dump(node)[:60]} has no one-row form")


def _derived(
    step: Any, columns: Sequence[str]
) -> tuple[Callable[[dict[str, Any]], None], list[str]]:
    import numpy as np

    names = set(columns)
    lines = []
    for name, expr in step.derived:
        try:
            tree = ast.parse(str(expr).strip(), mode="eval")
        except SyntaxError as exc:
            raise Unsupported(f"derived column '{name}': {exc.msg}") from None
        lines.append(f"    v[{name!r}] = {_expr_source(tree, names)}")
        names.add(name)
    source = "def derive(v):\n" + ("\n".join(lines) or "    pass") + "\n"
    scope: dict[str, Any] = {"_np": np}
    exec(compile(source, "<mlc derived columns>", "exec"), scope)
    fn = scope["derive"]

    def derive(values: dict[str, Any]) -> None:
        # numpy's scalar rules, as DataFrame.eval applies them: x / 0 is inf, not an error
        with np.errstate(all="ignore"):
            fn(values)

    return derive, [*columns, *[name for name, _ in step.derived if name not in columns]]


def _numpy_scalar(value: Any) -> Any:
    import numpy as np

    if value is None:
        return np.float64("nan")
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, int):
        return np.int64(value)
    if isinstance(value, float):
        return np.float64(value)
    return value


# -- column transforms ----------------------------------------------------------------------

Vector = list[Any]
Stage = Callable[[Vector], Vector]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _floats(values: Vector) -> Vector:
    return [float("nan") if v is None else float(v) for v in values]


def _generic_transform(est: Any, names: Sequence[str] | None) -> Stage:
    """The step's own `transform` on its one-row input: exact by construction."""
    import numpy as np
    import pandas as pd

    _called_as_is(est)

    def stage(values: Vector) -> Vector:
        if names is not None:
            got = est.transform(pd.DataFrame([values], columns=list(names)))
        else:
            got = est.transform(np.asarray([values], dtype=np.float64))
        return list(np.asarray(got, dtype=np.float64).ravel())

    return stage


def _stage(est: Any, names: Sequence[str] | None) -> Stage:
    """A one-row form of fitted transformer `est`; `names` are its input columns when it is
    the first of its chain (it then sees raw column values)."""
    from sklearn import preprocessing
    from sklearn.impute import SimpleImputer

    from mlc.runtime.steps import _transforms

    kind = type(est)
    if kind is preprocessing.StandardScaler:
        mean = None if est.mean_ is None or not est.with_mean else [float(m) for m in est.mean_]
        scale = None if est.scale_ is None or not est.with_std else [float(s) for s in est.scale_]

        def standard(values: Vector) -> Vector:
            out = _floats(values)
            if mean is not None:
                out = [x - m for x, m in zip(out, mean, strict=True)]
            if scale is not None:
                out = [x / s for x, s in zip(out, scale, strict=True)]
            return out

        return standard
    if kind is preprocessing.MinMaxScaler and not est.clip:
        mul, add = [float(s) for s in est.scale_], [float(m) for m in est.min_]
        return lambda values: [x * s + m for x, s, m in zip(_floats(values), mul, add, strict=True)]
    if kind is preprocessing.RobustScaler:
        center = [float(c) for c in est.center_] if est.with_centering else None
        rscale = [float(s) for s in est.scale_] if est.with_scaling else None

        def robust(values: Vector) -> Vector:
            out = _floats(values)
            if center is not None:
                out = [x - c for x, c in zip(out, center, strict=True)]
            if rscale is not None:
                out = [x / s for x, s in zip(out, rscale, strict=True)]
            return out

        return robust
    if kind is SimpleImputer and not est.add_indicator:
        import numpy as np

        stats = list(est.statistics_)
        numeric = all(isinstance(s, (int, float, np.number)) for s in stats)
        if numeric and any(float(s) != float(s) for s in stats) and not est.keep_empty_features:
            raise Unsupported("an imputer dropping an all-missing column")
        missing = est.missing_values
        if not (missing is None or (isinstance(missing, float) and missing != missing)):
            raise Unsupported(f"an imputer for missing value {missing!r}")
        return lambda values: [
            s if _is_missing(v) else v for v, s in zip(values, stats, strict=True)
        ]
    if kind is preprocessing.OneHotEncoder:
        if est.drop_idx_ is not None or getattr(est, "_infrequent_enabled", False):
            raise Unsupported("a one-hot encoder with dropped or infrequent categories")
        tables = []
        for cats in est.categories_:
            table: dict[Any, int] = {}
            nan_at = None
            for i, c in enumerate(cats):
                if _is_missing(c):
                    nan_at = i
                else:
                    table[c] = i
            tables.append((table, nan_at, len(cats)))
        strict = est.handle_unknown == "error"

        def one_hot(values: Vector) -> Vector:
            out: Vector = []
            for v, (table, nan_at, width) in zip(values, tables, strict=True):
                hot = [0.0] * width
                at = nan_at if _is_missing(v) else table.get(v)
                if at is None:
                    if strict:
                        raise ValueError(f"unknown category {v!r}")
                else:
                    hot[at] = 1.0
                out.extend(hot)
            return out

        return one_hot
    if kind is _transforms.LogTransform:
        import numpy as np

        offset = float(est.offset)

        def log(values: Vector) -> Vector:
            shifted = np.asarray(_floats(values), dtype=np.float64) + offset
            return list(np.log(np.clip(shifted, 1e-12, None)))

        return log
    if kind is _transforms.Pseudonymiser:
        import hashlib
        import hmac

        buckets = int(est.buckets)

        def pseudonym(values: Vector) -> Vector:
            key = est._current_key()
            return [
                float(
                    int.from_bytes(
                        hmac.new(key, str(v).encode(), hashlib.sha256).digest()[:8], "big"
                    )
                    % buckets
                )
                for v in values
            ]

        return pseudonym
    if kind is preprocessing.FunctionTransformer and getattr(est.func, "__name__", "") == (
        "_digitize"
    ):
        import bisect

        edges = [float(e) for e in (est.kw_args or {})["edges"]]
        if edges != sorted(edges):
            raise Unsupported("bucket edges out of order")
        return lambda values: [float(bisect.bisect_right(edges, x)) for x in _floats(values)]
    return _generic_transform(est, names)


def _chain(est: Any, names: Sequence[str]) -> Stage:
    from sklearn.pipeline import Pipeline

    if isinstance(est, str):
        if est == "passthrough":
            return _floats
        raise Unsupported(f"column entry '{est}'")
    parts = [s for _, s in est.steps] if isinstance(est, Pipeline) else [est]
    stages = [_stage(p, names if i == 0 else None) for i, p in enumerate(parts) if p is not None]

    def chained(values: Vector) -> Vector:
        for stage in stages:
            values = stage(values)
        return values

    return chained


def _columns(ct: Any, columns: Sequence[str]) -> Callable[[Mapping[str, Any]], Vector]:
    if getattr(ct, "sparse_output_", False):
        raise Unsupported("a sparse column transform")
    entries: list[tuple[list[str], Stage]] = []
    for name, est, cols in ct.transformers_:
        if isinstance(est, str) and est == "drop":
            continue
        picked = [columns[c] if isinstance(c, int) else c for c in cols]
        if not picked:
            continue
        if name == "remainder" and est == "passthrough":
            entries.append((picked, _floats))
            continue
        entries.append((picked, _chain(est, picked)))

    def apply(values: Mapping[str, Any]) -> Vector:
        out: Vector = []
        for cols, stage in entries:
            out.extend(stage([values[c] for c in cols]))
        return out

    return apply


# -- models ---------------------------------------------------------------------------------


class _Trees:
    """Every tree of a fitted HistGradientBoosting model, walked one level at a time."""

    def __init__(self, model: Any) -> None:
        import numpy as np

        if getattr(model, "_preprocessor", None) is not None or (
            model.is_categorical_ is not None and bool(np.any(model.is_categorical_))
        ):
            raise Unsupported("gradient boosting with native categorical features")
        feature, threshold, left, right, missing_left, leaf_value = [], [], [], [], [], []
        roots, klass = [], []
        depth, at = 0, 0
        for iteration in model._predictors:
            for k, predictor in enumerate(iteration):
                nodes = predictor.nodes
                n = len(nodes)
                leaf = nodes["is_leaf"].astype(bool)
                own = np.arange(at, at + n)
                feature.append(np.where(leaf, 0, nodes["feature_idx"]))
                threshold.append(nodes["num_threshold"].astype(np.float64))
                # a leaf points at itself, so walking past it stays on it
                left.append(np.where(leaf, own, nodes["left"].astype(np.int64) + at))
                right.append(np.where(leaf, own, nodes["right"].astype(np.int64) + at))
                missing_left.append(nodes["missing_go_to_left"].astype(bool))
                leaf_value.append(nodes["value"].astype(np.float64))
                roots.append(at)
                klass.append(k)
                depth = max(depth, int(nodes["depth"].max()))
                at += n
        self.feature = np.concatenate(feature).astype(np.intp)
        self.threshold = np.concatenate(threshold)
        self.left = np.concatenate(left)
        self.right = np.concatenate(right)
        self.missing_left = np.concatenate(missing_left)
        self.value = np.concatenate(leaf_value)
        self.roots = np.asarray(roots, dtype=np.int64)
        self.klass = klass
        self.depth = depth
        self.per_iteration = len(model._predictors[0]) if model._predictors else 1
        self.baseline = [float(b) for b in np.asarray(model._baseline_prediction).ravel()]

    def raw(self, x: Any) -> list[float]:
        import numpy as np

        at = self.roots
        for _ in range(self.depth):
            values = x[self.feature[at]]
            go_left = (values <= self.threshold[at]) | (np.isnan(values) & self.missing_left[at])
            at = np.where(go_left, self.left[at], self.right[at])
        # summed tree by tree in the batch path's order, so the raw score is the same float
        raw = list(self.baseline)
        for k, value in zip(self.klass, self.value[at].tolist(), strict=True):
            raw[k] += value
        return raw


def _estimator(model: Any, task: str) -> Callable[[Vector], Any]:
    """vector → probabilities (classification, a 1-D array) or the prediction (a float)."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if type(model) in (HistGradientBoostingClassifier, HistGradientBoostingRegressor):
        trees = _Trees(model)
        loss = model._loss
        if task == "classification":
            return lambda vec: loss.predict_proba(
                np.asarray([trees.raw(np.asarray(vec, dtype=np.float64))], dtype=np.float64)
            )[0]
        return lambda vec: float(
            loss.link.inverse(
                np.asarray(trees.raw(np.asarray(vec, dtype=np.float64)), dtype=np.float64)
            )[0]
        )
    names = getattr(model, "feature_names_in_", None)
    _called_as_is(model)

    def matrix(vec: Vector) -> Any:
        if names is not None:
            import pandas as pd

            return pd.DataFrame([vec], columns=list(names))
        return np.asarray([vec], dtype=np.float64)

    if task == "classification":
        return lambda vec: np.asarray(model.predict_proba(matrix(vec)), dtype=np.float64)[0]
    return lambda vec: float(np.asarray(model.predict(matrix(vec)), dtype=np.float64).ravel()[0])


def _pipeline(model: Any, columns: Sequence[str], task: str) -> Callable[[Row], Any]:
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_selection import SelectorMixin
    from sklearn.pipeline import Pipeline

    from mlc.runtime.steps._transforms import DerivedFeatures

    steps: list[Any] = []

    def flatten(est: Any) -> None:
        if isinstance(est, Pipeline):
            for _, s in est.steps:
                if s is not None and s != "passthrough":
                    flatten(s)
        else:
            steps.append(est)

    flatten(model)
    *transforms, final = steps
    names = list(columns)
    derive: Callable[[dict[str, Any]], None] | None = None
    to_vector: Callable[[Mapping[str, Any]], Vector] | None = None
    picks: list[list[int]] = []
    for i, step in enumerate(transforms):
        if isinstance(step, DerivedFeatures) and i == 0:
            derive, names = _derived(step, names)
        elif isinstance(step, ColumnTransformer) and to_vector is None:
            to_vector = _columns(step, names)
        elif isinstance(step, SelectorMixin) and to_vector is not None:
            picks.append([int(j) for j in step.get_support(indices=True)])
        else:
            raise Unsupported(f"a {type(step).__name__} step in the pipeline")
    if to_vector is None:
        raise Unsupported("a pipeline without a column transform")
    vector_fn = to_vector
    score = _estimator(final, task)

    def run(row: Row) -> Any:
        values = {c: _numpy_scalar(row[c]) for c in columns} if derive else row
        if derive is not None:
            assert isinstance(values, dict)
            derive(values)
        vec = vector_fn(values)
        for pick in picks:
            vec = [vec[j] for j in pick]
        return score(vec)

    return run


def _threshold_rule(model: Any, columns: Sequence[str]) -> Callable[[Row], Any]:
    """fairlearn's `_pmf_predict` for one row: the group's interpolated thresholds applied to
    the base pipeline's positive-class probability."""
    import numpy as np

    # ThresholdOptimizer predicts through its fitted InterpolatedThresholder
    mitigator = getattr(model.mitigator, "interpolated_thresholder_", model.mitigator)
    method = getattr(mitigator, "_predict_method", None) or getattr(
        mitigator, "predict_method", "auto"
    )
    base_model = mitigator.estimator_
    if method not in ("auto", "predict_proba") or not hasattr(base_model, "predict_proba"):
        raise Unsupported(f"a threshold rule over '{method}' scores")
    base = _pipeline(base_model, columns, "classification")
    rules = mitigator.interpolation_dict
    sensitive = list(model.sensitive)
    if len(sensitive) > 1:
        from fairlearn.utils._input_validation import _merge_columns

        def group(row: Row) -> Any:
            merged = _merge_columns(np.asarray([[row[c] for c in sensitive]], dtype=object))
            return merged[0]
    else:
        only = sensitive[0]

        def group(row: Row) -> Any:
            return row[only]

    def run(row: Row) -> Any:
        score = np.asarray([base(row)[1]], dtype=np.float64)
        positive = 0.0
        rule = rules.get(group(row))
        if rule is not None:
            got = rule.p0 * rule.operation0(score) + rule.p1 * rule.operation1(score)
            if "p_ignore" in rule:
                got = rule.p_ignore * rule.prediction_constant + (1 - rule.p_ignore) * got
            positive = float(got[0])
        return np.asarray([1.0 - positive, positive], dtype=np.float64)

    return run


def compile_row(model: Any, columns: Sequence[str], task: str) -> RowScorer:
    """A one-row scorer for fitted `model` over input `columns`, or `Unsupported`.

    The scorer takes a mapping of every input column to its value (numbers, texts, None for
    missing) and returns the class probabilities (classification) or the prediction."""
    called: list[str] = []
    token = _CALLED.set(called)
    try:
        return RowScorer(_compile(model, columns, task), called)
    finally:
        _CALLED.reset(token)


def _compile(model: Any, columns: Sequence[str], task: str) -> Callable[[Row], Any]:
    from sklearn.pipeline import Pipeline

    # by name: a model loaded where mlc is not installed ships only the modules it names
    kind = type(model)
    if (kind.__module__, kind.__name__) == ("mlc.runtime.steps.fairness", "MitigatedModel"):
        if model.mitigator is None:
            raise Unsupported("a reduction's weighted predictors")
        return _threshold_rule(model, columns)
    if isinstance(model, Pipeline):
        return _pipeline(model, columns, task)
    raise Unsupported(f"a {type(model).__name__} model")


def answer(model: Any, X: Any, task: str) -> Any:
    """`model`'s answer for one-row frame `X` through its compiled row path (probabilities as a
    1 x k array, or a one-value prediction array), or None where the batch path must answer:
    not one row, a model without a row form, or a row the compiled path fails on."""
    import numpy as np
    import pandas as pd

    if not isinstance(X, pd.DataFrame) or len(X) != 1:
        return None
    cache = model.__dict__.setdefault("_mlc_rows", {})
    columns = tuple(str(c) for c in X.columns)
    fn = cache.get((columns, task), False)
    if fn is False:
        try:
            fn = compile_row(model, columns, task)
        except Exception:  # Unsupported, or a part this environment cannot import
            fn = None
        cache[(columns, task)] = fn
    if fn is None:
        return None
    values = X.iloc[0].tolist()
    row = {
        c: None if v is pd.NA or v is pd.NaT else v for c, v in zip(columns, values, strict=True)
    }
    try:
        got = fn(row)
    except Exception:  # the batch path answers, or raises what it raises
        return None
    return np.asarray([got], dtype=np.float64)


def without_cache(state: dict[str, Any]) -> dict[str, Any]:
    """A model's pickled state without its compiled row scorers (closures, rebuilt on use)."""
    state = dict(state)
    state.pop("_mlc_rows", None)
    return state
