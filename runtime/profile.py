"""The reference profile: what drift needs of the training data, stored with the model version.

`register` computes it from the train split and logs it on the version's MLflow run as
`reference/profile.json` (and keeps `profile.json` in its local `model_version` artifact), so
`mlc monitor` reads only the current window, never the training data again.

Per feature: numeric columns keep the inner quantile bin edges and the exact counts per bin
(the bins `runtime.drift` uses for PSI and chi²), `QUANTILES + 1` reference quantiles (for KS
and Wasserstein), mean and standard deviation; categorical columns keep the exact count of each
category. Both keep the row count and the missing count. The model's predictions on the train
split are profiled the same way (class counts for a classifier, a numeric profile for a
regressor).

Scores from a profile:

- `psi`, `chi2` and `jensen_shannon` are computed from the same bin counts as from the raw
  reference (the edges are stored exactly), so they are the same numbers.
- `ks` and `wasserstein` are approximations: the reference's distribution is known only at its
  quantiles at levels i/m (m = `QUANTILES`), read as piecewise linear in between. The KS
  statistic is off by at most 1/m + 1/n_ref (the reference CDF is known to within one level
  step); the Wasserstein distance by at most (max - min) / m of the reference, plus the
  quantile-interpolation error of order (max - min) / n_ref, in reference-sd units. Each
  approximate row says so in its `approximation` field.

The file is deterministic: keys sorted, no whitespace, floats as Python writes them (exactly
round-tripped) except mean and standard deviation, rounded to 12 significant digits because their
last bits depend on summation order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

SCHEMA_VERSION = 1
KIND = "mlc.reference_profile"
QUANTILES = 100
"""Reference quantile intervals kept per numeric feature (the KS/Wasserstein resolution)."""
FILE = "profile.json"
"""Name of the profile in the register step's `model_version` artifact."""
MLFLOW_PATH = "reference/profile.json"
"""Where the profile lies among the artifacts of the version's MLflow run."""
PREDICTION = "__prediction__"
"""Feature name under which prediction drift is reported."""


class ProfileError(ValueError):
    """A profile that cannot be used: unreadable, another schema version, or malformed."""


def _round(value: float) -> float | None:
    return None if value != value else float(f"{value:.12g}")


def numeric_entry(values: np.ndarray, bins: int, quantiles: int = QUANTILES) -> dict[str, Any]:
    """The profile of one numeric column (NaN counted as missing)."""
    import numpy as np

    from mlc.runtime.drift import _edges

    values = np.asarray(values, dtype=float)
    missing = np.isnan(values)
    finite = values[~missing]
    entry: dict[str, Any] = {
        "kind": "numeric",
        "n": len(finite),
        "missing": int(missing.sum()),
    }
    if not len(finite):
        return {**entry, "edges": [], "counts": [0], "quantiles": [], "mean": None, "std": None}
    edges = _edges(finite, bins)
    counts = bin_counts(edges, finite)
    qs = np.quantile(finite, np.linspace(0.0, 1.0, quantiles + 1))
    return {
        **entry,
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
        "quantiles": [float(q) for q in qs],
        "mean": _round(float(finite.mean())),
        "std": _round(float(finite.std())),
    }


def categorical_entry(series: pd.Series) -> dict[str, Any]:
    """The profile of one categorical column: the count of each category (as text)."""
    present = series.dropna()
    counts = present.astype(str).value_counts()
    return {
        "kind": "categorical",
        "n": len(present),
        "missing": int(len(series) - len(present)),
        "counts": {str(k): int(v) for k, v in counts.items()},
    }


def entry_of(series: pd.Series, bins: int, quantiles: int = QUANTILES) -> dict[str, Any]:
    """The numeric or categorical profile of `series`, as `runtime.drift` tells them apart."""
    from mlc.runtime.drift import _is_numeric

    if _is_numeric(series):
        return numeric_entry(series.to_numpy(dtype=float, na_value=float("nan")), bins, quantiles)
    return categorical_entry(series)


