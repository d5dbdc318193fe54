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
- `jensen_shannon`: the Jensen-Shannon distance (base 2: 0 = same shares, 1 = disjoint) of the
  binned shares, binned as for PSI.

The test is chosen per feature type: `numeric` (default `method`) scores numeric columns,
`categorical` (default `method` when it can score categories, else `chi2`) the others. `ks` and
`wasserstein` need numbers: asked for on a categorical column they fall back to `chi2`. Each
result says which test scored it and why (`method`, `why`).

`profile_drift` scores the current data against a stored reference profile
(`runtime.profile`) instead of the raw reference: the same numbers for the binned tests, an
approximation with a stated bound for `ks` and `wasserstein`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlc.runtime.metrics_contract import (
    FEATURE_DRIFT_SCORE,
    LABEL_FEATURE,
    LABEL_METRIC,
    LABEL_MODEL,
    LABEL_SAMPLE,
    MODEL_PERFORMANCE,
    MONITOR_LAST_RUN,
    MONITOR_ROWS,
    PREDICTION_DRIFT_SCORE,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

METHODS = ("psi", "ks", "chi2", "wasserstein", "jensen_shannon")
CATEGORICAL_METHODS = ("psi", "chi2", "jensen_shannon")
"""Tests that can score a categorical column."""
DESCRIPTIONS = {
    "psi": "population stability index over the reference's quantile bins",
    "ks": "two-sample Kolmogorov-Smirnov statistic",
    "wasserstein": "Wasserstein distance in reference standard deviations",
    "chi2": "Cramér's V of the chi-squared contingency table",
    "jensen_shannon": "Jensen-Shannon distance (base 2) of the binned shares",
}
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
    return psi_counts(np.asarray(rc), np.asarray(cc))


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
    return chi2_counts(*_binned_counts(reference, current, _is_numeric(reference)))


def psi_counts(rc: np.ndarray, cc: np.ndarray) -> float:
    """PSI of two count vectors over the same bins."""
    import numpy as np

    if rc.sum() == 0 or cc.sum() == 0:
        return float("nan")
    p = rc / rc.sum() + EPSILON
    q = cc / cc.sum() + EPSILON
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon_counts(rc: np.ndarray, cc: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2) of two count vectors over the same bins."""
    import numpy as np

    if rc.sum() == 0 or cc.sum() == 0:
        return float("nan")
    p = rc / rc.sum()
    q = cc / cc.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(np.sqrt(max((kl_p + kl_q) / 2, 0.0)))


def jensen_shannon(reference: pd.Series, current: pd.Series) -> float:
    """Jensen-Shannon distance of the binned shares (0 = same, 1 = disjoint)."""
    return jensen_shannon_counts(*_binned_counts(reference, current, _is_numeric(reference)))


def chi2_counts(rc: np.ndarray, cc: np.ndarray) -> tuple[float, float]:
    """Cramér's V and chi-squared p-value of two count vectors over the same bins."""
    import numpy as np
    from scipy import stats

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


def choose(
    numeric: bool, method: str, numeric_method: str | None, categorical_method: str | None
) -> tuple[str, str]:
    """The test scoring a column of this type, and why it was chosen."""
    for name in (method, numeric_method, categorical_method):
        if name is not None and name not in METHODS:
            raise ValueError(f"unknown drift method '{name}' (known: {', '.join(METHODS)})")
    if numeric:
        if numeric_method is not None:
            return numeric_method, f"numeric column: drift.numeric is {numeric_method}"
        return method, f"numeric column: drift.method is {method}"
    if categorical_method is not None:
        if categorical_method not in CATEGORICAL_METHODS:
            return "chi2", f"categorical column: {categorical_method} needs numbers, chi2 instead"
        return categorical_method, f"categorical column: drift.categorical is {categorical_method}"
    if method in CATEGORICAL_METHODS:
        return method, f"categorical column: drift.method is {method}"
    return "chi2", f"categorical column: {method} needs numbers, chi2 instead"


def _score_row(
    row: dict[str, Any], used: str, rc: Any, cc: Any, exact: Any = None
) -> dict[str, Any]:
    """`row` with the score of a binned test over counts `rc`/`cc`, or of `exact()`."""
    import numpy as np

    if used == "psi":
        row["score"] = psi_counts(np.asarray(rc), np.asarray(cc))
    elif used == "jensen_shannon":
        row["score"] = jensen_shannon_counts(np.asarray(rc), np.asarray(cc))
    elif used == "chi2":
        row["score"], row["p_value"] = chi2_counts(np.asarray(rc), np.asarray(cc))
    else:
        row["score"] = exact()
    return row


def _finish(row: dict[str, Any], threshold: float) -> dict[str, Any]:
    score = row["score"]
    row["drifted"] = bool(score == score and score > threshold)  # NaN never drifts
    return row


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    method: str,
    threshold: float,
    *,
    numeric: str | None = None,
    categorical: str | None = None,
) -> list[dict[str, Any]]:
    """Drift of each feature: `{feature, method, why, score, threshold, drifted, ...}`.

    `numeric`/`categorical` pick the test per column type (see the module). A feature missing
    from either frame gets `score: None`, `drifted: False` and `missing`.
    """
    choose(True, method, numeric, categorical)  # unknown names fail before any work
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
        is_num = _is_numeric(ref) and _is_numeric(cur)
        used, why = choose(is_num, method, numeric, categorical)
        row.update(method=used, why=why, kind="numeric" if is_num else "categorical")
        if used in ("ks", "wasserstein"):
            raw = ks if used == "ks" else wasserstein
            _score_row(row, used, None, None, lambda f=raw, r=ref, c=cur: f(r, c))
        else:
            _score_row(row, used, *_binned_counts(ref, cur, is_num))
        row.update(
            reference_mean=float(ref.mean()) if is_num else None,
            current_mean=float(cur.mean()) if is_num else None,
            missing_rate_reference=_rate(int(ref.isna().sum()), len(ref)),
            missing_rate_current=_rate(int(cur.isna().sum()), len(cur)),
        )
        results.append(_finish(row, threshold))
    return results


