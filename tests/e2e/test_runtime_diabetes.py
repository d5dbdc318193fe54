"""The diabetes example end to end through the runtime: Lightning regression on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import EXAMPLES
from support.runtime import ir_of, run_pipeline

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext

DIABETES = EXAMPLES / "diabetes" / "mlc.yaml"


@pytest.mark.slow
def test_diabetes_lightning_pipeline(tmp_path: Path) -> None:
    ir = ir_of(DIABETES, ("training.lightning.max_epochs=15", "training.lightning.accelerator=cpu"))
    ctx = StepContext(project_dir=DIABETES.parent, state_dir=tmp_path / "state")
    s = run_pipeline(ir, tmp_path, ctx)
    assert s["split"] == {"method": "random", "train": 310, "validation": 44, "test": 88}
    assert s["train"]["framework"] == "lightning" and s["train"]["epochs"] == 15
    metrics = artifacts.load_json(str(tmp_path / "evaluate.metrics"), "metrics")["metrics"]
    assert metrics["r2"] > 0.2 and metrics["rmse"] < 80
    verdict = artifacts.load_json(str(tmp_path / "gate.verdict"), "verdict")
    assert {c["kind"] for c in verdict["checks"]} == {"gate", "robustness", "champion"}
    report = artifacts.load_json(str(tmp_path / "explain.report"), "explain")
    assert report["scoring"] == "r2" and len(report["features"]) == 5


@pytest.mark.slow
def test_diabetes_early_stopping_on_the_validation_split(tmp_path: Path) -> None:
    ir = ir_of(
        DIABETES,
        (
            "training.lightning.max_epochs=400",
            "training.lightning.accelerator=cpu",
            "+training.lightning.early_stopping={patience:4}",
        ),
    )
    ctx = StepContext(project_dir=DIABETES.parent, state_dir=tmp_path / "state")
    s = run_pipeline(ir, tmp_path, ctx, until="train")
    train = s["train"]
    assert train["stopped"] == "early_stopping" and train["epochs"] < 400
    assert train["val_loss"] > 0
