"""Data correctness on small generated tables: integer categories (issue 11 item 4), minimum
sample sizes at the split (item 5) and derived targets (item 7)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support.runtime import ir_of, run_pipeline

from mlc.compiler.diagnostics import DiagnosticError, Severity
from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError

MLC = [sys.executable, "-c", "from mlc.compiler.cli import main; main()"]


def _spec(
    columns: str,
    target: str = "y",
    split: str = "{method: stratified, test_size: 0.25, seed: 1}",
    extra: str = "",
    derived: str = "",
    exclude: str = "[id]",
    metrics: str = "[accuracy]",
    gates: str = "[{metric: accuracy, op: '>=', threshold: 0.0}]",
) -> str:
    return f"""apiVersion: mlc/v1
name: small
data:
  sources: [{{name: main, format: csv, path: data.csv}}]
  contract:
    columns:
{columns}
  split: {split}
features:
  target: {target}
{derived}  selection: {{exclude: {exclude}}}
training:
  framework: sklearn
  task: classification
  model: {{name: LogisticRegression, params: {{max_iter: 300}}}}
evaluation:
  metrics: {metrics}
  gates: {gates}
{extra}"""


def _project(tmp_path: Path, spec: str, df: pd.DataFrame) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    df.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "mlc.yaml").write_text(spec, encoding="utf-8")
    return tmp_path / "mlc.yaml"


def _ctx(tmp_path: Path) -> StepContext:
    return StepContext(project_dir=tmp_path, state_dir=tmp_path / ".mlc")


def _frame(n: int, seed: int = 0, classes: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "x": rng.normal(size=n).round(4),
            "y": np.arange(n) % classes,
        }
    )


_XY = """      id: {dtype: int, unique: true}
      x: {dtype: float}
      y: {dtype: int}"""


# -- item 4: integer categories ------------------------------------------------------------------


def test_integer_categories_pass_and_keep_their_values(tmp_path: Path) -> None:
    df = _frame(80)
    rng = np.random.default_rng(1)
    df["grade"] = rng.integers(0, 4, len(df))
    # A gap makes pandas read the column as floats (0.0, 1.0, ...), the form that failed.
    df["level"] = rng.integers(1, 3, len(df)).astype(float)
    df.loc[3, "level"] = np.nan
    columns = (
        _XY
        + "\n      grade: {dtype: category, allowed: [0, 1, 2, 3]}"
        + "\n      level: {dtype: category, allowed: [1, 2], nullable: true}"
    )
    spec = _project(tmp_path, _spec(columns), df)
    summaries = run_pipeline(ir_of(spec), tmp_path, _ctx(tmp_path), until="validate")
    assert summaries["validate"]["rows_out"] == 80
    assert summaries["validate"]["failures"] == "none"
    clean = artifacts.load_dataframe(str(tmp_path / "validate.dataset"))
    assert clean["grade"].tolist() == [str(v) for v in df["grade"]]
    expected_level = [None if np.isnan(v) else str(int(v)) for v in df["level"]]
    assert clean["level"].tolist() == expected_level


def test_allowed_failure_quotes_the_value_and_the_row_count(tmp_path: Path) -> None:
    df = _frame(60)
    df["grade"] = np.arange(60) % 4
    bad = [5, 17, 40]
    df.loc[bad, "grade"] = 7
    columns = _XY + "\n      grade: {dtype: category, allowed: [0, 1, 2, 3]}"
    spec = _project(tmp_path, _spec(columns), df)
    with pytest.raises(StepError) as err:
        run_pipeline(ir_of(spec), tmp_path, _ctx(tmp_path), until="validate")
    assert "grade: value 7 not in allowed [0, 1, 2, 3] (3 rows)" in str(err.value)
    assert "failed on 3 rows" in str(err.value)
    quarantine = pd.read_csv(tmp_path / "validate.report" / "quarantine.csv", index_col=0)
    assert sorted(quarantine.index) == bad


def test_allowed_values_match_in_their_declared_type(tmp_path: Path) -> None:
    from mlc.runtime.steps import get

    df = pd.DataFrame(
        {
            "zone": ["01", "1", "01", "1"],  # declared text: "01" and "1" stay two values
            "ok": ["true", "False", "TRUE", "false"],
            "code": [1.0, 2.0, 2.5, 1.0],  # 2.5 is no declared integer
        }
    )
    artifacts.save_dataframe(str(tmp_path / "raw"), df)
    plain = {
        "nullable": False,
        "min": None,
        "max": None,
        "unique": False,
        "regex": None,
        "pii": False,
        "description": "",
    }
    columns = {
        "zone": {**plain, "dtype": "category", "allowed": ["01", "1"]},
        "ok": {**plain, "dtype": "category", "allowed": [True, False]},
        "code": {**plain, "dtype": "category", "allowed": [1, 2]},
    }
    params = {
        "contract": {"columns": columns, "on_failure": "quarantine"},
        "engine": "pandas",
        "sources": ["raw"],
        "join_on": {},
    }
    outs = {"dataset": str(tmp_path / "ok"), "report": str(tmp_path / "rep")}
    summary = get("validate")(params, {"raw": str(tmp_path / "raw")}, outs, StepContext())
    assert summary["failures"] == "code: value 2.5 not in allowed [1, 2] (1 row)"
    clean = artifacts.load_dataframe(outs["dataset"])
    assert clean["zone"].tolist() == ["01", "1", "1"]
    assert clean["ok"].tolist() == ["true", "false", "false"]
    assert clean["code"].tolist() == ["1", "2", "1"]


def _located(spec: Path, column: str) -> tuple[int, int]:
    """Line and column (1-based) of the `allowed` key in `column`'s contract line."""
    for number, line in enumerate(spec.read_text().splitlines(), start=1):
        if line.strip().startswith(f"{column}:"):
            return number, line.index("allowed:") + 1
    raise AssertionError(column)


