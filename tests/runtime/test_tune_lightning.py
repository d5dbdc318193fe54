"""Tuning a Lightning model: each trial trains with the spec's Lightning options, and an
objective without a direction is optimised the way its metric is better."""

from __future__ import annotations

from pathlib import Path

import optuna
from support import EXAMPLES
from support.runtime import ir_of, run_pipeline

from mlc.compiler.ir.model import StepKind
from mlc.runtime.context import StepContext

DIABETES = EXAMPLES / "diabetes" / "mlc.yaml"
CREDIT = EXAMPLES / "credit" / "mlc.yaml"


def _tuning(metric: str) -> str:
    return (
        f"+tuning={{trials:3,cv_folds:2,objective:{{metric:{metric}}},"
        "search_space:{learning_rate:{type:float,low:0.001,high:0.05}}}"
    )


def test_objective_direction_defaults_to_the_metrics_own() -> None:
    for metric, expected in (("rmse", "minimize"), ("mae", "minimize"), ("r2", "maximize")):
        tune = ir_of(DIABETES, (_tuning(metric),)).first(StepKind.TUNE)
        assert tune is not None
        assert tune.params["objective"] == {"metric": metric, "direction": expected}
    # written out, the spec's direction stands (the credit spec says maximize for roc_auc)
    credit = ir_of(CREDIT).first(StepKind.TUNE)
    assert credit is not None and credit.params["objective"]["direction"] == "maximize"


def test_a_lightning_model_tunes_and_keeps_the_lowest_rmse(tmp_path: Path) -> None:
    ir = ir_of(DIABETES, (_tuning("rmse"), "training.lightning.max_epochs=2"))
    tune = ir.first(StepKind.TUNE)
    assert tune is not None
    assert tune.params["lightning"]["max_epochs"] == 2
    ctx = StepContext(
        run_id="tune-lightning", project_dir=DIABETES.parent.resolve(), state_dir=tmp_path / "s"
    )
    summary = run_pipeline(ir, tmp_path / "a", ctx, until="tune")["tune"]
    assert summary["trials_complete"] == 3 and summary["direction"] == "minimize"
    # independently: the study in the step's storage, its lowest completed value
    storage = f"sqlite:///{(tmp_path / 's' / 'optuna.db').resolve()}"
    study = optuna.load_study(study_name=summary["study"], storage=storage)
    values = [t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert summary["best_value"] == min(values)
