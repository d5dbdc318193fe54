"""The runtime steps on the credit example, each through its `run()` with real libraries."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support import CREDIT
from support.runtime import complete, ir_of, run_pipeline

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext
from mlc.runtime.steps import STEPS, get

KEY = "test-pseudonym-key"


# Fewer boosting rounds keep the module's pipeline run short on a 2-core box.
_SMALL_MODEL = {
    "name": "HistGradientBoostingClassifier",
    "params": {"max_iter": 40, "learning_rate": 0.1, "max_depth": 4},
}
_small = {"train": {"model": _SMALL_MODEL}}


@pytest.fixture(scope="module")
def credit_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("credit")
    ir = ir_of(CREDIT)
    ctx = StepContext(
        project_dir=CREDIT.parent, state_dir=root / "state", secrets={"MLC_PSEUDONYM_KEY": KEY}
    )
    summaries = run_pipeline(
        ir, root, ctx, params_patch={"tune": {"trials": 3, "model": _SMALL_MODEL}, **_small}
    )
    return {"root": root, "ir": ir, "ctx": ctx, "summaries": summaries}


def test_steps_registry_lists_every_pipeline_kind() -> None:
    assert {
        "ingest",
        "validate",
        "split",
        "features",
        "tune",
        "train",
        "evaluate",
        "fairness",
        "explain",
        "gate",
        "register",
        "model_card",
    } <= set(STEPS)
    assert STEPS.module("register") == "mlc.runtime.steps.register"


def test_pipeline_runs_and_gate_passes(credit_run: dict[str, Any]) -> None:
    s, root = credit_run["summaries"], credit_run["root"]
    assert s["ingest-applications"]["rows"] == 2000
    raw_meta = artifacts.read_meta(str(root / "ingest-applications.dataset"))
    assert len(raw_meta["hash"]) == 64
    assert s["split"]["train"] == 1500 and s["split"]["test"] == 500
    assert s["tune"]["trials_complete"] == 3
    assert set(s["tune"]["best_params"]) == {"learning_rate", "max_depth", "l2_regularization"}
    assert s["train"]["params"]["max_iter"] == 40
    metrics = artifacts.load_json(str(root / "evaluate.metrics"), "metrics")
    # the candidate is the mitigated model (hard, randomized decisions): its AUC is its own,
    # lower than the trained model's scores would give
    assert metrics["metrics"]["roc_auc"] > 0.75
    assert metrics["robustness"][0]["kind"] == "noise"
    verdict = artifacts.load_json(str(root / "gate.verdict"), "verdict")
    kinds = {c["kind"] for c in verdict["checks"]}
    assert kinds == {"gate", "fairness", "robustness", "champion"}
    assert verdict["passed"] is True, verdict
    explain = artifacts.load_json(str(root / "explain.report"), "explain")
    # ten input columns, less the excluded (applicant_id, sex) and PII (email) ones
    assert len(explain["features"]) == 7
    assert not {r["feature"] for r in explain["features"]} & {"applicant_id", "sex", "email"}
    fair = artifacts.load_json(str(root / "fairness.report"), "fairness")
    assert set(fair["groups"]["sex"]) == {"female", "male"}
    assert fair["candidate"] == "mitigated" and "before_mitigation" in fair


def test_model_pipeline_includes_transform_and_pickles(credit_run: dict[str, Any]) -> None:
    root, ctx = credit_run["root"], credit_run["ctx"]
    model = artifacts.load_object(str(root / "train.model"))
    assert [name for name, _ in model.steps] == ["transform", "model"]
    test = artifacts.load_dataframe(str(root / "split.test"))
    # The key is not in the pickle: it is bound again, here from the environment reference.
    assert KEY.encode() not in pickle.dumps(model)
    from mlc.runtime.steps._data import bind_secrets

    bind_secrets(model, ctx)
    proba = model.predict_proba(test.drop(columns=["default"]))
    assert proba.shape == (500, 2)


def test_pii_column_never_appears_raw(credit_run: dict[str, Any]) -> None:
    root, ctx = credit_run["root"], credit_run["ctx"]
    transform = artifacts.load_object(str(root / "features.transform"))
    from mlc.runtime.steps._data import bind_secrets

    bind_secrets(transform, ctx)
    train = artifacts.load_dataframe(str(root / "split.train"))
    matrix = transform.transform(train.drop(columns=["default"]))
    names = list(transform.get_feature_names_out())
    assert "email" not in names and "email_pseudonym" in names
    assert "applicant_id" not in names and "sex" not in names
    flat = {str(v) for v in np.asarray(matrix, dtype=object).ravel()}
    assert not flat & set(train["email"])
    codes = matrix[:, names.index("email_pseudonym")]
    assert codes.min() >= 0 and codes.max() < 1024 and len(set(codes)) > 500


def test_quarantine_drops_failing_rows_and_stop_raises(tmp_path: Path) -> None:
    df = pd.read_csv(CREDIT.parent / "data" / "applications.csv").head(200)
    df.loc[3, "age"] = 7
    df.loc[5, "region"] = "atlantis"
    df.loc[8, "email"] = "not-an-email"
    artifacts.save_dataframe(str(tmp_path / "raw"), df)
    params = ir_of(CREDIT).step("validate").params
    ctx = StepContext(project_dir=tmp_path)
    outs = {"dataset": str(tmp_path / "ok"), "report": str(tmp_path / "rep")}
    summary = get("validate")(params, {"applications": str(tmp_path / "raw")}, outs, ctx)
    assert summary["rows_in"] == 200 and summary["rows_out"] == 197
    for token in (
        "age: greater_than_or_equal_to(18.0) failed, e.g. value 7 (1 row)",
        "region: value atlantis not in allowed [north, south, east, west] (1 row)",
        "email",
        "str_matches",
    ):
        assert token in summary["failures"]
    quarantine = artifacts.load_text(outs["report"], "quarantine.csv")
    assert "atlantis" in quarantine and "not-an-email" in quarantine

    from mlc.runtime.context import StepError

    stop = {**params, "contract": {**params["contract"], "on_failure": "stop"}}
    with pytest.raises(StepError, match=r"region: value atlantis not in allowed") as err:
        get("validate")(
            stop,
            {"applications": str(tmp_path / "raw")},
            {"dataset": str(tmp_path / "ok2"), "report": str(tmp_path / "rep2")},
            ctx,
        )
    assert "3 rows" in str(err.value)
    assert not artifacts.exists(str(tmp_path / "ok2"))
    report = artifacts.load_json(str(tmp_path / "rep2"), "report")
    assert report["passed"] is False and report["failing_rows"] == 3

    warn = {**params, "contract": {**params["contract"], "on_failure": "warn"}}
    summary = get("validate")(
        warn,
        {"applications": str(tmp_path / "raw")},
        {"dataset": str(tmp_path / "ok3"), "report": str(tmp_path / "rep3")},
        ctx,
    )
    assert summary["rows_out"] == 200 and "region: value atlantis" in summary["failures"]


def test_validate_joins_sources_and_reads_sql_and_parquet(tmp_path: Path) -> None:
    import sqlite3

    df = pd.read_csv(CREDIT.parent / "data" / "applications.csv").head(50)
    left = df.drop(columns=["late_payments"])
    right = df[["applicant_id", "late_payments"]]
    left.to_parquet(tmp_path / "left.parquet")
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        right.to_sql("payments", conn, index=False)
    ctx = StepContext(project_dir=tmp_path)
    ingest = get("ingest")
    ingest(
        complete(
            "ingest", {"source": {"name": "apps", "format": "parquet", "path": "left.parquet"}}
        ),
        {},
        {"dataset": str(tmp_path / "a")},
        ctx,
    )
    ingest(
        complete(
            "ingest",
            {
                "source": {
                    "name": "pay",
                    "format": "sql",
                    "url": "sqlite:///db.sqlite",
                    "query": "SELECT * FROM payments",
                }
            },
        ),
        {},
        {"dataset": str(tmp_path / "b")},
        ctx,
    )
    params = dict(ir_of(CREDIT).step("validate").params)
    params.update(sources=["apps", "pay"], join_on={"pay": ["applicant_id"]})
    summary = get("validate")(
        params,
        {"apps": str(tmp_path / "a"), "pay": str(tmp_path / "b")},
        {"dataset": str(tmp_path / "j"), "report": str(tmp_path / "r")},
        ctx,
    )
    assert summary["rows_out"] == 50
    joined = artifacts.load_dataframe(str(tmp_path / "j"))
    assert joined["late_payments"].tolist() == df["late_payments"].tolist()


@pytest.mark.parametrize("method", ["random", "stratified", "time"])
def test_split_methods_are_seeded(tmp_path: Path, method: str) -> None:
    df = pd.DataFrame(
        {
            "t": pd.date_range("2024-01-01", periods=100, freq="D"),
            "x": range(100),
            "y": [i % 2 for i in range(100)],
        }
    )
    artifacts.save_dataframe(str(tmp_path / "d"), df)
    params = complete(
        "split",
        {
            "method": method,
            "test_size": 0.2,
            "validation_size": 0.1,
            "seed": 3,
            "target": "y",
            "time_column": "t",
            "sensitive_attributes": [],
            "gates": 0,
            "cv_folds": 0,
        },
    )
    # 10 validation rows: below the default minimum, which is not what this test is about.
    params["minimum"] = {**params["minimum"], "enforce": "warn"}
    runs = []
    for k in range(2):
        outs = {n: str(tmp_path / f"{n}{k}") for n in ("train", "validation", "test")}
        summary = get("split")(params, {"dataset": str(tmp_path / "d")}, outs, StepContext())
        assert (summary["train"], summary["validation"], summary["test"]) == (70, 10, 20)
        runs.append(artifacts.load_dataframe(outs["test"])["x"].tolist())
    assert runs[0] == runs[1]
    if method == "time":
        assert runs[0] == list(range(80, 100))


def test_features_bucketize_custom_and_selection(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "a": rng.normal(size=200),
            "b": rng.uniform(0, 10, 200),
            "c": rng.normal(size=200),
            "k": 1.0,
            "y": rng.integers(0, 2, 200),
        }
    )
    artifacts.save_dataframe(str(tmp_path / "train"), df)
    params = {
        "target": "y",
        "task": "classification",
        "dtypes": {},
        "derived": [{"name": "ab", "expr": "a + b", "inputs": ["a", "b"]}],
        "transforms": [
            {"op": "bucketize", "columns": ["b"], "bins": [2.0, 5.0]},
            {"op": "bucketize", "columns": ["c"], "bins": 4},
            {"op": "custom", "columns": ["ab"], "function": "runtime_data.custom_entry:double"},
        ],
        "selection": {"include": None, "exclude": ["a"], "method": "variance", "k": None},
        "pii": [],
    }
    get("features")(
        params,
        {"train": str(tmp_path / "train")},
        {"transform": str(tmp_path / "tf")},
        StepContext(),
    )
    transform = artifacts.load_object(str(tmp_path / "tf"))
    matrix = transform.transform(df.drop(columns=["y"]))
    names = list(transform.get_feature_names_out())
    assert "k" not in names  # zero variance
    assert set(np.unique(matrix[:, names.index("b")])) <= {0.0, 1.0, 2.0}
    assert np.allclose(matrix[:, names.index("ab")], 2 * (df["a"] + df["b"]))


def test_tune_resumes_same_study(tmp_path: Path, credit_run: dict[str, Any]) -> None:
    root, ctx = credit_run["root"], credit_run["ctx"]
    # The same search as the module's pipeline run (3 trials done), now asking for 5.
    params = {**credit_run["ir"].step("tune").params, "trials": 5, "model": _SMALL_MODEL}
    inputs = {"train": str(root / "split.train"), "transform": str(root / "features.transform")}
    outs = {"best_params": str(tmp_path / "bp"), "study": str(tmp_path / "st")}
    first = get("tune")(params, inputs, outs, ctx)
    assert first["trials_total"] == 5 and first["trials_this_run"] == 2
    again = get("tune")(params, inputs, outs, ctx)
    assert again["trials_this_run"] == 0 and again["best_params"] == first["best_params"]
    tiny = {"name": "HistGradientBoostingClassifier", "params": {"max_iter": 5}}
    quick = get("tune")(
        {**params, "model": tiny, "trials": 50, "timeout": 0.5, "study_name": "t"},
        inputs,
        outs,
        ctx,
    )
    assert quick["stopped"] == "timeout" and quick["trials_total"] < 50


def test_gate_failure_is_a_verdict_not_an_exception(tmp_path: Path) -> None:
    artifacts.save_json(
        str(tmp_path / "m"),
        "metrics",
        {
            "metrics": {"rmse": 10.0, "r2": 0.3},
            "robustness": [{"kind": "missing", "features": [], "metric": "rmse", "drop": 2.0}],
        },
        "metrics",
    )
    artifacts.save_json(str(tmp_path / "champ"), "metrics", {"metrics": {"rmse": 9.0}}, "metrics")
    params = {
        "gates": [
            {"metric": "r2", "op": ">=", "threshold": 0.5, "name": None, "direction": "higher"},
            {"metric": "rmse", "op": "<", "threshold": 20, "name": None, "direction": "lower"},
        ],
        "champion": {
            "metric": "rmse",
            "min_improvement": 0.5,
            "compare": True,
            "direction": "lower",
        },
        "robustness": [{"kind": "missing", "features": [], "magnitude": 0.1, "max_drop": 1.0}],
        "fairness": None,
        "model_name": "m",
    }
    summary = get("gate")(
        params,
        {"metrics": str(tmp_path / "m"), "champion": str(tmp_path / "champ")},
        {"verdict": str(tmp_path / "v")},
        StepContext(),
    )
    assert summary["passed"] is False
    verdict = json.loads((tmp_path / "v" / "verdict.json").read_text())
    by_kind = {c["name"]: c["passed"] for c in verdict["checks"]}
    assert by_kind == {
        "r2 >= 0.5": False,
        "rmse < 20": True,
        "robustness missing drop": False,
        "champion rmse": False,
    }
    assert artifacts.read_meta(str(tmp_path / "v"))["passed"] is False


@pytest.mark.slow
def test_exponentiated_gradient_mitigation(tmp_path: Path, credit_run: dict[str, Any]) -> None:
    root, ctx = credit_run["root"], credit_run["ctx"]
    params = {**credit_run["ir"].step("fairness").params, "mitigation": "exponentiated_gradient"}
    inputs = {name: str(root / f"split.{name}") for name in ("train", "test")}
    inputs["model"] = str(root / "train.model")
    outs = {name: str(tmp_path / name) for name in ("metrics", "report", "model")}
    summary = get("fairness")(params, inputs, outs, ctx)
    assert summary["before_mitigation"] is not None
    mitigated = artifacts.load_object(outs["model"])
    test = artifacts.load_dataframe(inputs["test"]).drop(columns=["default"])
    from mlc.runtime.steps._data import bind_secrets

    bind_secrets(mitigated, ctx)
    first, second = mitigated.predict(test), mitigated.predict(test)
    assert list(first) == list(second) and set(first) <= {0, 1}


def test_parallel_tuning_is_reproducible(tmp_path: Path, credit_run: dict[str, Any]) -> None:
    """parallelism > 1 must not make the study depend on thread timing (local == Kubeflow)."""
    root = credit_run["root"]
    params = {
        **credit_run["ir"].step("tune").params,
        "trials": 4,
        "parallelism": 2,
        "model": _SMALL_MODEL,
    }
    inputs = {"train": str(root / "split.train"), "transform": str(root / "features.transform")}
    results = []
    for i in range(2):
        ctx = StepContext(
            project_dir=CREDIT.parent,
            state_dir=tmp_path / f"state{i}",
            secrets={"MLC_PSEUDONYM_KEY": KEY},
        )
        outs = {"best_params": str(tmp_path / f"bp{i}"), "study": str(tmp_path / f"st{i}")}
        results.append(get("tune")(params, inputs, outs, ctx))
    assert results[0]["trials_this_run"] == 4
    assert results[0]["best_params"] == results[1]["best_params"]
    assert results[0]["best_value"] == results[1]["best_value"]


def test_explain_with_shap_ranks_columns_by_mean_abs_shap(
    credit_run: dict[str, Any], tmp_path: Path
) -> None:
    """`method: shap` runs SHAP (in the `ml` extra) beside permutation importance."""
    root, ir, ctx = credit_run["root"], credit_run["ir"], credit_run["ctx"]
    step = ir.step("explain")
    params = {**step.params, "method": "shap", "top_k": 5}
    inputs = {name: str(root / art) for name, art in step.inputs.items()}
    outputs = {"report": str(tmp_path / "report")}
    summary = get("explain")(params, inputs, outputs, ctx)
    report = artifacts.load_json(outputs["report"], "explain")
    assert report["method"] == "shap" and summary["top"]
    shap_rows = report["shap"]
    assert len(shap_rows) == 5
    values = [row["mean_abs_shap"] for row in shap_rows]
    assert values == sorted(values, reverse=True) and values[0] > 0
    test = artifacts.load_dataframe(str(root / "split.test"))
    assert {row["feature"] for row in shap_rows} <= set(test.columns) - {"default"}
    assert len(report["features"]) == 5  # permutation importance is still reported