def _rate(missing: int, rows: int) -> float | None:
    return missing / rows if rows else None


def profile_drift(
    profile: dict[str, Any],
    current: pd.DataFrame,
    features: Sequence[str],
    method: str,
    threshold: float,
    *,
    numeric: str | None = None,
    categorical: str | None = None,
) -> list[dict[str, Any]]:
    """`feature_drift` against a reference profile (`runtime.profile`) instead of raw data.

    The binned tests give the numbers `feature_drift` gives on the profiled data; `ks` and
    `wasserstein` are approximations, and their rows carry the `approximation` bound.
    """
    import numpy as np

    from mlc.runtime import profile as prof

    choose(True, method, numeric, categorical)
    entries: dict[str, Any] = profile.get("features") or {}
    results = []
    for name in features:
        row: dict[str, Any] = {"feature": name, "threshold": threshold}
        entry = entries.get(name) if name != prof.PREDICTION else profile.get("prediction")
        absent = [
            side
            for side, there in (("reference", entry is not None), ("current", name in current))
            if not there
        ]
        if absent or entry is None:
            row.update(method=method, score=None, drifted=False, missing=absent)
            results.append(row)
            continue
        cur = current[name]
        is_num = entry["kind"] == "numeric"
        if is_num and not _is_numeric(cur):
            row.update(
                method=method,
                score=None,
                drifted=False,
                kind="numeric",
                why="the profile has a numeric column, the current data another type",
            )
            results.append(row)
            continue
        used, why = choose(is_num, method, numeric, categorical)
        row.update(method=used, why=why, kind=entry["kind"])
        values: Any = cur.to_numpy(dtype=float, na_value=np.nan) if is_num else cur
        if used in ("ks", "wasserstein"):
            approx = prof.ks_approx if used == "ks" else prof.wasserstein_approx
            _score_row(row, used, None, None, lambda a=approx, e=entry, v=values: a(e, v))
            row["approximation"] = (
                f"from {len(entry['quantiles']) - 1} reference quantiles: within "
                f"{prof.approximation_bound(entry, used):.3g} of the raw-data score"
            )
        else:
            _score_row(row, used, *prof.binned_counts(entry, values))
        rows_ref = int(entry["n"]) + int(entry["missing"])
        n_missing = int(cur.isna().sum())
        row.update(
            reference_mean=entry.get("mean") if is_num else None,
            current_mean=float(np.nanmean(values)) if is_num and len(cur) > n_missing else None,
            missing_rate_reference=_rate(int(entry["missing"]), rows_ref),
            missing_rate_current=_rate(n_missing, len(cur)),
        )
        results.append(_finish(row, threshold))
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
    *,
    prediction: dict[str, Any] | None = None,
    rows: dict[str, int] | None = None,
    timestamp: float | None = None,
) -> str:
    """Prometheus text exposition (node-exporter textfile format) of drift and performance.

    `prediction` is the prediction-drift row, `rows` the row counts by sample (`current`,
    `labelled`, `reference`), `timestamp` when the monitor ran (Unix seconds).
    """
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
    score = (prediction or {}).get("score")
    if score is not None and score == score:
        lines += [
            f"# HELP {PREDICTION_DRIFT_SCORE} Drift score of the predictions against the "
            "reference profile.",
            f"# TYPE {PREDICTION_DRIFT_SCORE} gauge",
            f'{PREDICTION_DRIFT_SCORE}{{{LABEL_MODEL}="{model}"}} {float(score):.6g}',
        ]
    if rows:
        lines += [
            f"# HELP {MONITOR_ROWS} Rows the latest monitor run judged, by sample.",
            f"# TYPE {MONITOR_ROWS} gauge",
        ]
        for sample, count in sorted(rows.items()):
            lines.append(
                f'{MONITOR_ROWS}{{{LABEL_MODEL}="{model}",{LABEL_SAMPLE}="{_label(sample)}"}} '
                f"{int(count)}"
            )
    if timestamp is not None:
        lines += [
            f"# HELP {MONITOR_LAST_RUN} When the latest monitor run finished (Unix seconds).",
            f"# TYPE {MONITOR_LAST_RUN} gauge",
            f'{MONITOR_LAST_RUN}{{{LABEL_MODEL}="{model}"}} {float(timestamp):.3f}',
        ]
    return "\n".join(lines) + "\n"


