"""split: random, stratified or time-ordered train/test(/validation) split, seeded.

A derived target (`features.target` naming a `features.derived` column) is computed here, before
the split, so stratification and every later step see it. Before anything is trained, the parts
are checked against `data.split.minimum`: rows per part, rows per class (in train, in test and
in each tuning fold) and test rows per sensitive group; a shortfall names the counts and the
setting, and stops the run unless `minimum.enforce` is `warn`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps._data import load_frame, out, value_text

if TYPE_CHECKING:
    import pandas as pd

    from mlc.compiler.ir.params import DerivedParams, SplitParams

STEP = "split"


def _derive_target(df: pd.DataFrame, derived: DerivedParams) -> pd.DataFrame:
    """`df` with the derived target column computed from its expression."""
    name, expr = derived["name"], derived["expr"]
    try:
        values = df.eval(expr)
    except Exception as exc:  # DataFrame.eval raises whatever the expression's parts raise
        raise StepError(
            STEP,
            f"cannot compute the derived target '{name}' = {expr}: {type(exc).__name__}: {exc}",
            "check features.derived[].expr against the contract's columns",
        ) from exc
    if getattr(values, "ndim", 0) != 1 or len(values) != len(df):
        raise StepError(STEP, f"the derived target '{name}' = {expr} is not one value per row")
    df = df.copy()
    # A condition (`days_late > 0`) becomes 0/1 labels, the form binary metrics and the model
    # signature expect.
    df[name] = values.astype("int64") if values.dtype == bool else values
    return df


def _counts(part: pd.DataFrame, column: str, values: list[Any]) -> dict[Any, int]:
    found = part[column].value_counts(dropna=False)
    return {v: int(found.get(v, 0)) for v in values}


def _short(counts: dict[Any, int], least: int, what: str) -> str:
    """`class 6 has 2 rows, class 5 has 3 rows` for the values below `least`, fewest first."""
    low = sorted((n, value_text(v)) for v, n in counts.items() if n < least)
    text = ", ".join(f"{what} {v} has {n} row" + ("" if n == 1 else "s") for n, v in low[:8])
    # A continuous label read as classes would list every value: name a few, count the rest.
    return text + (f", and {len(low) - 8} more" if len(low) > 8 else "")


def shortfalls(parts: dict[str, pd.DataFrame], df: pd.DataFrame, params: SplitParams) -> list[str]:
    """Every way the parts fall short of `params["minimum"]`, each naming the counts."""
    minimum = params["minimum"]
    found: list[str] = []
    gates = params["gates"]
    purpose = {
        "train": "to train on",
        "validation": "to validate on",
        "test": f"to judge {gates} gate(s) on" if gates else "for its metrics to mean anything",
    }
    rows_needed = {
        "train": minimum["train_rows"],
        "validation": minimum["validation_rows"],
        "test": minimum["test_rows"],
    }
    for name, part in parts.items():
        least = rows_needed[name]
        if len(part) < least:
            found.append(
                f"{name} split has {len(part)} rows; at least {least} are needed "
                f"{purpose[name]} (data.split.minimum.{name}_rows)"
            )
    target = params["target"]
    if params["task"] == "classification" and target in df.columns:
        least = minimum["per_class"]
        classes = sorted(df[target].dropna().unique().tolist(), key=value_text)
        for name in ("train", "test"):
            low = _short(_counts(parts[name], target, classes), least, "class")
            if low:
                found.append(
                    f"{name} split: {low}; at least {least} rows per class are needed "
                    "(data.split.minimum.per_class)"
                )
        folds = params["cv_folds"]
        if folds:
            # StratifiedKFold gives each validation fold about 1/folds of each class.
            per_fold = {
                c: n // int(folds) for c, n in _counts(parts["train"], target, classes).items()
            }
            low = _short(per_fold, least, "class")
            if low:
                found.append(
                    f"tuning's {folds}-fold cross-validation of the train split: {low} per fold; "
                    f"at least {least} are needed (data.split.minimum.per_class)"
                )
    least = minimum["per_group"]
    for attr in params["sensitive_attributes"]:
        if attr not in df.columns:
            continue
        groups = sorted(df[attr].dropna().unique().tolist(), key=value_text)
        low = _short(_counts(parts["test"], attr, groups), least, f"{attr} group")
        if low:
            found.append(
                f"test split: {low}; at least {least} rows per sensitive group are needed "
                "(data.split.minimum.per_group)"
            )
    return found


def run(
    params: SplitParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Split the `dataset` input into `train`, `test` and (when asked) `validation`."""
    if params.get("engine") == "spark":
        from mlc.runtime.spark import split as spark_split

        return spark_split.run(params, inputs, outputs, ctx)
    from sklearn.model_selection import train_test_split

    df = load_frame(inputs, "dataset", STEP)
    if "derived_target" in params:
        df = _derive_target(df, params["derived_target"])
    method = params["method"]
    test_size = params["test_size"]
    val_size = params["validation_size"]
    seed = params["seed"]
    held_out = round(test_size + val_size, 9)
    if method == "time":
        col = params["time_column"]
        if not col or col not in df.columns:
            raise StepError(STEP, f"time column '{col}' is not in the data")
        ordered = df.sort_values(col, kind="stable").reset_index(drop=True)
        n_train = round(len(ordered) * (1 - held_out))
        n_val = round(len(ordered) * val_size)
        train, rest = ordered.iloc[:n_train], ordered.iloc[n_train:]
        val, test = rest.iloc[:n_val], rest.iloc[n_val:]
    elif method == "hash":
        from mlc.runtime.spark import keys

        key = params.get("key")
        if not key or key not in df.columns:
            raise StepError(STEP, f"hash key column '{key}' is not in the data")
        if df[key].isna().any():
            raise StepError(STEP, f"hash key column '{key}' has missing values")
        # The same assignment as the spark engine's (mlc.runtime.spark.keys).
        u = keys.fractions(df[key], seed)
        test = df[u < test_size]
        val = df[(u >= test_size) & (u < held_out)]
        train = df[u >= held_out]
    else:
        stratify = None
        if method == "stratified":
            col = params["stratify_by"] or params["target"]
            if col not in df.columns:
                raise StepError(STEP, f"stratify column '{col}' is not in the data")
            stratify = df[col]
        try:
            # Integer counts: fractions would round twice (0.2 + 0.1 > 0.3 in floating point).
            n_test = max(1, round(len(df) * test_size))
            n_val = round(len(df) * val_size)
            train, rest = train_test_split(
                df, test_size=n_test + n_val, random_state=seed, stratify=stratify
            )
            val = rest.iloc[:0]
            test = rest
            if val_size:
                strat_rest = rest[stratify.name] if stratify is not None else None
                val, test = train_test_split(
                    rest, test_size=n_test, random_state=seed, stratify=strat_rest
                )
        except ValueError as exc:
            raise StepError(
                STEP,
                f"cannot split {len(df)} rows: {exc}",
                "use method: random, or more data per class",
            ) from exc
    parts = {"train": train, "test": test}
    if val_size:
        parts["validation"] = val
    summary: dict[str, Any] = {"method": method}
    for name, part in parts.items():
        if len(part) == 0:
            raise StepError(STEP, f"the {name} split is empty ({len(df)} rows in total)")
    short = shortfalls(parts, df, params)
    if short and params["minimum"]["enforce"] == "error":
        raise StepError(
            STEP,
            f"too little data ({len(df)} rows):\n  - " + "\n  - ".join(short),
            "add data, or lower data.split.minimum (or set data.split.minimum.enforce: warn)",
        )
    for line in short:
        ctx.logger.warning("step 'split': %s", line)
    if short:
        summary["shortfalls"] = short
    for name, part in parts.items():
        artifacts.save_dataframe(
            out(outputs, name, STEP), part.reset_index(drop=True), split=name, seed=seed
        )
        summary[name] = len(part)
    return summary