def test_validate_warns_when_allowed_values_cannot_match_the_dtype(tmp_path: Path) -> None:
    from mlc.compiler.api import check

    columns = (
        _XY
        + "\n      code: {dtype: int, allowed: [a, b]}"
        + "\n      ok_int: {dtype: int, allowed: [1, 2]}"
        + "\n      flag: {dtype: bool, allowed: [2]}"
        + "\n      grade: {dtype: category, allowed: [0, 1]}"
    )
    spec = _project(tmp_path, _spec(columns), _frame(10))
    result = check(spec)
    warned = [d for d in result.diagnostics if d.code == "MLC312"]
    assert result.ok and all(d.severity is Severity.WARNING for d in warned)
    assert sorted(d.path for d in warned) == [
        "data.contract.columns.code.allowed",
        "data.contract.columns.flag.allowed",
    ]
    for d in warned:
        column = d.path.split(".")[3]
        assert d.location is not None and d.location.file.endswith("mlc.yaml")
        assert (d.location.line, d.location.col) == _located(spec, column)
    assert "'a', 'b'" in next(d.message for d in warned if "code" in d.path)
    out = subprocess.run(
        [*MLC, "validate", str(spec)], capture_output=True, text=True, check=False, timeout=120
    )
    line, col = _located(spec, "flag")
    assert out.returncode == 0
    assert f"mlc.yaml:{line}:{col}: warning[MLC312]" in out.stderr


# -- item 5: too little data ---------------------------------------------------------------------


def test_a_32_row_table_stops_at_the_split_naming_the_counts(tmp_path: Path) -> None:
    spec = _project(tmp_path, _spec(_XY, split="{method: random, test_size: 0.2}"), _frame(32))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [*MLC, "run", str(spec)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=env,
    )
    n_test = round(32 * 0.2)
    assert out.returncode == 4, out.stderr[-2000:]
    assert f"test split has {n_test} rows; at least 30 are needed" in out.stderr
    assert "data.split.minimum.test_rows" in out.stderr
    assert f"train split has {32 - n_test} rows; at least 30" in out.stderr
    assert "Traceback" not in out.stderr
    # nothing was trained on it
    assert "✓ train" not in out.stderr + out.stdout


