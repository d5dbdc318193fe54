"""One notion of metric direction (issue 11, item 2).

The spec's metric table says which way is better; the IR carries that direction to every step
and target that compares a metric; runtime comparisons use the direction they are given. The
answers here are checked against independent computations: numpy for the metrics, the real
`promtool` for the alert rules.
"""

from __future__ import annotations

import json
import subprocess
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from support.manifests import registry
from support.runtime import complete
from support.tools import require_tool

from mlc.compiler.api import check, compile_spec
from mlc.compiler.ir import StepKind
from mlc.runtime import artifacts, metrics_contract
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps import get
from mlc.runtime.steps._metrics import SCORERS
from mlc.runtime.steps.retrain_trigger import evaluate_triggers
from mlc.specs.evaluation import FAIRNESS_METRICS, METRICS, metric_direction
from mlc.specs.governance import Fairness

REPO = Path(__file__).resolve().parents[2]
DIABETES = REPO / "examples" / "diabetes" / "mlc.yaml"
CREDIT = REPO / "examples" / "credit" / "mlc.yaml"
CREDIT_ALONE = REPO / "tests" / "diff_pairs" / "gate-lowered" / "base.yaml"
"""The credit spec in one file (the example's overlays left out)."""


# -- one table -------------------------------------------------------------------------------------


def test_spec_and_runtime_name_the_same_metrics_per_task() -> None:
    for task in ("classification", "regression"):
        declared = {n for n, m in METRICS.items() if m.task == task}
        assert set(SCORERS[task]) == declared, task
    assert set(SCORERS) == {"classification", "regression"}
    fairness_literal = typing.get_args(Fairness.model_fields["metric"].annotation)
    assert set(fairness_literal) == set(FAIRNESS_METRICS)
    # direction as a statistician states it, not as the table says
    assert {n for n in METRICS if metric_direction(n) == "lower"} == {
        "rmse",
        "mae",
        "mape",
        "log_loss",
    }
    assert metric_direction("demographic_parity_ratio") == "higher"
    assert metric_direction("equalized_odds_difference") == "lower"


