"""Drift, performance and active-learning maths of the feedback loop (numpy, scipy, pandas).

Used by the `monitor` and `retrain_trigger` steps and by `mlc monitor`. Heavy libraries load
inside the functions, so importing this module costs nothing.

Drift scores, all "higher = more drift", compared with the spec's `drift.threshold`:

- `psi`: population stability index over 10 quantile bins of the reference (categories for a
  categorical column), each share smoothed with `EPSILON` so an empty bin stays finite.
- `ks`: the two-sample Kolmogorov-Smirnov statistic (`scipy.stats.ks_2samp`).
- `wasserstein`: earth mover's distance divided by the reference's standard deviation, so one
  threshold fits features of any unit.
- `chi2`: Cramér's V of the reference-vs-current contingency table (0 = same shares, 1 =
  disjoint), with the chi-squared p-value alongside; numeric columns are binned as for PSI.

`ks` and `wasserstein` need numbers: on a categorical column they fall back to `chi2` and the
result says which method scored it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from mlc.runtime.metrics_contract import (
    FEATURE_DRIFT_SCORE,
    LABEL_FEATURE,
    LABEL_METRIC,
    LABEL_MODEL,
    MODEL_PERFORMANCE,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

METHODS = ("psi", "ks", "chi2", "wasserstein")
STRATEGIES = ("uncertainty", "margin", "entropy", "random")
EPSILON = 1e-4
"""Smoothing added to every bin share before the PSI logarithm."""
BINS = 10


def _is_numeric(series: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def _edges(reference: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (duplicates merged for discrete data)."""
    import numpy as np

    qs = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(qs)


