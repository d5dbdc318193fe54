"""The feedback loop's maths and steps: drift scores, trigger decisions, active learning."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from support.tools import require_tool

from mlc.runtime import artifacts, drift, metrics_contract
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps import STEPS, get
from mlc.runtime.steps.retrain_trigger import cron_fires, evaluate_triggers


def _frames(shift: float = 0.0, scale: float = 1.0, n: int = 4000) -> tuple[pd.DataFrame, ...]:
    rng = np.random.default_rng(7)
    ref = pd.DataFrame(
        {
            "x": rng.normal(10, 2, n),
            "color": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    cur = pd.DataFrame(
        {
            "x": rng.normal(10 + shift, 2, n) * scale,
            "color": rng.choice(
                ["red", "green", "blue"], n, p=[0.2, 0.3, 0.5] if shift else [0.5, 0.3, 0.2]
            ),
        }
    )
    return ref, cur


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    ref, same = _frames()
    _, shifted = _frames(shift=3.0)
    assert drift.psi(ref["x"], same["x"]) < 0.02
    assert drift.psi(ref["x"], shifted["x"]) > 0.2
    assert drift.psi(ref["color"], same["color"]) < 0.02
    assert drift.psi(ref["color"], shifted["color"]) > 0.2


def test_psi_stays_finite_when_current_falls_outside_every_reference_bin() -> None:
    ref = pd.Series(np.arange(100.0))
    cur = pd.Series(np.full(50, 1e6))
    score = drift.psi(ref, cur)
    assert np.isfinite(score) and score > 1.0


def test_ks_is_scipys_statistic_and_wasserstein_is_in_reference_sd_units() -> None:
    ref, cur = _frames(shift=1.0)
    assert drift.ks(ref["x"], cur["x"]) == pytest.approx(
        stats.ks_2samp(ref["x"], cur["x"]).statistic
    )
    expected = stats.wasserstein_distance(ref["x"], cur["x"]) / np.std(ref["x"])
    assert drift.wasserstein(ref["x"], cur["x"]) == pytest.approx(expected)
    assert drift.wasserstein(ref["x"], cur["x"]) == pytest.approx(0.5, abs=0.1)  # shift 1 / sd 2


def test_chi2_scores_categorical_shift_with_cramers_v() -> None:
    ref, same = _frames()
    _, shifted = _frames(shift=3.0)
    v_same, p_same = drift.chi2(ref["color"], same["color"])
    v_shift, p_shift = drift.chi2(ref["color"], shifted["color"])
    assert v_same < 0.05 and p_same > 0.01
    assert v_shift > 0.2 and p_shift < 1e-6


@pytest.mark.parametrize("method", drift.METHODS)
def test_feature_drift_flags_only_the_shifted_frame(method: str) -> None:
    ref, same = _frames()
    _, shifted = _frames(shift=3.0)
    threshold = {"psi": 0.2, "ks": 0.1, "chi2": 0.1, "wasserstein": 0.3, "jensen_shannon": 0.1}[
        method
    ]
    calm = drift.feature_drift(ref, same, ["x", "color"], method, threshold)
    moved = drift.feature_drift(ref, shifted, ["x", "color"], method, threshold)
    assert [r["drifted"] for r in calm] == [False, False]
    assert [r["drifted"] for r in moved] == [True, True]
    # ks and wasserstein need numbers: the categorical column is scored by chi2
    assert moved[1]["method"] == (method if method in drift.CATEGORICAL_METHODS else "chi2")


def test_feature_drift_reports_a_missing_feature_and_rejects_an_unknown_method() -> None:
    ref, cur = _frames()
    (row,) = drift.feature_drift(ref, cur.drop(columns=["x"]), ["x"], "psi", 0.2)
    assert row["score"] is None and row["missing"] == ["current"] and not row["drifted"]
    with pytest.raises(ValueError, match="unknown drift method"):
        drift.feature_drift(ref, cur, ["x"], "jensen", 0.2)


def _model_and_data() -> tuple[Pipeline, pd.DataFrame]:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (600, 2))
    y = (x[:, 0] + 0.3 * rng.normal(size=600) > 0).astype(int)
    frame = pd.DataFrame(x, columns=["a", "b"])
    model = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])
    model.fit(frame, y)
    return model, frame.assign(label=y)


@pytest.mark.parametrize("strategy", ["uncertainty", "margin", "entropy"])
def test_active_learning_picks_the_rows_nearest_the_decision_boundary(strategy: str) -> None:
    model, frame = _model_and_data()
    x = frame.drop(columns=["label"])
    picks = drift.select_for_labelling(model, x, strategy, 20, seed=0)
    rows = [row for row, _ in picks]
    # for a binary classifier all three strategies rank by closeness of p to 0.5
    closeness = np.abs(model.predict_proba(x)[:, 1] - 0.5)
    assert sorted(rows) == sorted(np.argsort(closeness, kind="stable")[:20].tolist())
    scores = [s for _, s in picks]
    assert scores == sorted(scores, reverse=True)


def test_random_active_learning_is_seeded() -> None:
    model, frame = _model_and_data()
    a = drift.select_for_labelling(model, frame, "random", 10, seed=5)
    b = drift.select_for_labelling(model, frame, "random", 10, seed=5)
    c = drift.select_for_labelling(model, frame, "random", 10, seed=6)
    assert a == b and a != c and len({r for r, _ in a}) == 10


def test_performance_uses_only_labelled_rows() -> None:
    model, frame = _model_and_data()
    frame.loc[:299, "label"] = np.nan
    auc = drift.performance(model, frame, "label", "roc_auc", "classification")
    assert 0.9 < auc <= 1.0
    with pytest.raises(ValueError, match="no labelled rows"):
        drift.performance(model, frame.iloc[:300], "label", "roc_auc", "classification")


def test_prometheus_text_uses_the_contract_series_names() -> None:
    text = drift.prometheus_text("credit", [{"feature": "income", "score": 0.5}], {"roc_auc": 0.91})
    assert f'{metrics_contract.FEATURE_DRIFT_SCORE}{{feature="income",model="credit"}} 0.5' in text
    assert f'{metrics_contract.MODEL_PERFORMANCE}{{metric="roc_auc",model="credit"}} 0.91' in text
    assert f"# TYPE {metrics_contract.FEATURE_DRIFT_SCORE} gauge" in text


def test_prometheus_textfile_passes_promtool() -> None:
    promtool = require_tool("promtool")
    ref, cur = _frames(shift=1.0)
    text = drift.prometheus_text(
        'model "a"', drift.feature_drift(ref, cur, ["x", "color"], "psi", 0.2), {"roc_auc": 0.9}
    )
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- triggers -------------------------------------------------------------------------------


def _report(**over: object) -> dict[str, object]:
    report: dict[str, object] = {
        "drift": [
            {"feature": "income", "method": "psi", "score": 0.35, "drifted": True},
            {"feature": "age", "method": "psi", "score": 0.05, "drifted": False},
        ],
        "performance": {"metric": "roc_auc", "value": 0.80, "values": {"roc_auc": 0.80}},
        "rows_current": 1200,
    }
    report.update(over)
    return report


def test_drift_trigger_uses_the_monitor_flags_or_its_own_threshold() -> None:
    (fired,) = evaluate_triggers([{"kind": "drift", "threshold": None}], _report(), {})
    assert fired["fired"] and fired["features"] == ["income"]
    (quiet,) = evaluate_triggers([{"kind": "drift", "threshold": 0.5}], _report(), {})
    assert not quiet["fired"]
    (low,) = evaluate_triggers([{"kind": "drift", "threshold": 0.01}], _report(), {})
    assert low["features"] == ["income", "age"]


def test_performance_drop_trigger_compares_with_the_value_at_promotion() -> None:
    trig = [{"kind": "performance_drop", "metric": "roc_auc", "drop": 0.05, "direction": "higher"}]
    (fired,) = evaluate_triggers(trig, _report(), {"champion_metrics": {"roc_auc": 0.90}})
    assert fired["fired"] and fired["worse_by"] == pytest.approx(0.10)
    assert fired["reason"].startswith("roc_auc fell from 0.9 to 0.8 (worse by 0.1")
    (quiet,) = evaluate_triggers(trig, _report(), {"champion_metrics": {"roc_auc": 0.83}})
    assert not quiet["fired"]
    (unknown,) = evaluate_triggers(trig, _report(performance=None), {})
    assert not unknown["fired"] and "not measured" in unknown["reason"]
    # lower is better for log_loss: a rise is the drop
    loss = [{"kind": "performance_drop", "metric": "log_loss", "drop": 0.05, "direction": "lower"}]
    report = _report(performance={"values": {"log_loss": 0.40}})
    (worse,) = evaluate_triggers(loss, report, {"champion_metrics": {"log_loss": 0.30}})
    assert worse["fired"] and worse["reason"].startswith("log_loss rose from 0.3 to 0.4 (worse")


def test_data_volume_trigger_counts_new_rows() -> None:
    trig = [{"kind": "data_volume", "rows": 1000}]
    assert evaluate_triggers(trig, _report(), {})[0]["fired"]
    assert not evaluate_triggers(trig, _report(), {"new_rows": 999})[0]["fired"]


def test_schedule_trigger_fires_when_a_cron_time_passed_since_training() -> None:
    trig = [{"kind": "schedule", "cron": "0 3 * * 1"}]  # Mondays 03:00
    # 2026-11-26 is a Thursday; the next Monday is 2026-11-30
    state = {"last_trained": "2026-11-26T11:00:00Z", "now": "2026-11-29T23:00:00Z"}
    assert not evaluate_triggers(trig, _report(), state)[0]["fired"]
    state["now"] = "2026-11-30T03:00:00Z"
    (due,) = evaluate_triggers(trig, _report(), state)
    assert due["fired"] and due["due"].startswith("2026-11-30T03:00")
    assert evaluate_triggers(trig, _report(), {})[0]["fired"]  # never trained


def test_cron_fires_handles_aliases_steps_and_day_rules() -> None:
    t0 = dt.datetime(2026, 1, 1, 0, 30, tzinfo=dt.UTC)
    assert cron_fires("@hourly", t0, t0 + dt.timedelta(minutes=29)) is None
    assert cron_fires("@hourly", t0, t0 + dt.timedelta(minutes=30)) == t0.replace(hour=1, minute=0)
    assert cron_fires("*/15 * * * *", t0, t0 + dt.timedelta(hours=1)) == t0.replace(minute=45)
    # day-of-month 15 OR Friday (2026-01-02 is a Friday)
    assert cron_fires("0 0 15 * 5", t0, t0 + dt.timedelta(days=3)) == dt.datetime(
        2026, 1, 2, tzinfo=dt.UTC
    )
    assert cron_fires("0 12 * JAN-MAR MON", t0, t0 + dt.timedelta(days=7)) == dt.datetime(
        2026, 1, 5, 12, tzinfo=dt.UTC
    )
    with pytest.raises(ValueError):
        cron_fires("61 * * * *", t0, t0 + dt.timedelta(days=1))


# -- the steps ------------------------------------------------------------------------------


def test_monitor_and_retrain_trigger_steps_write_signal_and_decision(tmp_path: Path) -> None:
    assert {"monitor", "retrain_trigger"} <= set(STEPS)
    model, frame = _model_and_data()
    ref, cur = frame.iloc[:300], frame.iloc[300:].copy()
    cur["a"] = cur["a"] + 3.0
    cur.loc[cur.index[:200], "label"] = np.nan  # labels not arrived yet
    for name, df in (("ref", ref), ("cur", cur)):
        artifacts.save_dataframe(str(tmp_path / name), df)
    artifacts.save_object(str(tmp_path / "model"), model, "model")
    ctx = StepContext(project_dir=tmp_path)
    inputs = {k: str(tmp_path / k) for k in ("ref", "cur", "model")}
    summary = get("monitor")(
        {
            "drift": {"method": "ks", "threshold": 0.2, "features": ["a", "b"]},
            "performance": {"metric": "roc_auc", "floor": 0.99, "direction": "higher"},
            "model_name": "toy",
            "target": "label",
            "task": "classification",
            "metrics": ["accuracy"],
        },
        {"reference": inputs["ref"], "current": inputs["cur"], "model": inputs["model"]},
        {"signal": str(tmp_path / "signal")},
        ctx,
    )
    assert summary["drifted"] == ["a"]
    report = artifacts.load_json(str(tmp_path / "signal"), "report")
    assert report["performance"]["rows"] == 100
    assert set(report["performance"]["values"]) == {"roc_auc", "accuracy"}
    assert artifacts.read_meta(str(tmp_path / "signal"))["type"] == "signal"
    prom = artifacts.load_text(str(tmp_path / "signal"), "metrics.prom")
    assert f'{metrics_contract.FEATURE_DRIFT_SCORE}{{feature="a",model="toy"}}' in prom

    get("retrain_trigger")(
        {
            "triggers": [{"kind": "drift", "threshold": None}, {"kind": "data_volume", "rows": 10}],
            "active_learning": {"strategy": "entropy", "batch_size": 5},
            "promotion": {"policy": "auto", "min_improvement": 0.0},
            "model_name": "toy",
            "target": "label",
        },
        {"signal": str(tmp_path / "signal"), "current": inputs["cur"], "model": inputs["model"]},
        {"decision": str(tmp_path / "decision")},
        ctx,
    )
    decision = json.loads((tmp_path / "decision" / "decision.json").read_text())
    assert decision["retrain"] is True and len(decision["reasons"]) == 2
    # only unlabelled rows (the first 200 of the current data) are proposed for labelling
    picked = [p["row"] for p in decision["to_label"]]
    assert len(picked) == 5 and all(0 <= row < 200 for row in picked)
    sample = pd.read_csv(tmp_path / "decision" / "to_label.csv")
    assert len(sample) == 5 and "_uncertainty" in sample.columns


def test_retrain_trigger_without_a_signal_is_a_step_error(tmp_path: Path) -> None:
    with pytest.raises(StepError, match="signal"):
        get("retrain_trigger")(
            {"triggers": []}, {}, {"decision": str(tmp_path / "d")}, StepContext(tmp_path)
        )
