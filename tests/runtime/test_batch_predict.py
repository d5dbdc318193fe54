"""batch_predict: a registered model (real MLflow sqlite store) scores CSV/Parquet in batches."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlc.runtime import artifacts, drift
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps import batch_predict, register

ROWS = 500
FEATURES = ["age", "income", "region", "purpose"]
REGIONS = ["north", "south", "east", "west"]
PURPOSES = ["car", "home", "education"]


def _col(dtype: str, **kw: Any) -> dict[str, Any]:
    base = {
        "dtype": dtype,
        "nullable": False,
        "min": None,
        "max": None,
        "allowed": None,
        "unique": False,
        "regex": None,
        "pii": False,
        "description": "",
    }
    return {**base, **kw}


def _contract(on_failure: str = "stop", target: str = "default") -> dict[str, Any]:
    return {
        "on_failure": on_failure,
        "columns": {
            "applicant_id": _col("int", unique=True),
            "age": _col("int", min=18, max=100),
            "income": _col("float", min=0),
            "region": _col("category", allowed=REGIONS),
            "purpose": _col("category", allowed=PURPOSES),
            target: _col("int", allowed=[0, 1]) if target == "default" else _col("float"),
        },
    }


def _frame(seed: int, rows: int = ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "applicant_id": np.arange(100000, 100000 + rows),
            "age": rng.integers(18, 90, rows),
            "income": rng.lognormal(10, 0.5, rows).round(2),
            "region": rng.choice(REGIONS, rows),
            "purpose": rng.choice(PURPOSES, rows),
        }
    )
    score = (df["age"] - 50) / 20 + np.log(df["income"]) - 10 + (df["region"] == "east")
    df["default"] = (score + rng.normal(0, 0.5, rows) > 0).astype(int)
    df["amount"] = 0.3 * df["income"] + 50 * df["age"] + rng.normal(0, 100, rows)
    return df


def _pipeline(regression: bool) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from mlc.runtime.steps._transforms import LogTransform

    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age"]),
            ("log", Pipeline([("log", LogTransform()), ("scale", StandardScaler())]), ["income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["region", "purpose"]),
        ]
    )
    est = LinearRegression() if regression else LogisticRegression(max_iter=500)
    return Pipeline([("prep", prep), ("est", est)])


def _register(root: Path, name: str, model: Any, task: str, target: str) -> str:
    locs = {n: str(root / f"{name}-{n}") for n in ("model", "metrics", "verdict")}
    artifacts.save_object(locs["model"], model, "model")
    artifacts.save_json(locs["metrics"], "metrics", {"metrics": {"score": 0.8}}, "metrics")
    artifacts.save_json(locs["verdict"], "verdict", {"passed": True}, "verdict", passed=True)
    params = {
        "model_name": name,
        "promotion": {"policy": "auto", "min_improvement": 0.0},
        "approvers": [],
        "contract": _contract(target=target),
        "target": target,
        "task": task,
        "model": {"name": type(model[-1]).__name__, "params": {}},
        "tuning_storage": None,
    }
    ctx = StepContext(project_dir=root, run_id=f"run-{name}")
    mv = str(root / f"{name}-mv")
    register.run(params, locs, {"model_version": mv}, ctx)
    return mv


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("store")
    train = _frame(0, 400)
    clf = _pipeline(False).fit(train[FEATURES], train["default"])
    reg = _pipeline(True).fit(train[FEATURES], train["amount"])
    ref = str(root / "reference")
    artifacts.save_dataframe(ref, train.drop(columns=["amount"]))
    return {
        "root": root,
        "clf": clf,
        "reg": reg,
        "reference": ref,
        "credit": _register(root, "credit", clf, "classification", "default"),
        "amount": _register(root, "amount", reg, "regression", "amount"),
    }


def _params(input_path: Path, *, name: str = "credit", **batch: Any) -> dict[str, Any]:
    regression = name == "amount"
    settings = {
        "schedule": "0 2 * * *",
        "input": str(input_path),
        "output": "",
        "alias": "champion",
        "id_column": "applicant_id",
        "chunk_rows": 50,
        **batch,
    }
    on_failure = settings.pop("on_failure", "stop")
    return {
        "model_name": name,
        "batch": settings,
        "contract": _contract(on_failure, "amount" if regression else "default"),
        "target": "amount" if regression else "default",
        "task": "regression" if regression else "classification",
        "engine": settings.pop("engine", "pandas"),
        "drift": None,
        "features": FEATURES,
    }


def _score(store: dict[str, Any], params: dict[str, Any], out: Path) -> dict[str, Any]:
    inputs = {"model_version": store[params["model_name"]], "reference": store["reference"]}
    ctx = StepContext(project_dir=store["root"], run_id="batch")
    return batch_predict.run(params, inputs, {"predictions": str(out)}, ctx)


def _write(df: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path


def test_csv_and_parquet_predictions_equal_the_models_own(
    store: dict[str, Any], tmp_path: Path
) -> None:
    data = _frame(1).drop(columns=["default", "amount"])
    csv = _write(data, tmp_path / "in.csv")
    published = tmp_path / "published"
    summary = _score(store, _params(csv, output=str(published)), tmp_path / "out_csv")
    assert summary["version"] == "1" and summary["chosen_by"] == "alias champion"
    assert summary["rows_in"] == ROWS == summary["rows_scored"] and summary["quarantined"] == 0

    expected = pd.read_csv(csv)
    proba = store["clf"].predict_proba(expected[FEATURES])
    for folder in (tmp_path / "out_csv", published):
        got = pd.read_parquet(folder / "predictions.parquet")
        assert list(got.columns) == [
            "applicant_id",
            "prediction",
            "proba_0",
            "proba_1",
            "model_name",
            "model_version",
        ]
        assert got["applicant_id"].tolist() == expected["applicant_id"].tolist()
        np.testing.assert_allclose(got[["proba_0", "proba_1"]].to_numpy(), proba, atol=1e-12)
        assert got["prediction"].tolist() == store["clf"].predict(expected[FEATURES]).tolist()
        assert set(got["model_version"]) == {"1"} and set(got["model_name"]) == {"credit"}
    meta = artifacts.read_meta(str(tmp_path / "out_csv"))
    assert meta["type"] == "predictions" and meta["rows"] == ROWS
    assert meta["hash"] == artifacts.sha256((tmp_path / "out_csv/predictions.parquet").read_bytes())
    doc = artifacts.load_json(str(tmp_path / "out_csv"), "summary")
    assert doc["batches"] == math.ceil(ROWS / 50) and doc["rows_quarantined"] == 0
    counts = pd.Series(store["clf"].predict(expected[FEATURES])).value_counts()
    assert doc["prediction_distribution"]["counts"] == {str(k): int(v) for k, v in counts.items()}
    assert doc["model_version"] == "1" and doc["engine"] == "pandas"
    assert not list((tmp_path / "out_csv").glob(".*tmp"))

    parquet = _write(data, tmp_path / "in.parquet")
    _score(store, _params(parquet, id_column=None, chunk_rows=64), tmp_path / "out_pq")
    got = pd.read_parquet(tmp_path / "out_pq" / "predictions.parquet")
    assert got["row"].tolist() == list(range(ROWS))
    np.testing.assert_allclose(got[["proba_0", "proba_1"]].to_numpy(), proba, atol=1e-12)


def test_reader_yields_bounded_batches_in_order(tmp_path: Path) -> None:
    from mlc.runtime.batch import open_input, record_batches

    data = _frame(2)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, start in enumerate(range(0, ROWS, 120)):  # files cut across batch boundaries
        _write(data.iloc[start : start + 120], folder / f"part-{i}.parquet")
    for path in (folder, _write(data, tmp_path / "all.csv")):
        batches = list(record_batches(open_input(str(path), _contract()["columns"]), 64))
        assert len(batches) == math.ceil(ROWS / 64)
        assert all(b.num_rows == 64 for b in batches[:-1])
        ids = [v for b in batches for v in b.column("applicant_id").to_pylist()]
        assert [int(v) for v in ids] == data["applicant_id"].tolist()


def _bad_input(tmp_path: Path) -> tuple[Path, pd.DataFrame, set[int]]:
    data = _frame(3).drop(columns=["default", "amount"]).astype({"age": object})
    data.loc[7, "age"] = "old"
    data.loc[123, "age"] = 150
    data.loc[321, "region"] = "mars"
    path = _write(data, tmp_path / "bad.csv")
    raw = pd.read_csv(path)
    age = pd.to_numeric(raw["age"], errors="coerce")
    bad = raw[age.isna() | (age > 100) | ~raw["region"].isin(REGIONS)]
    return path, raw, set(bad["applicant_id"])


def test_contract_stop_writes_nothing_and_quarantine_sets_bad_rows_aside(
    store: dict[str, Any], tmp_path: Path
) -> None:
    path, raw, bad_ids = _bad_input(tmp_path)
    assert len(bad_ids) == 3
    with pytest.raises(StepError) as err:
        _score(store, _params(path), tmp_path / "stop")
    text = str(err.value)
    assert "age" in text and "contract" in text and "100007" in text
    assert not (tmp_path / "stop" / "predictions.parquet").exists()
    assert not list((tmp_path / "stop").glob(".*tmp"))

    summary = _score(store, _params(path, on_failure="quarantine"), tmp_path / "q")
    quarantined = pd.read_parquet(tmp_path / "q" / "quarantine.parquet")
    assert set(quarantined["applicant_id"].astype(int)) == bad_ids
    assert quarantined["quarantine_reason"].str.len().min() > 0
    reasons = dict(
        zip(quarantined["applicant_id"].astype(int), quarantined["quarantine_reason"], strict=True)
    )
    assert "region" in reasons[int(raw.loc[321, "applicant_id"])]
    assert summary["quarantined"] == 3 and summary["rows_scored"] == ROWS - 3
    got = pd.read_parquet(tmp_path / "q" / "predictions.parquet")
    good = raw[~raw["applicant_id"].isin(bad_ids)].astype({"age": "int64"})
    assert got["applicant_id"].tolist() == good["applicant_id"].tolist()
    np.testing.assert_allclose(
        got["proba_1"].to_numpy(), store["clf"].predict_proba(good[FEATURES])[:, 1], atol=1e-12
    )


def test_a_failure_in_a_late_batch_leaves_no_predictions(
    store: dict[str, Any], tmp_path: Path
) -> None:
    data = _frame(9).drop(columns=["default", "amount"]).astype({"income": object})
    data.loc[480, "income"] = "n/a"
    path = _write(data, tmp_path / "late.csv")
    out = tmp_path / "out"
    with pytest.raises(StepError) as err:
        _score(store, _params(path, on_failure="stop"), out)
    assert "income" in str(err.value) and "rows 450..499" in str(err.value)
    # warn scores the bad row too, and the model cannot take it: nine batches were written
    with pytest.raises(StepError, match=r"could not score rows 450\.\.499"):
        _score(store, _params(path, on_failure="warn"), out)
    assert sorted(p.name for p in out.iterdir()) == []


def test_missing_alias_names_the_aliases_that_exist(store: dict[str, Any], tmp_path: Path) -> None:
    path = _write(_frame(4).head(20), tmp_path / "in.csv")
    with pytest.raises(StepError) as err:
        _score(store, _params(path, alias="production"), tmp_path / "out")
    text = str(err.value)
    assert "'production'" in text and "champion -> v1" in text and "challenger -> v1" in text
    assert not (tmp_path / "out" / "predictions.parquet").exists()

    ctx = StepContext(project_dir=store["root"], extra={"model_version": "1"})
    inputs = {"model_version": store["credit"], "reference": store["reference"]}
    summary = batch_predict.run(
        _params(path, alias="production"), inputs, {"predictions": str(tmp_path / "v1")}, ctx
    )
    assert summary["version"] == "1" and summary["chosen_by"] == "version 1 asked for"
    ctx.extra["model_version"] = "9"
    with pytest.raises(StepError, match="no version 9"):
        batch_predict.run(_params(path), inputs, {"predictions": str(tmp_path / "v9")}, ctx)


def test_warn_scores_every_row_and_counts_the_failing_ones(
    store: dict[str, Any], tmp_path: Path
) -> None:
    data = _frame(7).drop(columns=["default", "amount"])
    data.loc[[3, 40, 41], "age"] = 120
    path = _write(data, tmp_path / "in.parquet")
    summary = _score(store, _params(path, on_failure="warn"), tmp_path / "out")
    assert summary["rows_scored"] == ROWS and summary["quarantined"] == 0
    doc = artifacts.load_json(str(tmp_path / "out"), "summary")
    assert doc["rows_failing_contract"] == 3
    assert [c["count"] for c in doc["checks"] if c["column"] == "age"] == [3]
    got = pd.read_parquet(tmp_path / "out" / "predictions.parquet")
    np.testing.assert_allclose(
        got["proba_1"], store["clf"].predict_proba(data[FEATURES])[:, 1], atol=1e-12
    )
    assert not (tmp_path / "out" / "quarantine.parquet").exists()


def test_drift_of_a_shifted_column_is_the_monitor_psi(
    store: dict[str, Any], tmp_path: Path
) -> None:
    data = _frame(5).drop(columns=["default", "amount"])
    data["income"] = data["income"] * 3
    path = _write(data, tmp_path / "shifted.parquet")
    _score(store, _params(path), tmp_path / "out")
    doc = artifacts.load_json(str(tmp_path / "out"), "drift")
    scores = {r["feature"]: r["score"] for r in doc["drift"]}
    assert scores["income"] > 0.2 > scores["age"]
    assert doc["drifted"] == ["income"] and doc["sample"] == "all scored rows"
    reference = artifacts.load_dataframe(store["reference"])
    assert scores["income"] == pytest.approx(drift.psi(reference["income"], data["income"]), 1e-12)
    assert scores["age"] == pytest.approx(drift.psi(reference["age"], data["age"]), 1e-12)


def test_reservoir_is_a_uniform_sample_of_fixed_size() -> None:
    from mlc.runtime.batch import Reservoir

    res = Reservoir(size=100, seed=1)
    for start in range(0, 10_000, 333):
        res.add(pd.DataFrame({"v": np.arange(start, min(start + 333, 10_000))}))
    sample = res.frame()["v"].to_numpy()
    assert len(sample) == 100 == len(set(sample.tolist())) and res.seen == 10_000
    assert not res.exact
    assert 3_000 < sample.mean() < 7_000  # not just the first rows


def test_regression_predictions_and_quantiles(store: dict[str, Any], tmp_path: Path) -> None:
    data = _frame(6).drop(columns=["default", "amount"])
    path = _write(data, tmp_path / "in.csv")
    _score(store, _params(path, name="amount", chunk_rows=70), tmp_path / "out")
    got = pd.read_parquet(tmp_path / "out" / "predictions.parquet")
    assert list(got.columns) == ["applicant_id", "prediction", "model_name", "model_version"]
    expected = store["reg"].predict(pd.read_csv(path)[FEATURES])
    np.testing.assert_allclose(got["prediction"].to_numpy(), expected, rtol=1e-12)
    dist = artifacts.load_json(str(tmp_path / "out"), "summary")["prediction_distribution"]
    for q, value in dist["quantiles"].items():
        assert value == pytest.approx(float(np.quantile(expected, float(q))), rel=1e-12)
    assert dist["mean"] == pytest.approx(float(expected.mean()), rel=1e-12)
    assert dist["min"] == pytest.approx(float(expected.min()))


@pytest.mark.slow
def test_spark_engine_equals_pandas_engine(store: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    from mlc.runtime.batch import _spark

    path, _, bad_ids = _bad_input(tmp_path)
    params = _params(path, on_failure="quarantine", id_column=None)
    pandas_summary = _score(store, params, tmp_path / "pd")
    spark = _spark()
    # small splits: several partitions, so row numbers must continue across them
    spark.conf.set("spark.sql.files.maxPartitionBytes", "4096")
    try:
        spark_summary = _score(store, {**params, "engine": "spark"}, tmp_path / "spark")
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    want = pd.read_parquet(tmp_path / "pd" / "predictions.parquet")
    got = pd.read_parquet(tmp_path / "spark" / "predictions.parquet")
    got = got.sort_values("row").reset_index(drop=True)
    assert list(got.columns) == list(want.columns)
    assert got["row"].tolist() == want["row"].tolist()
    np.testing.assert_allclose(got["proba_1"], want["proba_1"], atol=1e-9, rtol=0)
    assert got["prediction"].tolist() == want["prediction"].tolist()
    assert len(list((tmp_path / "spark" / "predictions.parquet").glob("part-*.parquet"))) > 1
    quarantined = pd.read_parquet(tmp_path / "spark" / "quarantine.parquet")
    assert set(quarantined["applicant_id"].astype(int)) == bad_ids
    pandas_quarantine = pd.read_parquet(tmp_path / "pd" / "quarantine.parquet")
    assert sorted(quarantined["row"]) == pandas_quarantine["row"].tolist()
    for key in ("rows_in", "rows_scored", "quarantined"):
        assert spark_summary[key] == pandas_summary[key]


def test_the_compilers_params_relative_output_and_store_from_the_doc(
    store: dict[str, Any], tmp_path: Path
) -> None:
    from support import CREDIT
    from support.runtime import ir_of

    from mlc.compiler.ir.model import StepKind

    step = ir_of(CREDIT, ("+serving=batch",)).first(StepKind.BATCH_PREDICT)
    assert step is not None and set(step.inputs) == {"model_version", "reference"}
    data = _frame(8).drop(columns=["default", "amount"])
    path = _write(data, tmp_path / "in.csv")
    params = {
        **step.params,
        "model_name": "credit",
        "contract": _contract("quarantine"),
        "features": FEATURES,
        "batch": {**step.params["batch"], "input": str(path)},  # output stays out/batch
    }
    # project_dir is not the store's: the store comes from the model_version document
    ctx = StepContext(project_dir=tmp_path, run_id="ir")
    inputs = {"model_version": store["credit"], "reference": store["reference"]}
    summary = batch_predict.run(params, inputs, {"predictions": str(tmp_path / "art")}, ctx)
    assert summary["published"] == str(tmp_path / "out" / "batch")
    assert not (tmp_path / ".mlc" / "mlflow.db").exists()
    for folder in (tmp_path / "art", tmp_path / "out" / "batch"):
        got = pd.read_parquet(folder / "predictions.parquet")
        np.testing.assert_allclose(
            got["proba_1"], store["clf"].predict_proba(data[FEATURES])[:, 1], atol=1e-12
        )
    drift_doc = artifacts.load_json(str(tmp_path / "art"), "drift")
    rows = {r["feature"]: r for r in drift_doc["drift"]}
    assert set(rows) == {"income", "debt", "age", "debt_ratio"}
    assert rows["debt"]["missing"] == ["reference", "current"] and rows["income"]["score"] >= 0