def _binned_counts(
    reference: pd.Series, current: pd.Series, numeric: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Counts per bin (numeric: reference quantile bins; else: categories) for both samples."""
    import numpy as np

    ref = reference.dropna()
    cur = current.dropna()
    if numeric:
        r = ref.to_numpy(dtype=float)
        c = cur.to_numpy(dtype=float)
        edges = _edges(r)
        n = len(edges) + 1
        return (
            np.bincount(np.searchsorted(edges, r, side="right"), minlength=n),
            np.bincount(np.searchsorted(edges, c, side="right"), minlength=n),
        )
    cats = sorted(set(map(str, ref)) | set(map(str, cur)))
    rc = ref.astype(str).value_counts()
    cc = cur.astype(str).value_counts()
    return (
        np.asarray([int(rc.get(k, 0)) for k in cats]),
        np.asarray([int(cc.get(k, 0)) for k in cats]),
    )


def psi(reference: pd.Series, current: pd.Series) -> float:
    """Population stability index of `current` against `reference` (0 = same distribution)."""
    import numpy as np

    rc, cc = _binned_counts(reference, current, _is_numeric(reference))
    if rc.sum() == 0 or cc.sum() == 0:
        return float("nan")
    p = rc / rc.sum() + EPSILON
    q = cc / cc.sum() + EPSILON
    return float(np.sum((q - p) * np.log(q / p)))


def ks(reference: pd.Series, current: pd.Series) -> float:
    """The Kolmogorov-Smirnov statistic of the two samples."""
    from scipy import stats

    r, c = reference.dropna().to_numpy(dtype=float), current.dropna().to_numpy(dtype=float)
    if not len(r) or not len(c):
        return float("nan")
    return float(stats.ks_2samp(r, c).statistic)


def wasserstein(reference: pd.Series, current: pd.Series) -> float:
    """Wasserstein distance in units of the reference's standard deviation."""
    import numpy as np
    from scipy import stats

    r, c = reference.dropna().to_numpy(dtype=float), current.dropna().to_numpy(dtype=float)
    if not len(r) or not len(c):
        return float("nan")
    scale = float(np.std(r)) or 1.0
    return float(stats.wasserstein_distance(r, c) / scale)


def chi2(reference: pd.Series, current: pd.Series) -> tuple[float, float]:
    """Cramér's V and the chi-squared p-value of reference vs current shares."""
    import numpy as np
    from scipy import stats

    rc, cc = _binned_counts(reference, current, _is_numeric(reference))
    keep = (rc + cc) > 0
    table = np.vstack([rc[keep], cc[keep]])
    if table.shape[1] < 2 or table[0].sum() == 0 or table[1].sum() == 0:
        return 0.0, 1.0
    stat, pvalue, _, _ = stats.chi2_contingency(table, correction=False)
    return float(np.sqrt(stat / table.sum())), float(pvalue)


def add_derived(frame: pd.DataFrame, model: Any) -> pd.DataFrame:
    """`frame` plus the model's derived columns (`features.derived`), when a model is given."""
    from mlc.runtime.steps._data import _walk
    from mlc.runtime.steps._transforms import DerivedFeatures

    if model is None:
        return frame
    for part in _walk(model):
        if isinstance(part, DerivedFeatures) and part.derived:
            try:
                return part.transform(frame)
            except Exception:  # a missing input column: drift reports the feature as missing
                return frame
    return frame


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    method: str,
    threshold: float,
) -> list[dict[str, Any]]:
    """Drift of each feature: `{feature, method, score, threshold, drifted, ...}`.

    A feature missing from either frame gets `score: None`, `drifted: False` and `missing`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown drift method '{method}' (known: {', '.join(METHODS)})")
    results = []
    for name in features:
        row: dict[str, Any] = {"feature": name, "threshold": threshold}
        absent = [
            side
            for side, df in (("reference", reference), ("current", current))
            if name not in df.columns
        ]
        if absent:
            row.update(method=method, score=None, drifted=False, missing=absent)
            results.append(row)
            continue
        ref, cur = reference[name], current[name]
        numeric = _is_numeric(ref) and _is_numeric(cur)
        used = method if numeric or method in ("psi", "chi2") else "chi2"
        if used == "psi":
            score = psi(ref, cur)
        elif used == "ks":
            score = ks(ref, cur)
        elif used == "wasserstein":
            score = wasserstein(ref, cur)
        else:
            score, pvalue = chi2(ref, cur)
            row["p_value"] = pvalue
        row.update(
            method=used,
            score=score,
            drifted=bool(score == score and score > threshold),  # NaN never drifts
            kind="numeric" if numeric else "categorical",
            reference_mean=float(ref.mean()) if numeric else None,
            current_mean=float(cur.mean()) if numeric else None,
        )
        results.append(row)
    return results


def performance(model: Any, frame: pd.DataFrame, target: str, metric: str, task: str) -> float:
    """`metric` of `model` on the labelled rows of `frame` (rows without a label are dropped)."""
    from mlc.runtime.steps._metrics import evaluate

    labelled = frame[frame[target].notna()]
    if labelled.empty:
        raise ValueError(f"no labelled rows (column '{target}' is empty)")
    x, y = labelled.drop(columns=[target]), labelled[target]
    return float(evaluate([metric], task, model, x, y, "monitor")[metric])


def uncertainty_scores(proba: np.ndarray, strategy: str) -> np.ndarray:
    """Per-row uncertainty (higher = label it first) from class probabilities."""
    import numpy as np

    p = np.asarray(proba, dtype=float)
    if strategy == "uncertainty":
        return np.asarray(1.0 - p.max(axis=1))
    if strategy == "margin":
        top = np.sort(p, axis=1)
        second = top[:, -2] if p.shape[1] > 1 else np.zeros(len(p))
        return np.asarray(1.0 - (top[:, -1] - second))
    if strategy == "entropy":
        clipped = np.clip(p, 1e-12, 1.0)
        return np.asarray(-(clipped * np.log(clipped)).sum(axis=1))
    raise ValueError(f"unknown active-learning strategy '{strategy}'")


def select_for_labelling(
    model: Any, frame: pd.DataFrame, strategy: str, batch_size: int, seed: int = 0
) -> list[tuple[int, float]]:
    """Row positions of `frame` to label next, most informative first, with their scores.

    `random` (or a model without `predict_proba`) draws a seeded sample; the other strategies
    rank by `uncertainty_scores`, ties broken by row position.
    """
    import numpy as np

    if strategy not in STRATEGIES:
        raise ValueError(f"unknown active-learning strategy '{strategy}'")
    n = min(int(batch_size), len(frame))
    if n <= 0:
        return []
    if strategy == "random" or model is None or not hasattr(model, "predict_proba"):
        rng = np.random.default_rng(seed)
        picks = sorted(rng.choice(len(frame), size=n, replace=False).tolist())
        return [(int(i), 0.0) for i in picks]
    scores = uncertainty_scores(model.predict_proba(frame), strategy)
    order = np.lexsort((np.arange(len(scores)), -scores))[:n]
    return [(int(i), float(scores[i])) for i in order]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(
    model_name: str,
    drift: Iterable[dict[str, Any]],
    performance_values: dict[str, float] | None = None,
) -> str:
    """Prometheus text exposition (node-exporter textfile format) of drift and performance."""
    lines = [
        f"# HELP {FEATURE_DRIFT_SCORE} Drift score of a feature against the reference.",
        f"# TYPE {FEATURE_DRIFT_SCORE} gauge",
    ]
    model = _label(model_name)
    for row in sorted(drift, key=lambda r: str(r["feature"])):
        score = row.get("score")
        if score is None or score != score:
            continue
        lines.append(
            f'{FEATURE_DRIFT_SCORE}{{{LABEL_FEATURE}="{_label(str(row["feature"]))}",'
            f'{LABEL_MODEL}="{model}"}} {float(score):.6g}'
        )
    if performance_values:
        lines += [
            f"# HELP {MODEL_PERFORMANCE} Metric on labelled production data.",
            f"# TYPE {MODEL_PERFORMANCE} gauge",
        ]
        for metric, value in sorted(performance_values.items()):
            lines.append(
                f'{MODEL_PERFORMANCE}{{{LABEL_METRIC}="{_label(metric)}",'
                f'{LABEL_MODEL}="{model}"}} {float(value):.6g}'
            )
    return "\n".join(lines) + "\n"


__all__ = [
    "METHODS",
    "STRATEGIES",
    "add_derived",
    "chi2",
    "feature_drift",
    "ks",
    "performance",
    "prometheus_text",
    "psi",
    "select_for_labelling",
    "uncertainty_scores",
    "wasserstein",
]
