"""batch_predict: a registered model (real MLflow sqlite store) scores CSV/Parquet in batches."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support.credit_like import PURPOSES, REGIONS, column

from mlc.runtime import artifacts, drift
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps import batch_predict, register

ROWS = 500
FEATURES = ["age", "income", "region", "purpose"]


def _contract(on_failure: str = "stop", target: str = "default") -> dict[str, Any]:
    return {
        "on_failure": on_failure,
        "columns": {
            "applicant_id": column("int", unique=True),
            "age": column("int", min=18, max=100),
            "income": column("float", min=0),
            "region": column("category", allowed=REGIONS),
            "purpose": column("category", allowed=PURPOSES),
            target: column("int", allowed=[0, 1]) if target == "default" else column("float"),
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
    params: dict[str, Any] = {
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
    summary: dict[str, Any] = batch_predict.run(params, inputs, {"predictions": str(out)}, ctx)
    return summary


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
    spark = _spark(None, "batch_predict")
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


def test_csv_reader_yields_the_same_batches_as_arrows_dataset(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.dataset as ds

    from mlc.runtime.batch import CsvInput, _csv_types, open_input, record_batches

    data = _frame(10).drop(columns=["amount"])
    data["vip"] = np.arange(ROWS) % 3 == 0
    data["note"] = [f"n{i}" for i in range(ROWS)]  # outside the contract: types as inferred
    columns = {**_contract()["columns"], "vip": column("bool")}
    path = _write(data, tmp_path / "in.csv")
    assert isinstance(open_input(str(path), columns), CsvInput)
    # the reading this replaces, and small blocks so Arrow's batches cut across chunks
    fmt = ds.CsvFileFormat(
        convert_options=pacsv.ConvertOptions(
            column_types=_csv_types(columns), strings_can_be_null=True
        )
    )
    want = list(record_batches(ds.dataset(str(path), format=fmt), 64))
    reader = CsvInput(str(path), columns, block_size=2048)
    assert len(list(reader.to_batches())) > ROWS // 64  # many blocks, re-cut below
    got = list(record_batches(reader, 64))
    assert [b.num_rows for b in got] == [b.num_rows for b in want]
    assert [b.num_rows for b in got] == [64] * (ROWS // 64) + [ROWS % 64]
    assert pa.Table.from_batches(got).equals(pa.Table.from_batches(want))
    table = pa.Table.from_batches(got)
    assert table.schema.field("age").type == pa.string()
    assert table.schema.field("vip").type == pa.bool_()
    assert table.column("age").to_pylist() == [str(v) for v in data["age"]]
    assert table.column("vip").to_pylist() == data["vip"].tolist()
    assert table.column("note").to_pylist() == data["note"].tolist()


def test_a_column_outside_the_contract_changing_type_is_a_step_error(tmp_path: Path) -> None:
    from mlc.runtime.batch import CsvInput, record_batches

    data = _frame(11).drop(columns=["amount"])
    data["extra"] = [str(i) for i in range(ROWS - 1)] + ["not a number"]
    path = _write(data, tmp_path / "in.csv")
    with pytest.raises(StepError) as err:
        list(record_batches(CsvInput(str(path), _contract()["columns"], block_size=2048), 64))
    assert "in.csv" in str(err.value) and "data.contract.columns" in (err.value.hint or "")


def _scorer(model: Any, features: list[str], contract: dict[str, Any]) -> Any:
    from mlc.runtime.batch import BatchScorer

    return BatchScorer(
        model,
        contract=contract,
        features=features,
        task="classification",
        id_column=None,
        on_failure="stop",
        model_name="m",
        model_version="1",
        target="default",
    )


def test_labels_from_one_scoring_equal_each_classifiers_predict(store: dict[str, Any]) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    train, data = _frame(12, 300), _frame(13, 300)
    num = ["age", "income"]
    multi = np.where(train["age"] < 40, "young", np.where(train["age"] < 65, "mid", "old"))
    models: list[tuple[Any, list[str]]] = [
        (store["clf"], FEATURES),
        (HistGradientBoostingClassifier(max_iter=15).fit(train[num], multi), num),
        # shallow trees over few trees: many exact 50/50 ties in predict_proba
        (RandomForestClassifier(4, max_depth=2, random_state=0).fit(train[num], multi), num),
        (SVC(probability=True, random_state=0).fit(train[num], train["default"]), num),
    ]
    # a score of 1e-17 rounds to probability 0.5 on both sides, predict still says 1
    tie = LogisticRegression().fit(train[num], train["default"])
    tie.coef_[:] = 0.0
    tie.intercept_[:] = 1e-17
    models.append((tie, num))
    contract = _contract()
    for model, features in models:
        scorer = _scorer(model, features, contract)
        df, failures, _ = scorer.check(data.drop(columns=["default", "amount"]))
        assert not failures
        out = scorer.score(df, np.arange(len(df)), 0)
        assert out["prediction"].tolist() == model.predict(df[features]).tolist(), model
        np.testing.assert_allclose(
            out[scorer.proba_columns].to_numpy(), model.predict_proba(df[features]), atol=1e-12
        )
    assert set(tie.predict(data[num])) == {1}


def _mitigated(tmp_path: Path) -> tuple[Any, pd.DataFrame, dict[str, Any]]:
    """A threshold-optimized model from the fairness step, and rows to score with it."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from mlc.runtime.steps import get

    rng = np.random.default_rng(14)
    n = 900
    grp = rng.choice(["a0", "a1"], n, p=[0.6, 0.4])
    x1 = rng.normal(size=n) + np.where(grp == "a0", 0.6, -0.6)
    x2 = rng.normal(size=n)
    frame = pd.DataFrame(
        {"id": np.arange(n), "x1": x1.round(4), "x2": x2.round(4), "grp": grp}
    ).assign(y=((x1 + 0.3 * x2 + rng.normal(scale=0.7, size=n)) > 0).astype(int))
    train, test, rows = frame.iloc[:400], frame.iloc[400:600], frame.iloc[600:]
    pipe = Pipeline(
        [
            ("keep", ColumnTransformer([("keep", "passthrough", ["x1", "x2"])])),
            ("model", LogisticRegression()),
        ]
    ).fit(train.drop(columns="y"), train["y"])
    locs = {name: str(tmp_path / name) for name in ("train", "test", "model")}
    artifacts.save_dataframe(locs["train"], train)
    artifacts.save_dataframe(locs["test"], test)
    artifacts.save_object(locs["model"], pipe, "model")
    params = {
        "sensitive_attributes": ["grp"],
        "metric": "demographic_parity_difference",
        "threshold": 0.05,
        "mitigation": "threshold_optimizer",
        "target": "y",
    }
    outs = {name: str(tmp_path / f"fair-{name}") for name in ("metrics", "report", "model")}
    get("fairness")(params, locs, outs, StepContext(project_dir=tmp_path))
    contract = {
        "on_failure": "quarantine",
        "columns": {
            "id": column("int", unique=True),
            "x1": column("float"),
            "x2": column("float"),
            "grp": column("category", allowed=["a0", "a1"]),
            "y": column("int", allowed=[0, 1]),
        },
    }
    return artifacts.load_object(outs["model"]), rows.drop(columns="y"), contract


