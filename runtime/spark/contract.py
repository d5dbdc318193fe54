"""validate on the spark engine: join, cast and check the data contract in Spark.

`pandera.pyspark` decides which checks fail (it reports, it does not raise); each reported
check is then turned into the Spark predicate of the rows it fails, so that the report, the
quarantine file and the error read as on the pandas engine, with row counts, while no more
than the failing rows' CSV leaves Spark.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.spark import frames
from mlc.runtime.spark.session import first_line, session
from mlc.runtime.steps._data import allowed_texts, out, value_text

if TYPE_CHECKING:
    from mlc.compiler.ir.params import ColumnParams, ValidateParams

STEP = "validate"
ROW = "_mlc_row"
_NUMERIC_TYPES = ("tinyint", "smallint", "int", "bigint", "float", "double", "decimal")


def _spark_type(dtype: str) -> Any:
    from pyspark.sql import types as T

    return {
        "int": T.LongType(),
        "float": T.DoubleType(),
        "str": T.StringType(),
        "category": T.StringType(),
        "bool": T.BooleanType(),
        "datetime": T.TimestampType(),
    }[dtype]


def _text(c: Any, type_name: str) -> Any:
    """A value's text as `value_text` writes it: `7` for 7.0, `true` for True."""
    from pyspark.sql import functions as F

    if type_name in ("float", "double") or type_name.startswith("decimal"):
        integral = (c == F.floor(c)) & ~F.isnan(c.cast("double"))
        return F.when(integral, c.cast("bigint").cast("string")).otherwise(c.cast("string"))
    if type_name == "boolean":
        return F.when(c, F.lit("true")).when(~c, F.lit("false"))
    return c.cast("string")


def _as_category(c: Any, type_name: str, allowed: list[Any] | None) -> Any:
    """The Spark twin of `_data._as_category`: text, matched to the declared values' text."""
    from pyspark.sql import functions as F

    text = _text(c, type_name)
    declared = list(allowed or ())
    texts = [a for a in declared if isinstance(a, str)]
    numbers = {
        float(a): value_text(a)
        for a in declared
        if not isinstance(a, str | bool) and isinstance(a, int | float)
    }
    bools = {bool(a): value_text(a) for a in declared if isinstance(a, bool)}
    result = text
    as_number = text.try_cast("double")
    for number, label in sorted(numbers.items(), reverse=True):
        result = F.when(~text.isin(texts) & (as_number == F.lit(number)), F.lit(label)).otherwise(
            result
        )
    flag = F.lower(F.trim(text))
    for value, label in bools.items():
        word = "true" if value else "false"
        result = F.when(~text.isin(texts) & (flag == word), F.lit(label)).otherwise(result)
    return result


def cast_to_contract(sdf: Any, columns: Mapping[str, ColumnParams]) -> tuple[Any, dict[str, Any]]:
    """Contract columns cast to their Spark types; values that do not convert become null.

    Returns the cast frame and, per numeric column read as text, the predicate of the rows
    whose value did not convert (a dtype failure, as on the pandas engine).
    """
    from pyspark.sql import functions as F

    types = dict(sdf.dtypes)
    failed: dict[str, Any] = {}
    selected = []
    for name in sdf.columns:
        c = F.col(f"`{name}`")
        col = columns.get(name)
        if col is None:
            selected.append(c)
            continue
        dtype, type_name = col["dtype"], types[name]
        numeric = type_name.startswith(_NUMERIC_TYPES)
        if dtype in ("int", "float"):
            target = "bigint" if dtype == "int" else "double"
            if numeric:
                cast = c.cast(target)
            else:
                # Text that does not spell a number fails the dtype check, like pandas'
                # to_numeric(errors="coerce") on the pandas engine.
                cast = c.try_cast("double")
                failed[name] = c.isNotNull() & cast.isNull()
                cast = cast.cast(target) if dtype == "int" else cast
            selected.append(cast.alias(name))
        elif dtype == "category" or (dtype == "str" and col["allowed"]):
            selected.append(_as_category(c, type_name, col["allowed"]).alias(name))
        elif dtype == "str":
            selected.append(
                _text(c, type_name).alias(name) if numeric else c.cast("string").alias(name)
            )
        elif dtype == "bool":
            selected.append(c.cast("boolean").alias(name))
        else:
            selected.append(F.to_timestamp(c).alias(name))
    return sdf.select(*selected), failed


def build_schema(columns: Mapping[str, ColumnParams]) -> Any:
    """A `pandera.pyspark` schema for the contract (uniqueness is checked apart, per column)."""
    import pandera.pyspark as pa

    cols = {}
    for name, col in sorted(columns.items()):
        checks = []
        if col["min"] is not None:
            checks.append(pa.Check.ge(col["min"]))
        if col["max"] is not None:
            checks.append(pa.Check.le(col["max"]))
        if col["allowed"] is not None:
            allowed = (
                allowed_texts(col["allowed"])
                if col["dtype"] in ("category", "str")
                else list(col["allowed"])
            )
            checks.append(pa.Check.isin(allowed))
        if col["regex"]:
            checks.append(pa.Check.str_matches(col["regex"]))
        cols[name] = pa.Column(_spark_type(col["dtype"]), checks=checks, nullable=col["nullable"])
    return pa.DataFrameSchema(cols, strict=False, coerce=False)