def build(
    frame: pd.DataFrame,
    *,
    target: str | None = None,
    predictions: Sequence[Any] | np.ndarray | None = None,
    task: str | None = None,
    bins: int | None = None,
    quantiles: int = QUANTILES,
) -> dict[str, Any]:
    """The profile of every column of `frame` but `target`, and of `predictions` when given
    (class counts for a classification `task`, else a numeric profile)."""
    import pandas as pd

    from mlc.runtime.drift import BINS

    bins = bins or BINS
    features = {
        str(name): entry_of(frame[name], bins, quantiles)
        for name in frame.columns
        if name != target
    }
    prediction = None
    if predictions is not None:
        pred = pd.Series(list(predictions) if not hasattr(predictions, "dtype") else predictions)
        if task == "classification":
            prediction = categorical_entry(pred)
        else:
            prediction = entry_of(pred, bins, quantiles)
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "rows": len(frame),
        "bins": bins,
        "quantile_intervals": quantiles,
        "target": target,
        "task": task,
        "features": features,
        "prediction": prediction,
    }


def dumps(profile: dict[str, Any]) -> str:
    """The profile's canonical JSON text (same profile, same bytes)."""
    return json.dumps(profile, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"


def loads(text: str | bytes, where: str = "profile") -> dict[str, Any]:
    """A profile read back, checked for its schema version and shape.

    Raises:
        ProfileError: not JSON, another kind or schema version, or entries without counts.
    """
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ProfileError(f"{where} is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise ProfileError(f"{where} is not an mlc reference profile")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ProfileError(
            f"{where} has schema version {doc.get('schema_version')!r}; this mlc reads "
            f"version {SCHEMA_VERSION}: register the model again to profile it anew"
        )
    entries = dict(doc.get("features") or {})
    if doc.get("prediction") is not None:
        entries[PREDICTION] = doc["prediction"]
    for name, entry in entries.items():
        if not isinstance(entry, dict) or entry.get("kind") not in ("numeric", "categorical"):
            raise ProfileError(f"{where}: feature '{name}' has no numeric or categorical entry")
        counts = entry.get("counts")
        if entry["kind"] == "numeric" and (
            not isinstance(counts, list) or len(counts) != len(entry.get("edges") or []) + 1
        ):
            raise ProfileError(f"{where}: feature '{name}' has counts that do not fit its edges")
        if entry["kind"] == "categorical" and not isinstance(counts, dict):
            raise ProfileError(f"{where}: feature '{name}' has no category counts")
    return doc


def read(path: str) -> dict[str, Any]:
    """The profile in file `path` (`loads`' checks)."""
    from pathlib import Path

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc}") from exc
    return loads(text, str(path))


def for_step(
    inputs: dict[str, str], target: str | None, task: str | None, model: Any, step: str
) -> str | None:
    """The profile text of a step's `reference` input (the train split) with the model's
    derived features and predictions; None when the step has no such input."""
    from mlc.runtime import artifacts
    from mlc.runtime.context import StepError
    from mlc.runtime.drift import add_derived
    from mlc.runtime.steps._data import load_frame

    if "reference" not in inputs or not artifacts.exists(inputs["reference"]):
        return None
    reference = load_frame(inputs, "reference", step)
    predictions = None
    if model is not None and hasattr(model, "predict"):
        x = reference.drop(columns=[target]) if target in reference.columns else reference
        try:
            predictions = model.predict(x)
        except Exception as exc:  # the model's own failure: profile without predictions
            raise StepError(
                step,
                f"the model cannot score its own train split for the reference profile: {exc}",
                "check the model's features against the train split",
            ) from exc
    frame = add_derived(reference, model)
    return dumps(build(frame, target=target, predictions=predictions, task=task))


# -- scores from a profile ----------------------------------------------------------------------


