"""The credit and diabetes examples on the spark engine (`+engine=spark +split=hash`) against
the pandas run.

With the hash split both engines train and test on the same rows, and the transform fitted by
Spark aggregates is scikit-learn's to float precision, so an sklearn model's test metrics agree
to 1e-6 (diabetes trains a small scikit-learn regressor in place of its Lightning MLP).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import EXAMPLES
from support.runtime import ir_of, run_pipeline
from support.tools import require_tool

from mlc.runtime.context import StepContext

_SMALL = {"name": "HistGradientBoostingClassifier", "params": {"max_iter": 40, "max_depth": 4}}


@pytest.mark.slow
def test_credit_on_spark_reaches_the_pandas_runs_metrics(
    credit_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    require_tool("java")
    # The JVM starts in the working directory, where Spark puts its catalog's warehouse.
    monkeypatch.chdir(tmp_path)
    metrics = {}
    splits: dict[str, dict[str, int]] = {}
    for engine, overlays in (
        ("pandas", ("+split=hash",)),
        ("spark", ("+split=hash", "+engine=spark")),
    ):
        ir = ir_of(credit_copy, overlays)
        ctx = StepContext(
            project_dir=credit_copy.parent,
            state_dir=tmp_path / f"state-{engine}",
            secrets={"MLC_PSEUDONYM_KEY": "e2e-key"},
        )
        summaries = run_pipeline(
            ir,
            tmp_path / engine,
            ctx,
            until="evaluate",
            params_patch={"tune": {"trials": 2, "model": _SMALL}, "train": {"model": _SMALL}},
        )
        assert summaries["split"].get("engine") == ("spark" if engine == "spark" else None)
        metrics[engine] = summaries["evaluate"]["metrics"]
        splits[engine] = {p: summaries["split"][p] for p in ("train", "test")}
    assert splits["spark"] == splits["pandas"]
    assert set(metrics["spark"]) == set(metrics["pandas"]) >= {"roc_auc", "accuracy"}
    for name, value in metrics["pandas"].items():
        assert metrics["spark"][name] == pytest.approx(value, abs=1e-6), name


@pytest.mark.slow
def test_diabetes_on_spark_reaches_the_pandas_runs_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    require_tool("java")
    monkeypatch.chdir(tmp_path)
    project = tmp_path / "diabetes"
    shutil.copytree(EXAMPLES / "diabetes", project, ignore=shutil.ignore_patterns(".mlc", "out"))
    sklearn = (
        "training.framework=sklearn",
        "training.model={name: HistGradientBoostingRegressor, params: {max_iter: 40, "
        "max_depth: 3}}",
    )
    metrics = {}
    for engine, overlays in (
        ("pandas", ("+split=hash", *sklearn)),
        ("spark", ("+split=hash", "+engine=spark", *sklearn)),
    ):
        ir = ir_of(project / "mlc.yaml", overlays)
        ctx = StepContext(project_dir=project, state_dir=tmp_path / f"state-{engine}")
        summaries = run_pipeline(
            ir,
            tmp_path / engine,
            ctx,
            until="evaluate",
        )
        assert summaries["split"].get("engine") == ("spark" if engine == "spark" else None)
        metrics[engine] = summaries["evaluate"]["metrics"]
    assert set(metrics["spark"]) == set(metrics["pandas"]) == {"r2", "rmse", "mae"}
    for name, value in metrics["pandas"].items():
        assert metrics["spark"][name] == pytest.approx(value, abs=1e-6), name
