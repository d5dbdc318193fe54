"""features: build and fit the feature transform on the train split.

The transform is one scikit-learn `Pipeline`: derived columns (`DataFrame.eval`), then a
`ColumnTransformer` whose entries chain each column's transforms in spec order (impute then
scale, for example), then optional selection (variance / k-best). Included columns that no
transform touches pass through unchanged; PII columns never pass raw: they are either
pseudonymised (keyed hash) or dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from mlc.compiler.ir.params import FeaturesParams, TransformParams

STEP = "features"


def _op(t: TransformParams, ctx: StepContext) -> Any:
    from sklearn import preprocessing
    from sklearn.impute import SimpleImputer

    from mlc.runtime.steps import _transforms

    # Each branch compares `t["op"]` itself so that mypy narrows `t` to that transform's params.
    if t["op"] == "scale":
        cls = {
            "standard": preprocessing.StandardScaler,
            "minmax": preprocessing.MinMaxScaler,
            "robust": preprocessing.RobustScaler,
        }[t["method"]]
        return cls()
    if t["op"] == "one_hot":
        return preprocessing.OneHotEncoder(
            handle_unknown=t["handle_unknown"],
            max_categories=t["max_categories"],
            sparse_output=False,
        )
    if t["op"] == "bucketize":
        bins = t["bins"]
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
    if t["op"] == "log":
        return _transforms.LogTransform(offset=float(t["offset"]))
    if t["op"] == "impute":
        return SimpleImputer(strategy=t["strategy"], fill_value=t["fill_value"])
    if t["op"] == "pseudonymise":
        p = _transforms.Pseudonymiser(key_ref=t["key"], buckets=t["buckets"])
        p.bind_key(resolve_secret(t["key"], ctx.secrets, STEP))
        return p
    if t["op"] == "custom":
        import_entry(t["function"], STEP, "custom transform")
        return _transforms.CustomTransform(function=t["function"])
    raise StepError(STEP, f"unknown transform op '{t['op']}'")


def _digitize(X: Any, edges: list[float]) -> Any:
    import numpy as np

    return np.digitize(np.asarray(X, dtype=np.float64), edges).astype(np.float64)


def build_transform(params: FeaturesParams, columns: list[str], ctx: StepContext) -> Any:
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
        (d["name"], d["expr"]) for d in params["derived"] if d["name"] != params["target"]
    )
    available = list(columns) + [name for name, _ in derived]
    selection = params["selection"]
    include = selection["include"]
    chosen = [
        c
        for c in available
        if (include is None or c in include) and c not in set(selection["exclude"])
    ]
    transforms = params["transforms"]
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
    pii = set(params["pii"])
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
    method = selection["method"]
    if method == "variance":
        steps.append(("select", VarianceThreshold()))
    elif method == "k_best":
        k = selection["k"]
        if k is None:
            raise StepError(STEP, "selection method 'k_best' needs 'k'", "set features.selection.k")
        score = f_regression if params["task"] == "regression" else f_classif
        steps.append(("select", SelectKBest(score, k=k)))
    return Pipeline(steps)


def run(
    params: FeaturesParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Fit the transform on `train` only and save it as the `transform` artifact."""
    if params.get("engine") == "spark":
        from mlc.runtime.spark import features as spark_features

        return spark_features.run(params, inputs, outputs, ctx)
    train = load_frame(inputs, "train", STEP)
    x, y = split_xy(train, params["target"], STEP)
    task = params["task"]
    transform = build_transform(params, list(map(str, x.columns)), ctx)
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
