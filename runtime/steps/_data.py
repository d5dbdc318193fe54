"""Helpers shared by the steps: frames and labels, contract dtypes, entry points, secrets."""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

    from mlc.compiler.ir.params import ColumnParams


def need(inputs: dict[str, str], name: str, step: str) -> str:
    """The location of input `name`, or a `StepError` naming what is missing."""
    if name not in inputs:
        raise StepError(step, f"missing input '{name}'", f"pass --inputs {name}=LOCATION")
    return inputs[name]


def out(outputs: dict[str, str], name: str, step: str) -> str:
    """The location of output `name`, or a `StepError` naming what is missing."""
    if name not in outputs:
        raise StepError(step, f"missing output '{name}'", f"pass --outputs {name}=LOCATION")
    return outputs[name]


def load_frame(inputs: dict[str, str], name: str, step: str) -> pd.DataFrame:
    """Load dataset input `name`; a missing or incomplete artifact is a `StepError`."""
    loc = need(inputs, name, step)
    if not artifacts.exists(loc):
        raise StepError(
            step,
            f"input '{name}' at {loc} is not a complete artifact",
            "run the producing step first",
        )
    from mlc.runtime.spark import frames

    if frames.is_spark_layout(loc):
        # A Spark-written dataset is a Parquet folder, which pyarrow reads as one table.
        loaded: pd.DataFrame = frames.load_pandas(loc)
        return loaded
    return artifacts.load_dataframe(loc)


def load_sample(
    inputs: dict[str, str], name: str, step: str, rows: int | None, seed: int
) -> tuple[pd.DataFrame, dict[str, int] | None]:
    """Dataset input `name`, or at most `rows` of it drawn uniformly with `seed` (in file
    order), and what was drawn (`{"rows", "of", "seed"}`; None when not sampling).

    A Spark-written folder is sampled from its Parquet metadata: only the drawn rows are read
    into memory, so a split larger than memory still trains on its sample.
    """
    if rows is None:
        return load_frame(inputs, name, step), None
    import numpy as np

    from mlc.runtime.spark import frames

    loc = need(inputs, name, step)
    if frames.is_spark_layout(loc):
        import pyarrow.dataset as ds

        dataset = ds.dataset(frames.data_path(loc), format="parquet")
        total = dataset.count_rows()
        if total <= rows:
            frame: pd.DataFrame = dataset.to_table().to_pandas()
        else:
            picked = np.sort(np.random.default_rng(seed).choice(total, rows, replace=False))
            frame = dataset.take(picked).to_pandas()
    else:
        full = load_frame(inputs, name, step)
        total = len(full)
        frame = full
        if total > rows:
            picked = np.sort(np.random.default_rng(seed).choice(total, rows, replace=False))
            frame = full.iloc[picked].reset_index(drop=True)
    return frame, {"rows": len(frame), "of": int(total), "seed": seed}


def load_model(inputs: dict[str, str], name: str, step: str, ctx: StepContext) -> Any:
    """Load a model artifact and bind the run's secrets to any keyed transforms in it."""
    loc = need(inputs, name, step)
    if not artifacts.exists(loc):
        raise StepError(
            step,
            f"input '{name}' at {loc} is not a complete artifact",
            "run the producing step first",
        )
    model = artifacts.load_object(loc)
    bind_secrets(model, ctx)
    return model


def split_xy(df: pd.DataFrame, target: str, step: str) -> tuple[pd.DataFrame, pd.Series]:
    """Features and labels; a missing target column is a `StepError`."""
    if target not in df.columns:
        raise StepError(
            step,
            f"target column '{target}' is not in the data",
            "columns: " + ", ".join(map(str, df.columns)),
        )
    return df.drop(columns=[target]), df[target]


def is_classifier(model: Any) -> bool:
    return hasattr(model, "predict_proba")


def import_entry(ref: str, step: str, what: str = "entry point") -> Callable[..., Any]:
    """Import `package.module:function` (or `package.module.function`)."""
    module_name, _, attr = ref.partition(":") if ":" in ref else ref.rpartition(".")
    if not module_name or not attr:
        raise StepError(step, f"{what} '{ref}' is not of the form 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StepError(
            step,
            f"cannot import {what} '{ref}': {exc}",
            "check the module is installed or on PYTHONPATH",
        ) from exc
    try:
        fn: Callable[..., Any] = getattr(module, attr)
    except AttributeError:
        names = [n for n in dir(module) if not n.startswith("_")]
        close = difflib.get_close_matches(attr, names, n=1)
        raise StepError(
            step,
            f"{what} '{ref}': module '{module_name}' has no '{attr}'",
            f"did you mean '{module_name}:{close[0]}'?" if close else "",
        ) from None
    return fn