def _predicate(column: str, check: str, col: ColumnParams) -> Any | None:
    """The rows failing pandera's `check` on `column`, as a Spark predicate (None: no rows)."""
    from pyspark.sql import functions as F

    c = F.col(f"`{column}`")
    if check == "not_nullable":
        return c.isNull()
    if check.startswith("greater_than_or_equal_to("):
        return c < F.lit(col["min"])
    if check.startswith("less_than_or_equal_to("):
        return c > F.lit(col["max"])
    if check.startswith("isin("):
        allowed = (
            allowed_texts(col["allowed"] or ())
            if col["dtype"] in ("category", "str")
            else list(col["allowed"] or ())
        )
        return ~c.isin(allowed)
    if check.startswith("str_matches("):
        pattern = str(col["regex"])
        return ~c.rlike(pattern if pattern.startswith("^") else f"^{pattern}")
    return None


def _pandera_report(sdf: Any, columns: Mapping[str, ColumnParams]) -> list[tuple[str, str, str]]:
    """`(column, check, error)` for each check pandera.pyspark reports as failed."""
    from pandera.config import ValidationDepth, config_context

    with config_context(validation_depth=ValidationDepth.SCHEMA_AND_DATA):
        checked = build_schema(columns).validate(sdf)
    errors = checked.pandera.errors or {}
    found = []
    for by_kind in errors.values():
        for entries in by_kind.values():
            for e in entries:
                found.append((str(e.get("column") or "<table>"), str(e["check"]), str(e["error"])))
    return sorted(set(found))


def _join(frames_by_name: dict[str, Any], order: list[str], join_on: dict[str, list[str]]) -> Any:
    base = frames_by_name[order[0]]
    for name in order[1:]:
        keys = join_on.get(name) or []
        other = frames_by_name[name]
        missing = [k for k in keys if k not in base.columns or k not in other.columns]
        if not keys or missing:
            raise StepError(
                STEP,
                f"cannot join source '{name}': key columns {missing or keys} are missing",
                "set data.sources[].join_on to shared columns",
            )
        # pandas' merge suffixes clashing columns of the joined source: the same names here.
        for c in other.columns:
            if c in base.columns and c not in keys:
                other = other.withColumnRenamed(c, f"{c}_{name}")
        base = base.join(other, on=keys, how="left")
    return base


def _describe(
    column: str, check: str, count: int, example: str, columns: Mapping[str, ColumnParams]
) -> str:
    rows = f"{count} row" + ("" if count == 1 else "s")
    if check.startswith("isin("):
        declared = columns[column]["allowed"] if column in columns else None
        allowed = ", ".join(value_text(a) for a in declared or ())
        return f"{column}: value {example} not in allowed [{allowed}] ({rows})"
    if column == "<table>" or not example:
        return f"{column}: {check} ({rows})"
    return f"{column}: {check} failed, e.g. value {example} ({rows})"


def _write_quarantine(bad: Any, report_loc: str) -> None:
    """The failing rows as `quarantine.csv` in the report, written by Spark in one file."""
    fs, root = artifacts._fs(report_loc)
    tmp = f"{report_loc.rstrip('/')}/.quarantine"
    bad.coalesce(1).write.mode("overwrite").csv(tmp, header=True)
    parts = [p for p in fs.ls(f"{root.rstrip('/')}/.quarantine") if str(p).endswith(".csv")]
    fs.mv(parts[0], f"{root.rstrip('/')}/quarantine.csv")
    fs.rm(f"{root.rstrip('/')}/.quarantine", recursive=True)


