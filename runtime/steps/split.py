"""split: random, stratified or time-ordered train/test(/validation) split, seeded."""

from __future__ import annotations

from typing import Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps._data import load_frame, out

STEP = "split"


def run(
    params: dict[str, Any], inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Split the `dataset` input into `train`, `test` and (when asked) `validation`."""
    from sklearn.model_selection import train_test_split

    df = load_frame(inputs, "dataset", STEP)
    method = params.get("method", "random")
    test_size = float(params.get("test_size", 0.2))
    val_size = float(params.get("validation_size") or 0.0)
    seed = int(params.get("seed", 42))
    held_out = round(test_size + val_size, 9)
    if method == "time":
        col = params.get("time_column")
        if not col or col not in df.columns:
            raise StepError(STEP, f"time column '{col}' is not in the data")
        ordered = df.sort_values(col, kind="stable").reset_index(drop=True)
        n_train = round(len(ordered) * (1 - held_out))
        n_val = round(len(ordered) * val_size)
        train, rest = ordered.iloc[:n_train], ordered.iloc[n_train:]
        val, test = rest.iloc[:n_val], rest.iloc[n_val:]
    else:
        stratify = None
        if method == "stratified":
            col = params.get("stratify_by") or params.get("target")
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
        artifacts.save_dataframe(
            out(outputs, name, STEP), part.reset_index(drop=True), split=name, seed=seed
        )
        summary[name] = len(part)
    return summary