def resolve_secret(ref: str, secrets: dict[str, str], step: str) -> str:
    """The value of a secret reference (`env:NAME`, or any ref resolved by the orchestrator).

    `ctx.secrets` is keyed by env var name (and may also hold a raw reference); `env:` refs fall
    back to the process environment.
    """
    scheme, _, name = ref.partition(":")
    if ref in secrets:
        return secrets[ref]
    if scheme == "env":
        if name in secrets:
            return secrets[name]
        if os.environ.get(name):
            return os.environ[name]
    raise StepError(
        step,
        f"secret '{ref}' is not available",
        f"set the environment variable {name}"
        if scheme == "env"
        else "resolve it into the run's secrets (security.secrets)",
    )


def _walk(obj: Any) -> Iterable[Any]:
    yield obj
    for attr in ("steps", "transformers", "transformers_"):
        for item in getattr(obj, attr, None) or ():
            if isinstance(item, tuple) and len(item) >= 2:
                yield from _walk(item[1])
    for attr in ("estimator", "estimator_", "model", "mitigator", "pipeline"):
        inner = getattr(obj, attr, None)
        if inner is not None and inner is not obj and not isinstance(inner, str):
            yield from _walk(inner)
    # Fairness reductions keep one fitted estimator per iteration.
    predictors = getattr(obj, "predictors_", None)
    for inner in list(predictors) if predictors is not None else []:
        yield from _walk(inner)


def bind_secrets(model: Any, ctx: StepContext) -> None:
    """Give keyed transforms inside `model` their keys (keys are never pickled)."""
    for part in _walk(model):
        bind = getattr(part, "bind_key", None)
        ref = getattr(part, "key_ref", None)
        if callable(bind) and isinstance(ref, str):
            bind(resolve_secret(ref, ctx.secrets, "features"))


_PANDAS_DTYPES = {
    "int": "int64",
    "float": "float64",
    "str": "string",
    "bool": "boolean",
    "category": "string",
}


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"


def _as_number(value: Any) -> float | None:
    """`value` as a number when it is one or spells one (`0`, `0.0`, `"0"`), else None."""
    if _is_bool(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None


def value_text(value: Any) -> str:
    """A value as the spec writes it: `7`, not `7.0`; `true`, not `True`."""
    if _is_bool(value):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return value_text(value.item())
    return str(value)


def allowed_texts(allowed: Iterable[Any]) -> list[str]:
    """The text form category columns hold for each declared allowed value."""
    return [value_text(a) for a in allowed]


def _as_category(series: pd.Series, allowed: Iterable[Any] | None) -> pd.Series:
    """Text values of a category/str column, matched to the declared allowed values in the
    declared values' own type.

    The column stays text (the type the model signature and serving carry for categories), but
    a value equal to a declared number (`0.0` or `"0"` read from a CSV, declared `0`) or bool
    becomes that declared value's text, so the contract compares like with like. Declared text
    matches text only, so `"01"` and `"1"` stay two categories.
    """
    declared = list(allowed or ())
    texts = {a for a in declared if isinstance(a, str)}
    numbers = {
        float(a): value_text(a)
        for a in declared
        if _as_number(a) is not None and not isinstance(a, str)
    }
    bools = {bool(a): value_text(a) for a in declared if _is_bool(a)}

    def one(v: Any) -> Any:
        if v is None:
            return None
        text = value_text(v) if isinstance(v, float) else str(v)
        if text in texts:
            return text
        number = _as_number(v)
        if number is not None and number in numbers:
            return numbers[number]
        if bools:
            flag = {"true": True, "false": False}.get(text.strip().lower())
            if _is_bool(v):
                flag = bool(v)
            if flag is not None and flag in bools:
                return bools[flag]
        return text

    return series.astype(object).where(series.notna(), None).map(one)


def cast_to_contract(df: pd.DataFrame, columns: Mapping[str, ColumnParams]) -> pd.DataFrame:
    """Cast contract columns to their dtypes where the values allow; leave the rest as read.

    Values that do not convert stay as they are, so that validation reports them as failures
    instead of a cast raising here.
    """
    import pandas as pd

    df = df.copy()
    for name, col in columns.items():
        if name not in df.columns:
            continue
        dtype = col["dtype"]
        try:
            if dtype == "datetime":
                df[name] = pd.to_datetime(df[name])
            elif dtype == "int" and df[name].isna().any():
                df[name] = df[name].astype("float64")
            elif dtype == "category" or (dtype == "str" and col["allowed"]):
                df[name] = _as_category(df[name], col["allowed"])
            elif dtype == "str":
                df[name] = df[name].astype(object).where(df[name].notna(), None)
                df[name] = df[name].map(lambda v: v if v is None else str(v))
            else:
                df[name] = df[name].astype(_PANDAS_DTYPES[dtype])
        except (ValueError, TypeError):
            continue
    return df