def run(
    params: ValidateParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    from pyspark.sql import functions as F

    contract = params["contract"]
    columns = contract["columns"]
    policy = contract["on_failure"]
    spark = session(params.get("spark"), STEP)
    order = list(params["sources"])
    loaded = {name: frames.load(spark, inputs, name, STEP) for name in order}
    try:
        joined = _join(loaded, order, params["join_on"])
        sdf, dtype_failed = cast_to_contract(joined, columns)
        reported = _pandera_report(sdf, columns)
    except StepError:
        raise
    except Exception as exc:  # py4j and analysis errors
        raise StepError(STEP, f"spark failed checking the contract: {first_line(exc)}") from exc

    # (column, check) -> predicate of the failing rows; None for a table-level failure.
    preds: dict[tuple[str, str], Any] = {}
    for name, pred in dtype_failed.items():
        preds[(name, f"dtype('{columns[name]['dtype']}')")] = pred
    table_level: list[str] = []
    for column, check, _error in reported:
        col = columns.get(column)
        pred = _predicate(column, check, col) if col is not None else None
        if pred is None:
            if col is not None and column in dtype_failed:
                continue  # the values that did not convert are already failures
            table_level.append(f"{column}: {check}")
            preds[(column, check)] = None
        else:
            preds[(column, check)] = F.coalesce(pred, F.lit(False))
    flags: list[str] = []
    for i, (name, col) in enumerate(sorted(columns.items())):
        if col["unique"] and name in sdf.columns:
            c = F.col(f"`{name}`")
            dupes = sdf.groupBy(c.alias("_k")).count().where("count > 1").select("_k")
            if dupes.limit(1).count():
                # Flag the duplicated keys' rows by a join: the keys never reach the driver.
                flag = f"_mlc_dup{i}"
                marked = dupes.withColumn(flag, F.lit(True))
                sdf = sdf.join(marked, sdf[f"`{name}`"].eqNullSafe(marked["_k"]), "left")
                sdf = sdf.drop("_k")
                preds[(name, "field_uniqueness")] = F.coalesce(F.col(flag), F.lit(False))
                flags.append(flag)

    row_preds = {k: p for k, p in preds.items() if p is not None}
    any_bad = F.lit(False)
    for p in row_preds.values():
        any_bad = any_bad | p
    sdf = sdf.withColumn(ROW, F.monotonically_increasing_id()).cache()
    aggs = [F.count(F.lit(1)).alias("rows"), F.sum(any_bad.cast("long")).alias("bad")]
    keys = list(row_preds)
    for i, (column, _check) in enumerate(keys):
        p = row_preds[(column, _check)]
        aggs.append(F.sum(p.cast("long")).alias(f"n{i}"))
        aggs.append(F.min(F.when(p, F.col(f"`{column}`").cast("string"))).alias(f"e{i}"))
    counted = sdf.agg(*aggs).collect()[0]
    rows_in = int(counted["rows"])
    bad_rows = int(counted["bad"] or 0)
    summary_checks = []
    for i, (column, check) in enumerate(keys):
        n = int(counted[f"n{i}"] or 0)
        if n == 0:
            continue
        example = counted[f"e{i}"]
        example_text = value_text(example) if example is not None else ""
        summary_checks.append(
            {
                "column": column,
                "check": check,
                "count": n,
                "examples": [example_text] if example_text else [],
                "message": _describe(column, check, n, example_text, columns),
            }
        )
    for column, check in sorted(k for k, p in preds.items() if p is None):
        summary_checks.append(
            {
                "column": column,
                "check": check,
                "count": 1,
                "examples": [],
                "message": _describe(column, check, 1, "", columns),
            }
        )
    summary_checks.sort(key=lambda c: (c["column"], c["check"]))
    failed = bool(summary_checks)
    named = "; ".join(str(c["message"]) for c in summary_checks)
    report: dict[str, Any] = {
        "passed": not failed,
        "on_failure": policy,
        "rows_in": rows_in,
        "failing_rows": bad_rows,
        "checks": summary_checks,
        "engine": "spark",
    }
    report_loc = out(outputs, "report", STEP)
    if bad_rows:
        kept = [c for c in sdf.columns if c != ROW and c not in flags]
        bad = sdf.where(any_bad).select(ROW, *kept)
        _write_quarantine(bad, report_loc)
    clean = sdf
    rows_out = rows_in
    if failed and policy == "quarantine":
        if table_level:
            report["rows_out"] = 0
            artifacts.save_json(report_loc, "report", report, "report", passed=False)
            raise StepError(
                STEP,
                "data contract failures that no row can be quarantined for: "
                + ", ".join(sorted(table_level)),
                "fix the data or the contract (data.contract.columns)",
            )
        clean = sdf.where(~any_bad)
        rows_out = rows_in - bad_rows
    report["rows_out"] = rows_out
    artifacts.save_json(
        report_loc, "report", report, "report", passed=not failed, failing_rows=bad_rows
    )
    if failed and policy == "stop":
        raise StepError(
            STEP,
            f"data contract failed on {bad_rows} rows: {named}",
            "fix the data, or set data.contract.on_failure: quarantine",
        )
    if failed and policy == "warn":
        ctx.logger.warning("step 'validate': data contract failures (on_failure: warn): %s", named)
    if failed and policy == "quarantine" and rows_out == 0:
        raise StepError(STEP, f"every row failed the data contract: {named}")
    digest, _ = frames.save(out(outputs, "dataset", STEP), clean.drop(ROW, *flags), STEP)
    sdf.unpersist()
    return {
        "rows_in": rows_in,
        "rows_out": rows_out,
        "quarantined": bad_rows if policy == "quarantine" else 0,
        "failures": named or "none",
        "hash": digest,
    }