def test_minimums_are_overridable_and_warn_mode_goes_on(tmp_path: Path) -> None:
    spec = _project(tmp_path, _spec(_XY, split="{method: random, test_size: 0.2}"), _frame(32))
    lowered = (
        "+data.split.minimum.test_rows=5",
        "+data.split.minimum.train_rows=20",
        "+data.split.minimum.per_class=2",
    )
    summaries = run_pipeline(ir_of(spec, lowered), tmp_path, _ctx(tmp_path), until="split")
    assert summaries["split"]["test"] == 6 and "shortfalls" not in summaries["split"]
    warned = run_pipeline(
        ir_of(spec, ("+data.split.minimum.enforce=warn",)), tmp_path, _ctx(tmp_path), until="split"
    )
    assert warned["split"]["shortfalls"][0].startswith("train split has 26 rows")
    with pytest.raises(DiagnosticError) as err:
        ir_of(spec, ("+data.split.minimum.test_rows=0",))
    assert "data.split.minimum.test_rows" in str(err.value.diagnostics[0].path) + str(
        err.value.diagnostics[0].render()
    )


def test_seven_classes_are_counted_per_split_and_per_fold(tmp_path: Path) -> None:
    sizes = [60, 50, 40, 30, 20, 12, 6]
    y = np.repeat(np.arange(7), sizes)
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"id": np.arange(len(y)), "x": rng.normal(size=len(y)).round(4), "y": y})
    extra = """tuning:
  objective: {metric: accuracy}
  search_space: {C: {type: float, low: 0.1, high: 10.0}}
  trials: 1
  cv_folds: 3
"""
    spec = _project(tmp_path, _spec(_XY, extra=extra), df)
    ir = ir_of(spec, ("+data.split.minimum.enforce=warn",))
    short = run_pipeline(ir, tmp_path, _ctx(tmp_path), until="split")["split"]["shortfalls"]
    train = artifacts.load_dataframe(str(tmp_path / "split.train"))["y"].value_counts()
    test = artifacts.load_dataframe(str(tmp_path / "split.test"))["y"].value_counts()

    def listed(counts: dict[int, int], least: int, unit: str = "rows") -> str:
        low = sorted((n, c) for c, n in counts.items() if n < least)
        return ", ".join(f"class {c} has {n} {unit if n != 1 else unit[:-1]}" for n, c in low)

    test_counts = {c: int(test.get(c, 0)) for c in range(7)}
    train_counts = {c: int(train.get(c, 0)) for c in range(7)}
    fold_counts = {c: n // 3 for c, n in train_counts.items()}
    assert listed(test_counts, 5)  # the data was made so that some test classes fall short
    expected = [f"test split: {listed(test_counts, 5)}; at least 5 rows per class are needed"]
    if listed(train_counts, 5):
        expected.insert(0, f"train split: {listed(train_counts, 5)}; at least 5 rows per")
    expected.append(
        f"tuning's 3-fold cross-validation of the train split: {listed(fold_counts, 5)} per fold"
    )
    assert len(short) == len(expected)
    for line, start in zip(short, expected, strict=True):
        assert line.startswith(start), (line, start)
    with pytest.raises(StepError, match="rows per class are needed"):
        run_pipeline(ir_of(spec), tmp_path, _ctx(tmp_path), until="split")


def test_sensitive_groups_are_counted_in_the_test_split(tmp_path: Path) -> None:
    n = 400
    rng = np.random.default_rng(5)
    df = _frame(n)
    df["region"] = np.where(np.arange(n) < 40, "island", "mainland")
    df["y"] = rng.integers(0, 2, n)
    columns = _XY + "\n      region: {dtype: category, allowed: [island, mainland]}"
    extra = """governance:
  fairness: {sensitive_attributes: [region], metric: demographic_parity_difference, threshold: 0.5}
"""
    spec = _project(tmp_path, _spec(columns, extra=extra, exclude="[id, region]"), df)
    with pytest.raises(StepError) as err:
        run_pipeline(ir_of(spec), tmp_path, _ctx(tmp_path), until="split")
    run_pipeline(
        ir_of(spec, ("+data.split.minimum.enforce=warn",)), tmp_path, _ctx(tmp_path), until="split"
    )
    test = artifacts.load_dataframe(str(tmp_path / "split.test"))
    island = int((test["region"] == "island").sum())
    assert island < 20
    assert f"test split: region group island has {island} rows; at least 20" in str(err.value)
    assert "data.split.minimum.per_group" in str(err.value)


# -- item 7: derived targets ---------------------------------------------------------------------


def _late_orders(n: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    distance = rng.uniform(1, 50, n).round(2)
    late = rng.uniform(size=n) < distance / 60
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "distance": distance,
            "days_late": np.where(late, rng.integers(1, 5, n), 0),
        }
    )


