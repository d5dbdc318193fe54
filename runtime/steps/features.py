"""features: build and fit the feature transform on the train split.

The transform is one scikit-learn `Pipeline`: derived columns (`DataFrame.eval`), then a
`ColumnTransformer` whose entries chain each column's transforms in spec order (impute then
scale, for example), then optional selection (variance / k-best). Included columns that no
transform touches pass through unchanged; PII columns never pass raw: they are either
pseudonymised (keyed hash) or dropped.
"""

from __future__ import annotations

from typing import Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps._data import (
    bind_secrets,
    import_entry,
    load_frame,
    out,
    resolve_secret,
    split_xy,
)

STEP = "features"


def _op(t: dict[str, Any], ctx: StepContext) -> Any:
    from sklearn import preprocessing
    from sklearn.impute import SimpleImputer

    from mlc.runtime.steps import _transforms

    op = t["op"]
    if op == "scale":
        cls = {
            "standard": preprocessing.StandardScaler,
            "minmax": preprocessing.MinMaxScaler,
            "robust": preprocessing.RobustScaler,
        }[t.get("method", "standard")]
        return cls()
    if op == "one_hot":
        return preprocessing.OneHotEncoder(
            handle_unknown=t.get("handle_unknown", "ignore"),
            max_categories=t.get("max_categories"),
            sparse_output=False,
        )
    if op == "bucketize":
        bins = t.get("bins", 5)
        if isinstance(bins, int):
            return preprocessing.KBinsDiscretizer(
                n_bins=bins,
                encode="ordinal",
                strategy="quantile",
                quantile_method="averaged_inverted_cdf",
            )
        edges = [float(b) for b in bins]
        return preprocessing.FunctionTransformer(
            _digitize, kw_args={"edges": edges}, feature_names_out="one-to-one"
        )
    if op == "log":
        return _transforms.LogTransform(offset=float(t.get("offset", 1.0)))
    if op == "impute":
        return SimpleImputer(strategy=t.get("strategy", "median"), fill_value=t.get("fill_value"))
    if op == "pseudonymise":
        p = _transforms.Pseudonymiser(key_ref=t["key"], buckets=int(t.get("buckets", 2**20)))
        p.bind_key(resolve_secret(t["key"], ctx.secrets, STEP))
        return p
    if op == "custom":
        import_entry(t["function"], STEP, "custom transform")
        return _transforms.CustomTransform(function=t["function"])
    raise StepError(STEP, f"unknown transform op '{op}'")


def _digitize(X: Any, edges: list[float]) -> Any:
    import numpy as np

    return np.digitize(np.asarray(X, dtype=np.float64), edges).astype(np.float64)


def build_transform(
    params: dict[str, Any], columns: list[str], ctx: StepContext, task: str | None = None
) -> Any:
    """The unfitted transform `Pipeline` for frame `columns` (features only, no target)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_selection import (
        SelectKBest,
        VarianceThreshold,
        f_classif,
        f_regression,
    )
    from sklearn.pipeline import Pipeline

    from mlc.runtime.steps._transforms import DerivedFeatures

    # A derived target is computed by the split and is never a feature (nor computed at serving).
    derived = tuple(
        (d["name"], d["expr"])
        for d in params.get("derived") or ()
        if d["name"] != params.get("target")
    )
    available = list(columns) + [name for name, _ in derived]
    selection = params.get("selection") or {}
    include = selection.get("include")
    chosen = [
        c
        for c in available
        if (include is None or c in include) and c not in set(selection.get("exclude") or ())
    ]
    transforms = params.get("transforms") or []
    chains: dict[str, list[int]] = {c: [] for c in chosen}
    for i, t in enumerate(transforms):
        for col in t["columns"]:
            if col not in available:
                raise StepError(
                    STEP,
                    f"transform {i} ({t['op']}) names column '{col}', which is not in the data",
                    "columns: " + ", ".join(available),
                )
            if col in chains:
                chains[col].append(i)
    pii = set(params.get("pii") or ())
    groups: dict[tuple[int, ...], list[str]] = {}
    for col in chosen:
        chain = tuple(chains[col])
        if col in pii and not any(transforms[i]["op"] == "pseudonymise" for i in chain):
            ctx.logger.warning("step 'features': PII column '%s' dropped (not pseudonymised)", col)
            continue
        groups.setdefault(chain, []).append(col)
    entries = []
    for chain, cols in groups.items():
        name = "passthrough" if not chain else "+".join(f"{transforms[i]['op']}{i}" for i in chain)
        est: Any = (
            "passthrough"
            if not chain
            else Pipeline([(f"{transforms[i]['op']}{i}", _op(transforms[i], ctx)) for i in chain])
        )
        entries.append((name, est, cols))
    if not entries:
        raise StepError(
            STEP,
            "no feature columns are left after selection",
            "check features.selection.include/exclude",
        )
    steps: list[tuple[str, Any]] = [
        ("derive", DerivedFeatures(derived)),
        ("columns", ColumnTransformer(entries, remainder="drop", verbose_feature_names_out=False)),
    ]
    method = selection.get("method", "none")
    if method == "variance":
        steps.append(("select", VarianceThreshold()))
    elif method == "k_best":
        score = f_regression if task == "regression" else f_classif
        steps.append(("select", SelectKBest(score, k=int(selection.get("k") or 10))))
    return Pipeline(steps)


def infer_task(params: dict[str, Any], y: Any) -> str:
    """`params["task"]` when given, else classification for discrete targets."""
    if params.get("task"):
        return str(params["task"])
    dtype = (params.get("dtypes") or {}).get(params.get("target"))
    if dtype in ("category", "bool", "str"):
        return "classification"
    if dtype == "float":
        return "regression"
    return "classification" if y.nunique() <= 20 else "regression"


def run(
    params: dict[str, Any], inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Fit the transform on `train` only and save it as the `transform` artifact."""
    train = load_frame(inputs, "train", STEP)
    x, y = split_xy(train, params["target"], STEP)
    task = infer_task(params, y)
    transform = build_transform(params, list(map(str, x.columns)), ctx, task)
    try:
        matrix = transform.fit_transform(x, y)
    except StepError:
        raise
    except Exception as exc:  # a user transform or expression can raise anything
        raise StepError(
            STEP, f"fitting the feature transform failed: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        names = [str(n) for n in transform.get_feature_names_out()]
    except (AttributeError, ValueError):
        names = [f"f{i}" for i in range(matrix.shape[1])]
    bind_secrets(transform, ctx)
    digest = artifacts.save_object(
        out(outputs, "transform", STEP), transform, "transform", features=names, task=task
    )
    return {"features_in": x.shape[1], "features_out": len(names), "hash": digest}