def test_mitigated_labels_do_not_depend_on_chunk_rows(tmp_path: Path) -> None:
    from mlc.runtime.batch import score_file

    model, rows, contract = _mitigated(tmp_path)
    assert type(model).__name__ == "MitigatedModel"
    x = rows.drop(columns="id").reset_index(drop=True)
    proba = model.predict_proba(x)
    assert ((proba[:, 1] > 0) & (proba[:, 1] < 1)).sum() >= 20  # the draw decides these rows
    whole = model.predict(x)
    # predict is fairlearn's own randomized rule with random_state=0 ...
    rule = model.mitigator
    want = (proba[:, 1] >= np.random.RandomState(0).rand(len(x))).astype(int)
    assert whole.tolist() == want.tolist()
    assert rule.predict(x, sensitive_features=x[["grp"]], random_state=0).tolist() == want.tolist()
    # ... and restarting it per chunk (the old batch behaviour) gives other labels
    per_chunk = np.concatenate([model.predict(x.iloc[i : i + 50]) for i in range(0, len(x), 50)])
    assert per_chunk.tolist() != whole.tolist()

    data = rows.copy()
    data.loc[data.index[[5, 77, 120]], "grp"] = "zz"  # quarantined: later rows keep their draw
    path = _write(data, tmp_path / "rows.csv")
    got = {}
    for chunk in (50, 10_000, 7):
        out = tmp_path / f"out{chunk}"
        score_file(
            model,
            str(path),
            str(out),
            contract=contract,
            features=["x1", "x2", "grp"],
            task="classification",
            id_column="id",
            chunk_rows=chunk,
            on_failure="quarantine",
            model_name="fair",
            model_version="1",
            target="y",
        )
        got[chunk] = pd.read_parquet(out / "predictions.parquet")
    assert got[50]["prediction"].tolist() == got[10_000]["prediction"].tolist()
    assert got[7]["prediction"].tolist() == got[10_000]["prediction"].tolist()
    kept = ~data["grp"].eq("zz").to_numpy()
    assert got[50]["id"].tolist() == rows["id"][kept].tolist()
    assert got[50]["prediction"].tolist() == whole[kept].tolist()
    np.testing.assert_allclose(got[50]["proba_1"].to_numpy(), proba[kept, 1], atol=1e-12)