class PushError(RuntimeError):
    """A Pushgateway that cannot be reached or refused the gauges."""


def write_textfile(path: str | Path, text: str) -> None:
    """Write `text` to `path` for node-exporter's textfile collector: to a temporary file in the
    same folder, then renamed, so a scrape never reads half a file."""
    import os
    import tempfile

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _group(name: str, value: str) -> str:
    """One grouping-key path segment of the Pushgateway API (base64 when not URL-plain)."""
    import base64
    import re
    from urllib.parse import quote

    if value and re.fullmatch(r"[A-Za-z0-9_.:-]+", value):
        return f"{name}/{quote(value)}"
    encoded = base64.urlsafe_b64encode(value.encode()).decode() or "="
    return f"{name}@base64/{encoded}"


def push(url: str, text: str, job: str, instance: str, timeout: float = 10.0) -> None:
    """Replace the gauges of group (`job`, `instance`) on the Pushgateway at `url` (HTTP PUT)."""
    import urllib.error
    import urllib.request

    where = f"{url.rstrip('/')}/metrics/{_group('job', job)}/{_group('instance', instance)}"
    request = urllib.request.Request(
        where,
        data=text.encode(),
        method="PUT",
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace").strip()
        raise PushError(f"the Pushgateway at {url} refused the gauges: {exc.code} {body}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise PushError(f"cannot reach the Pushgateway at {url}: {exc}") from exc


__all__ = [
    "CATEGORICAL_METHODS",
    "METHODS",
    "STRATEGIES",
    "PushError",
    "add_derived",
    "chi2",
    "choose",
    "feature_drift",
    "jensen_shannon",
    "ks",
    "performance",
    "profile_drift",
    "prometheus_text",
    "psi",
    "push",
    "select_for_labelling",
    "uncertainty_scores",
    "wasserstein",
    "write_textfile",
]