def test_no_runtime_module_keeps_its_own_direction_list() -> None:
    for path in sorted((REPO / "runtime").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert "LOWER_IS_BETTER" not in text, path
        assert not ('"rmse"' in text and '"log_loss"' in text) or path.name == "_metrics.py", path


def test_ir_carries_each_metric_direction() -> None:
    ir = check(DIABETES).ir
    gate = ir.first(StepKind.GATE)
    assert gate is not None
    assert [(g["metric"], g["direction"]) for g in gate.params["gates"]] == [
        ("r2", "higher"),
        ("rmse", "lower"),
    ]
    assert gate.params["champion"]["direction"] == "lower"
    evaluate = ir.first(StepKind.EVALUATE)
    assert evaluate is not None
    assert evaluate.params["directions"] == {"r2": "higher", "rmse": "lower", "mae": "lower"}
    credit = check(CREDIT).ir
    fair = credit.first(StepKind.GATE)
    assert fair is not None and fair.params["fairness"]["direction"] == "lower"
    monitor = credit.first(StepKind.MONITOR)
    assert monitor is not None and monitor.params["performance"]["direction"] == "higher"


# -- runtime comparisons ---------------------------------------------------------------------------


def _regression(tmp_path: Path) -> tuple[str, str, np.ndarray, np.ndarray]:
    """A linear model on noisy data; the saved model, the test frame, and y / prediction."""
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(3)
    x = rng.normal(size=(160, 2))
    y = 3 * x[:, 0] - 2 * x[:, 1] + rng.normal(scale=2.0, size=160)
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": y})
    train, test = frame.iloc[:120], frame.iloc[120:]
    model = LinearRegression().fit(train[["a", "b"]], train["y"])
    artifacts.save_object(str(tmp_path / "model"), model, "model")
    artifacts.save_dataframe(str(tmp_path / "test"), test)
    pred = model.predict(test[["a", "b"]])
    return str(tmp_path / "model"), str(tmp_path / "test"), test["y"].to_numpy(), pred


def _monitor_params(performance: dict[str, Any]) -> dict[str, Any]:
    """Monitor params of a regression model with no drift check around `performance`."""
    return complete(
        "monitor",
        {
            "performance": {"label_delay": 0.0, "schedule": None, **performance},
            "drift": None,
            "model_name": "toy",
            "target": "y",
            "task": "regression",
            "metrics": ["rmse"],
        },
    )


def _gate_params(**given: Any) -> dict[str, Any]:
    """Complete gate params (the runtime reads every key the IR carries) around `given`."""
    params: dict[str, Any] = {
        "gates": [],
        "champion": None,
        "fairness": None,
        "robustness": [],
        "model_name": "toy",
    }
    params.update(given)
    for gate in params["gates"]:
        gate.setdefault("name", None)
    if params["champion"] is not None:
        params["champion"] = {"compare": True, "min_improvement": 0.0, **params["champion"]}
    if params["fairness"] is not None:
        params["fairness"] = {
            "sensitive_attributes": ["g"],
            "mitigation": "none",
            **params["fairness"],
        }
    return params


def _gate(tmp_path: Path, params: dict[str, Any], champion: dict[str, float] | None) -> dict:
    params = _gate_params(**params)
    inputs = {"metrics": str(tmp_path / "metrics")}
    if champion is not None:
        artifacts.save_json(str(tmp_path / "champ"), "metrics", {"metrics": champion}, "metrics")
        inputs["champion"] = str(tmp_path / "champ")
    get("gate")(params, inputs, {"verdict": str(tmp_path / "v")}, StepContext())
    verdict = json.loads((tmp_path / "v" / "verdict.json").read_text())
    return {c["name"]: c["passed"] for c in verdict["checks"]}


def test_regression_gate_and_champion_against_a_hand_computed_rmse(tmp_path: Path) -> None:
    model, test, y, pred = _regression(tmp_path)
    rmse = float(np.sqrt(np.mean((y - pred) ** 2)))
    get("evaluate")(
        {
            "metrics": ["rmse", "r2"],
            "directions": {"rmse": "lower", "r2": "higher"},
            "task": "regression",
            "target": "y",
            "robustness": [{"kind": "noise", "features": ["a"], "magnitude": 0.5, "max_drop": 1.0}],
        },
        {"model": model, "test": test},
        {"metrics": str(tmp_path / "metrics"), "predictions": str(tmp_path / "p")},
        StepContext(),
    )
    doc = artifacts.load_json(str(tmp_path / "metrics"), "metrics")
    assert doc["metrics"]["rmse"] == pytest.approx(rmse, rel=1e-9)
    shaken = doc["robustness"][0]
    # a drop is "how much worse": for rmse, the perturbed value minus the clean one
    assert shaken["drop"] == pytest.approx(shaken["perturbed"] - rmse)
    assert shaken["perturbed"] > rmse

    def gates(bound: float, champion_rmse: float) -> dict:
        params = {
            "gates": [{"metric": "rmse", "op": "<=", "threshold": bound, "direction": "lower"}],
            "champion": {"metric": "rmse", "min_improvement": 0.1, "direction": "lower"},
        }
        return _gate(tmp_path, params, {"rmse": champion_rmse})

    assert gates(rmse + 0.01, rmse + 0.2) == {f"rmse <= {rmse + 0.01}": True, "champion rmse": True}
    # a larger error than the bound fails; a champion with a smaller error wins
    assert gates(rmse - 0.01, rmse - 0.2) == {
        f"rmse <= {rmse - 0.01}": False,
        "champion rmse": False,
    }
    # beating the champion by less than the margin is not enough
    assert gates(rmse + 1, rmse + 0.05)["champion rmse"] is False


def test_the_champion_comparison_follows_the_direction_it_is_given(tmp_path: Path) -> None:
    artifacts.save_json(str(tmp_path / "metrics"), "metrics", {"metrics": {"m": 0.5}}, "metrics")
    for direction, passes in (("higher", True), ("lower", False)):
        params = {"champion": {"metric": "m", "direction": direction}}
        assert _gate(tmp_path, params, {"m": 0.4})["champion m"] is passes
    with pytest.raises(StepError, match="no metric direction for 'm'"):
        _gate(tmp_path, {"champion": {"metric": "m"}}, {"m": 0.4})


def test_fairness_gate_direction_ratio_floor_difference_ceiling(tmp_path: Path) -> None:
    artifacts.save_json(str(tmp_path / "metrics"), "metrics", {"metrics": {}}, "metrics")

    def verdict(metric: str, value: float, threshold: float) -> bool:
        artifacts.save_json(str(tmp_path / "f"), "metrics", {"value": value}, "metrics")
        params = {
            "fairness": {
                "metric": metric,
                "threshold": threshold,
                "direction": metric_direction(metric),
            }
        }
        get("gate")(
            _gate_params(**params),
            {"metrics": str(tmp_path / "metrics"), "fairness": str(tmp_path / "f")},
            {"verdict": str(tmp_path / "v")},
            StepContext(),
        )
        return bool(json.loads((tmp_path / "v" / "verdict.json").read_text())["passed"])

    assert verdict("demographic_parity_ratio", 0.85, 0.8) is True
    assert verdict("demographic_parity_ratio", 0.75, 0.8) is False
    assert verdict("equalized_odds_difference", 0.05, 0.1) is True
    assert verdict("equalized_odds_difference", 0.15, 0.1) is False


def test_multiclass_metrics_and_gate_against_hand_computation(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris(as_frame=True).frame.sample(frac=1.0, random_state=0)
    train, test = data.iloc[:60], data.iloc[60:]
    model = LogisticRegression(max_iter=500).fit(train.drop(columns="target"), train["target"])
    artifacts.save_object(str(tmp_path / "model"), model, "model")
    artifacts.save_dataframe(str(tmp_path / "test"), test)
    get("evaluate")(
        {
            "metrics": ["accuracy", "f1", "log_loss"],
            "directions": {"accuracy": "higher", "f1": "higher", "log_loss": "lower"},
            "task": "classification",
            "target": "target",
            "robustness": [],
        },
        {"model": str(tmp_path / "model"), "test": str(tmp_path / "test")},
        {"metrics": str(tmp_path / "metrics"), "predictions": str(tmp_path / "p")},
        StepContext(),
    )
    got = artifacts.load_json(str(tmp_path / "metrics"), "metrics")["metrics"]
    y = test["target"].to_numpy()
    pred = model.predict(test.drop(columns="target"))
    f1s = []
    for k in (0, 1, 2):
        tp = np.sum((pred == k) & (y == k))
        f1s.append(2 * tp / (np.sum(pred == k) + np.sum(y == k)))
    proba = model.predict_proba(test.drop(columns="target"))
    assert got["accuracy"] == pytest.approx(np.mean(pred == y))
    assert got["f1"] == pytest.approx(np.mean(f1s))  # macro over the three classes
    assert got["log_loss"] == pytest.approx(-np.mean(np.log(proba[np.arange(len(y)), y])))
    params = {
        "gates": [
            {"metric": "accuracy", "op": ">=", "threshold": got["accuracy"], "direction": "higher"}
        ],
        "champion": {"metric": "log_loss", "direction": "lower"},
    }
    worse_champion = _gate(tmp_path, params, {"log_loss": got["log_loss"] + 0.1})
    assert worse_champion == {f"accuracy >= {got['accuracy']}": True, "champion log_loss": True}
    assert (
        _gate(tmp_path, params, {"log_loss": got["log_loss"] - 0.1})["champion log_loss"] is False
    )


def test_monitor_floor_and_retrain_wording_follow_direction(tmp_path: Path) -> None:
    model, test, y, pred = _regression(tmp_path)
    rmse = float(np.sqrt(np.mean((y - pred) ** 2)))
    for floor, worse in ((rmse - 0.1, True), (rmse + 0.1, False)):
        get("monitor")(
            _monitor_params({"metric": "rmse", "floor": floor, "direction": "lower"}),
            {"reference": test, "current": test, "model": model},
            {"signal": str(tmp_path / "signal")},
            StepContext(project_dir=tmp_path),
        )
        perf = artifacts.load_json(str(tmp_path / "signal"), "report")["performance"]
        assert perf["value"] == pytest.approx(rmse)
        assert perf["below_floor"] is worse, floor
    trig = [{"kind": "performance_drop", "metric": "rmse", "drop": 0.2, "direction": "lower"}]
    report = {"performance": {"values": {"rmse": 4.486}}}
    (check_,) = evaluate_triggers(trig, report, {"champion_metrics": {"rmse": 4.036}})
    assert check_["fired"] and check_["worse_by"] == pytest.approx(0.45)
    assert check_["reason"] == "rmse rose from 4.036 to 4.486 (worse by 0.45; >= 0.2)"
    (better,) = evaluate_triggers(trig, report, {"champion_metrics": {"rmse": 4.9}})
    assert (
        not better["fired"] and "rmse fell from 4.9 to 4.486 (better by 0.414" in better["reason"]
    )


# -- the monitoring target -------------------------------------------------------------------------

REGRESSION_MONITORING = """
monitoring:
  slos: {latency_p99_ms: 200, window: 5m}
  performance: {metric: rmse, floor: 60}
"""


def _spec(tmp_path: Path, base: Path, extra: str, replace: tuple[str, str] = ("", "")) -> Path:
    text = base.read_text(encoding="utf-8").replace(*replace)
    text = text.replace("\nfeedback:\n", f"{extra}\nfeedback:\n")
    spec = tmp_path / "spec" / "mlc.yaml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(text.replace("$schema=../../specs/", f"$schema={REPO}/specs/"))
    return spec


def _emit(tmp_path: Path, spec: Path) -> Path:
    compile_spec(spec, ["monitoring"], tmp_path / "out", [], registry())
    return tmp_path / "out" / "monitoring"


def _promtool_case(promtool: str, folder: Path, series: str, value: float, fires: bool) -> None:
    """A unit test of our own against the generated rules: `series` held at `value`."""
    rules = yaml.safe_load((folder / "rules.yaml").read_text())
    (perf,) = [
        r
        for g in rules["groups"]
        for r in g["rules"]
        if r.get("alert") == metrics_contract.ALERT_PERFORMANCE
    ]
    labels = {k: v for k, v in perf["labels"].items()}
    metric = series.split('metric="')[1].split('"')[0]
    expected = [
        {
            "exp_labels": {
                metrics_contract.LABEL_MODEL: perf["annotations"]["model"],
                "metric": metric,
                **labels,
            },
            "exp_annotations": perf["annotations"],
        }
    ]
    doc = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": series, "values": f"{value}x20"}],
                "alert_rule_test": [
                    {
                        "eval_time": "10m",
                        "alertname": metrics_contract.ALERT_PERFORMANCE,
                        "exp_alerts": expected if fires else [],
                    }
                ],
            }
        ],
    }
    (folder / "own.test.yaml").write_text(yaml.safe_dump(doc))
    proc = subprocess.run(
        [promtool, "test", "rules", "own.test.yaml"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rmse_alert_fires_above_the_floor_under_promtool(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    out = _emit(tmp_path, _spec(tmp_path, DIABETES, REGRESSION_MONITORING))
    prom = out / "prometheus"
    rules = (prom / "rules.yaml").read_text()
    assert (
        f'{metrics_contract.MODEL_PERFORMANCE}{{model="diabetes-progression",metric="rmse"}} > 60'
        in rules
    )
    assert "rmse on labelled traffic is above 60" in rules
    subprocess.run([promtool, "test", "rules", "rules.test.yaml"], cwd=prom, check=True)
    generated = yaml.safe_load((prom / "rules.test.yaml").read_text())["tests"]
    perf_series = [
        s for s in generated[0]["input_series"] if metrics_contract.MODEL_PERFORMANCE in s["series"]
    ]
    assert perf_series[0]["values"].startswith("60.6x")  # the firing case is a larger error
    series = f'{metrics_contract.MODEL_PERFORMANCE}{{model="diabetes-progression",metric="rmse"}}'
    _promtool_case(promtool, prom, series, 75.0, fires=True)
    _promtool_case(promtool, prom, series, 45.0, fires=False)
    board = json.loads((out / "grafana" / "diabetes-progression.json").read_text())
    (panel,) = [p for p in board["panels"] if p.get("title") == "rmse on labelled traffic"]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [(s["value"], s["color"]) for s in steps] == [(None, "green"), (60, "red")]


MULTICLASS = (
    "      default: {dtype: int, allowed: [0, 1]}",
    "      default: {dtype: int, allowed: [0, 1, 2]}",
)


@pytest.mark.parametrize(
    ("metric", "floor", "op", "bad", "good"),
    [("accuracy", 0.8, "<", 0.6, 0.95), ("log_loss", 0.5, ">", 0.9, 0.2)],
)
def test_multiclass_alert_direction_under_promtool(
    tmp_path: Path, metric: str, floor: float, op: str, bad: float, good: float
) -> None:
    promtool = require_tool("promtool")
    extra = f"  performance: {{metric: {metric}, floor: {floor}, label_delay: 30d}}\n"
    spec = _spec(
        tmp_path,
        CREDIT_ALONE,
        "",
        (
            "  performance: {metric: roc_auc, floor: 0.72, label_delay: 30d, schedule: '@daily'}\n",
            extra,
        ),
    )
    text = spec.read_text().replace(*MULTICLASS)
    spec.write_text(text)
    prom = _emit(tmp_path, spec) / "prometheus"
    rules = (prom / "rules.yaml").read_text()
    assert (
        f'{metrics_contract.MODEL_PERFORMANCE}{{model="credit-risk",metric="{metric}"}} '
        f"{op} {floor}" in rules
    )
    subprocess.run([promtool, "test", "rules", "rules.test.yaml"], cwd=prom, check=True)
    series = f'{metrics_contract.MODEL_PERFORMANCE}{{model="credit-risk",metric="{metric}"}}'
    _promtool_case(promtool, prom, series, bad, fires=True)
    _promtool_case(promtool, prom, series, good, fires=False)


# -- compile-time checks ---------------------------------------------------------------------------


def _warnings(spec: Path, *overrides: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for d in check(spec, list(overrides)).diagnostics:
        if d.code in ("MLC613", "MLC614"):
            out.setdefault(d.code, []).append(d.message)
    return out


def test_a_gate_pointing_the_worse_way_is_warned_about(tmp_path: Path) -> None:
    spec = _spec(tmp_path, DIABETES, "")
    assert _warnings(spec) == {}
    spec.write_text(spec.read_text().replace("op: '<=', threshold: 65", "op: '>', threshold: 65"))
    assert _warnings(spec) == {
        "MLC613": ["gate 'rmse > 65' lets worse models pass: lower rmse is better"]
    }


def test_vacuous_fairness_thresholds_are_warned_about() -> None:
    ratio = "governance.fairness.metric=demographic_parity_ratio"
    assert _warnings(CREDIT_ALONE) == {}
    assert _warnings(CREDIT_ALONE, ratio, "governance.fairness.threshold=0.8") == {}
    (kept_default,) = _warnings(CREDIT_ALONE, ratio)["MLC614"]
    assert "threshold 0.1 is close to no check" in kept_default
    (too_high,) = _warnings(CREDIT_ALONE, ratio, "governance.fairness.threshold=1.2")["MLC614"]
    assert "can never be met" in too_high
    (loose,) = _warnings(CREDIT_ALONE, "governance.fairness.threshold=1.0")["MLC614"]
    assert "always passes" in loose


def test_every_runtime_comparison_uses_the_direction_it_is_given(tmp_path: Path) -> None:
    """The same numbers judged with the opposite direction give the opposite answer, and a
    comparison without a direction is an error: no step falls back on a list of its own."""
    model, test, y, pred = _regression(tmp_path)
    rmse = float(np.sqrt(np.mean((y - pred) ** 2)))

    def drop(direction: str | None) -> float:
        get("evaluate")(
            {
                "metrics": ["rmse"],
                "directions": {"rmse": direction} if direction else {},
                "task": "regression",
                "target": "y",
                "robustness": [
                    {"kind": "noise", "features": ["a"], "magnitude": 0.5, "max_drop": 1.0}
                ],
            },
            {"model": model, "test": test},
            {"metrics": str(tmp_path / "m"), "predictions": str(tmp_path / "p")},
            StepContext(),
        )
        return float(artifacts.load_json(str(tmp_path / "m"), "metrics")["robustness"][0]["drop"])

    assert drop("lower") > 0 and drop("higher") == pytest.approx(-drop("lower"))

    def below(direction: str | None) -> bool:
        perf: dict[str, Any] = {"metric": "rmse", "floor": rmse - 0.1}
        if direction:
            perf["direction"] = direction
        get("monitor")(
            _monitor_params(perf),
            {"reference": test, "current": test, "model": model},
            {"signal": str(tmp_path / "signal")},
            StepContext(project_dir=tmp_path),
        )
        report = artifacts.load_json(str(tmp_path / "signal"), "report")
        return bool(report["performance"]["below_floor"])

    assert below("lower") is True and below("higher") is False

    def fired(direction: str | None) -> bool:
        trig: dict[str, Any] = {"kind": "performance_drop", "metric": "rmse", "drop": 0.2}
        if direction:
            trig["direction"] = direction
        report = {"performance": {"values": {"rmse": 4.5}}}
        (got,) = evaluate_triggers([trig], report, {"champion_metrics": {"rmse": 4.0}})
        return bool(got["fired"])

    assert fired("lower") is True and fired("higher") is False
    for judged in (drop, below, fired):
        with pytest.raises(StepError, match="no metric direction for 'rmse'"):
            judged(None)
