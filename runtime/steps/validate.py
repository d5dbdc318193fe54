"""validate: join the sources, check them against the data contract with pandera.

The pandera `DataFrameSchema` is generated from the contract (dtype, nullable, min/max, allowed,
unique, regex) and run with `lazy=True` so that every failure is collected. Failing rows go to a
quarantine file inside the `report` artifact; `on_failure` decides whether the run stops, drops
those rows (`quarantine`) or only warns.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps._data import allowed_texts, cast_to_contract, load_frame, out, value_text

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

    from mlc.compiler.ir.params import ColumnParams, ValidateParams

STEP = "validate"
_NUMERIC = {"int": "int64", "float": "float64"}


def build_schema(columns: Mapping[str, ColumnParams]) -> Any:
    """A pandera `DataFrameSchema` for contract `columns` (name -> column dict of the IR)."""
    import pandera.pandas as pa

    cols = {}
    for name, col in sorted(columns.items()):
        checks = []
        if col["min"] is not None:
            checks.append(pa.Check.ge(col["min"]))
        if col["max"] is not None:
            checks.append(pa.Check.le(col["max"]))
        if col["allowed"] is not None:
            # Text columns hold each value in its declared value's text form (cast_to_contract).
            allowed: list[Any] = (
                allowed_texts(col["allowed"])
                if col["dtype"] in ("category", "str")
                else list(col["allowed"])
            )
            checks.append(pa.Check.isin(allowed))
        if col["regex"]:
            checks.append(pa.Check.str_matches(col["regex"]))
        dtype: Any = None
        if col["dtype"] in _NUMERIC:
            # Nullable ints are held as float64 (NaN), so only the non-null case is int64.
            dtype = "float64" if col["dtype"] == "float" or col["nullable"] else "int64"
        elif col["dtype"] == "datetime":
            dtype = "datetime64[ns]"
        cols[name] = pa.Column(
            dtype,
            checks=checks,
            nullable=col["nullable"],
            unique=col["unique"],
            required=True,
        )
    return pa.DataFrameSchema(cols, strict=False, coerce=False)


def _join(
    frames: dict[str, pd.DataFrame], order: list[str], join_on: dict[str, list[str]]
) -> pd.DataFrame:
    base = frames[order[0]]
    for name in order[1:]:
        keys = join_on.get(name) or []
        missing = [k for k in keys if k not in base.columns or k not in frames[name].columns]
        if not keys or missing:
            raise StepError(
                STEP,
                f"cannot join source '{name}': key columns {missing or keys} are missing",
                "set data.sources[].join_on to shared columns",
            )
        base = base.merge(frames[name], on=keys, how="left", suffixes=("", f"_{name}"))
    return base


def _coerce_numeric(df: pd.DataFrame, columns: Mapping[str, ColumnParams]) -> list[dict[str, Any]]:
    """Make numeric contract columns numeric; values that are not numbers become failures."""
    import pandas as pd

    failures = []
    for name, col in columns.items():
        if col["dtype"] not in _NUMERIC or name not in df.columns:
            continue
        if pd.api.types.is_numeric_dtype(df[name]):
            continue
        coerced = pd.to_numeric(df[name], errors="coerce")
        bad = coerced.isna() & df[name].notna()
        for idx in df.index[bad]:
            failures.append(
                {
                    "column": name,
                    "check": f"dtype('{col['dtype']}')",
                    "failure_case": str(df.at[idx, name]),
                    "index": idx,
                }
            )
        df[name] = coerced
    return failures


def _pandera_failures(df: pd.DataFrame, schema: Any) -> list[dict[str, Any]]:
    import pandera.errors as pe

    try:
        schema.validate(df, lazy=True)
    except pe.SchemaErrors as exc:
        cases = exc.failure_cases
        result = []
        for row in cases.itertuples(index=False):
            index = row.index if row.index is not None and row.index == row.index else None
            result.append(
                {
                    "column": row.column if row.column is not None else "<table>",
                    "check": str(row.check),
                    "failure_case": value_text(row.failure_case),
                    "index": index,
                }
            )
        return result
    return []


def _describe(
    column: str, check: str, cases: list[str], columns: Mapping[str, ColumnParams]
) -> str:
    """One failed check with an offending value and its row count, e.g.
    `grade: value 7 not in allowed [0, 1, 2, 3] (12 rows)`."""
    rows = f"{len(cases)} row" + ("" if len(cases) == 1 else "s")
    example = sorted(set(cases))[0] if cases else ""
    if check.startswith("isin("):
        declared = columns[column]["allowed"] if column in columns else None
        allowed = ", ".join(value_text(a) for a in declared or ())
        return f"{column}: value {example} not in allowed [{allowed}] ({rows})"
    if column == "<table>" or not example:
        return f"{column}: {check} ({rows})"
    return f"{column}: {check} failed, e.g. value {example} ({rows})"


def run(
    params: ValidateParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Join, cast and validate; write the `dataset` and the `report` artifacts.

    Raises:
        StepError: on contract failures with `on_failure: stop`, or when failures cannot be
            pinned to rows (e.g. a missing column) under `quarantine`.
    """
    if params["engine"] == "spark":
        from mlc.runtime.spark import contract as spark_contract

        return spark_contract.run(params, inputs, outputs, ctx)
    contract = params["contract"]
    columns = contract["columns"]
    policy = contract["on_failure"]
    order = list(params["sources"])
    frames = {name: load_frame(inputs, name, STEP) for name in order}
    df = _join(frames, order, params["join_on"]).reset_index(drop=True)
    df = cast_to_contract(df, columns)
    failures = _coerce_numeric(df, columns)
    failures += _pandera_failures(df, build_schema(columns))

    by_check: dict[tuple[str, str], list[str]] = defaultdict(list)
    bad_rows: set[int] = set()
    table_level = []
    for f in failures:
        by_check[(f["column"], f["check"])].append(f["failure_case"])
        if f["index"] is None:
            table_level.append(f)
        else:
            bad_rows.add(int(f["index"]))
    summary_checks = [
        {
            "column": col,
            "check": check,
            "count": len(cases),
            "examples": sorted(set(cases))[:5],
            "message": _describe(col, check, cases, columns),
        }
        for (col, check), cases in sorted(by_check.items())
    ]
    named = "; ".join(str(c["message"]) for c in summary_checks)
    report = {
        "passed": not failures,
        "on_failure": policy,
        "rows_in": len(df),
        "failing_rows": len(bad_rows),
        "checks": summary_checks,
    }
    report_loc = out(outputs, "report", STEP)
    if bad_rows:
        quarantined = df.loc[sorted(bad_rows)]
        artifacts.save_text(report_loc, "quarantine.csv", quarantined.to_csv(index=True))
    clean = df
    if failures and policy == "quarantine":
        if table_level:
            report["rows_out"] = 0
            artifacts.save_json(report_loc, "report", report, "report", passed=False)
            raise StepError(
                STEP,
                "data contract failures that no row can be quarantined for: "
                + ", ".join(sorted({f"{f['column']}: {f['check']}" for f in table_level})),
                "fix the data or the contract (data.contract.columns)",
            )
        clean = df.drop(index=sorted(bad_rows)).reset_index(drop=True)
    report["rows_out"] = len(clean)
    artifacts.save_json(
        report_loc, "report", report, "report", passed=not failures, failing_rows=len(bad_rows)
    )
    if failures and policy == "stop":
        raise StepError(
            STEP,
            f"data contract failed on {len(bad_rows)} rows: {named}",
            "fix the data, or set data.contract.on_failure: quarantine",
        )
    if failures and policy == "warn":
        ctx.logger.warning("step 'validate': data contract failures (on_failure: warn): %s", named)
    if failures and policy == "quarantine" and len(clean) == 0:
        raise StepError(STEP, f"every row failed the data contract: {named}")
    digest = artifacts.save_dataframe(out(outputs, "dataset", STEP), clean)
    return {
        "rows_in": len(df),
        "rows_out": len(clean),
        "quarantined": len(bad_rows) if policy == "quarantine" else 0,
        "failures": named or "none",
        "hash": digest,
    }