def bin_counts(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Counts of (NaN-free) `values` per bin of the sorted inner `edges`: bin i holds the values
    with exactly i edges at or below them (`searchsorted(edges, values, "right")`'s bins)."""
    import numpy as np

    if len(edges) > 32:
        return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    # a few comparisons beat a binary search per value (8x for 10 bins): bin i is the values at
    # or above edge i-1 less those at or above edge i
    at_least = [len(values), *(int(np.count_nonzero(values >= e)) for e in edges), 0]
    tail = np.asarray(at_least, dtype=np.int64)
    return np.asarray(tail[:-1] - tail[1:])


def binned_counts(entry: dict[str, Any], values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Reference and current counts over the entry's bins (numeric: its edges; categorical:
    the union of both samples' categories, sorted) — the same bins `runtime.drift` builds from
    a raw reference."""
    import numpy as np
    import pandas as pd

    if entry["kind"] == "numeric":
        edges = np.asarray(entry["edges"], dtype=float)
        cur = np.asarray(values, dtype=float)
        nan = np.isnan(cur)
        if nan.any():
            cur = cur[~nan]
        return np.asarray(entry["counts"], dtype=np.int64), bin_counts(edges, cur)
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    cur_counts = series.dropna().astype(str).value_counts()
    ref_counts: dict[str, int] = entry["counts"]
    cats = sorted(set(ref_counts) | {str(k) for k in cur_counts.index})
    return (
        np.asarray([int(ref_counts.get(k, 0)) for k in cats], dtype=np.int64),
        np.asarray([int(cur_counts.get(k, 0)) for k in cats], dtype=np.int64),
    )


def ks_approx(entry: dict[str, Any], values: np.ndarray) -> float:
    """KS statistic of `values` against the entry's quantiles (see the module's bound)."""
    import numpy as np

    qs = np.asarray(entry["quantiles"], dtype=float)
    cur = np.sort(np.asarray(values, dtype=float))
    cur = cur[~np.isnan(cur)]
    n = len(cur)
    if not len(qs) or not n:
        return float("nan")
    levels = np.linspace(0.0, 1.0, len(qs))
    ref_at_cur = np.interp(cur, qs, levels)
    steps = np.arange(1, n + 1) / n
    # sup |F_cur - F_ref| of a step function against a piecewise linear one: at the jumps
    # (both sides) and at the knots
    d = max(
        float(np.max(np.abs(steps - ref_at_cur))),
        float(np.max(np.abs(steps - 1.0 / n - ref_at_cur))),
        float(np.max(np.abs(np.searchsorted(cur, qs, side="right") / n - levels))),
    )
    return d


def wasserstein_approx(entry: dict[str, Any], values: np.ndarray) -> float:
    """Wasserstein distance of `values` to the entry's quantile function, in reference sds."""
    import numpy as np

    qs = np.asarray(entry["quantiles"], dtype=float)
    cur = np.sort(np.asarray(values, dtype=float))
    cur = cur[~np.isnan(cur)]
    n = len(cur)
    if not len(qs) or not n:
        return float("nan")
    levels = np.linspace(0.0, 1.0, len(qs))
    # W1 = integral over u of |Q_cur(u) - Q_ref(u)|: midpoints of the current's n cells
    ref_q = np.interp((np.arange(n) + 0.5) / n, levels, qs)
    scale = float(entry.get("std") or 0.0) or 1.0
    return float(np.mean(np.abs(cur - ref_q)) / scale)


def approximation_bound(entry: dict[str, Any], method: str) -> float | None:
    """The documented error bound of an approximate score (None: the score is exact)."""
    m = max(len(entry.get("quantiles") or []) - 1, 1)
    n = max(int(entry.get("n") or 0), 1)
    if method == "ks":
        return 1.0 / m + 1.0 / n
    if method == "wasserstein":
        qs = entry.get("quantiles") or [0.0]
        spread = float(qs[-1]) - float(qs[0])
        scale = float(entry.get("std") or 0.0) or 1.0
        return spread * (1.0 / m + 1.0 / n) / scale
    return None


__all__ = [
    "FILE",
    "KIND",
    "MLFLOW_PATH",
    "PREDICTION",
    "QUANTILES",
    "SCHEMA_VERSION",
    "ProfileError",
    "approximation_bound",
    "bin_counts",
    "binned_counts",
    "build",
    "categorical_entry",
    "dumps",
    "entry_of",
    "for_step",
    "ks_approx",
    "loads",
    "numeric_entry",
    "read",
    "wasserstein_approx",
]