_LATE = """      id: {dtype: int, unique: true}
      distance: {dtype: float, min: 0}
      days_late: {dtype: int, min: 0}"""
_DERIVED = "  derived:\n    - {name: is_late, expr: days_late > 0, inputs: [days_late]}\n"


def test_a_derived_target_is_computed_before_the_split_and_never_a_feature(
    tmp_path: Path,
) -> None:
    from mlc.compiler.api import check

    spec = _project(
        tmp_path,
        _spec(_LATE, target="is_late", derived=_DERIVED, exclude="[id, days_late]"),
        _late_orders(),
    )
    result = check(spec)
    assert result.ok, [d.render() for d in result.diagnostics]
    assert not [d for d in result.diagnostics if d.code in ("MLC201", "MLC208")]
    ir = result.ir
    assert ir.step("split").params["derived_target"]["expr"] == "days_late > 0"
    assert [d["name"] for d in ir.step("features").params["derived"]] == []
    summaries: dict[str, Any] = run_pipeline(ir, tmp_path, _ctx(tmp_path))
    assert summaries["gate"]["passed"] in (True, False)
    df = _late_orders()
    expected = (df["days_late"] > 0).astype(int)
    parts = {n: artifacts.load_dataframe(str(tmp_path / f"split.{n}")) for n in ("train", "test")}
    for part in parts.values():
        assert part["is_late"].tolist() == expected[part["id"]].tolist()
    # stratified on the derived label: the test share of late orders matches the whole table's
    assert abs(parts["test"]["is_late"].mean() - expected.mean()) < 0.02
    transform = artifacts.load_object(str(tmp_path / "features.transform"))
    names = list(transform.get_feature_names_out())
    assert "is_late" not in names and "days_late" not in names and "distance" in names


def test_a_derived_target_whose_source_is_a_feature_warns_of_leakage(tmp_path: Path) -> None:
    from mlc.compiler.api import check

    spec = _project(tmp_path, _spec(_LATE, target="is_late", derived=_DERIVED), _late_orders(40))
    result = check(spec)
    leaks = [d for d in result.diagnostics if d.code == "MLC208"]
    assert result.ok and len(leaks) == 1 and leaks[0].severity is Severity.WARNING
    assert "'days_late'" in leaks[0].message and leaks[0].path == "features.target"
    target_line = next(
        i for i, line in enumerate(spec.read_text().splitlines(), 1) if "target:" in line
    )
    assert leaks[0].location is not None and leaks[0].location.line == target_line


def test_an_unknown_target_is_still_refused(tmp_path: Path) -> None:
    spec = _project(tmp_path, _spec(_LATE, target="is_early", derived=_DERIVED), _late_orders(40))
    with pytest.raises(DiagnosticError) as err:
        ir_of(spec)
    assert [d.code for d in err.value.diagnostics] == ["MLC201"]
