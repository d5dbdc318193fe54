"""The reference profile: built at training time, stored with the version, scored against."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance
from sklearn.linear_model import LogisticRegression
from support.tools import require_tool

from mlc.runtime import artifacts, drift, metrics_contract, profile
from mlc.runtime.context import StepContext
from mlc.runtime.steps import get


def _data(n: int = 5000, seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame(
        {
            "x": rng.normal(50, 10, n),
            "k": rng.integers(0, 5, n).astype(float),  # discrete: merged quantile edges
            "color": rng.choice(["red", "green", "blue"], n, p=[0.6, 0.3, 0.1]),
        }
    )
    cur = pd.DataFrame(
        {
            "x": rng.normal(55, 12, n // 2),
            "k": rng.integers(0, 7, n // 2).astype(float),
            "color": rng.choice(["red", "green", "blue", "pink"], n // 2, p=[0.3, 0.3, 0.3, 0.1]),
        }
    )
    ref.loc[::50, "x"] = np.nan
    ref.loc[::70, "color"] = None
    cur.loc[::20, "x"] = np.nan
    return ref, cur


def test_profile_bytes_are_deterministic_and_counts_exact() -> None:
    ref, _ = _data()
    text = profile.dumps(profile.build(ref))
    assert text == profile.dumps(profile.build(ref.copy()))
    doc = profile.loads(text)
    assert doc["schema_version"] == profile.SCHEMA_VERSION and doc["rows"] == len(ref)
    x = doc["features"]["x"]
    finite = ref["x"].dropna().to_numpy()
    assert x["n"] == len(finite) and x["missing"] == int(ref["x"].isna().sum())
    # independent count: a value v lies in bin i when edges[i-1] <= v < edges[i]
    edges = np.asarray(x["edges"])
    expected = [
        int(((finite >= lo) & (finite < hi)).sum())
        for lo, hi in zip([-np.inf, *edges], [*edges, np.inf], strict=True)
    ]
    assert x["counts"] == expected and sum(x["counts"]) == len(finite)
    deciles = np.quantile(finite, np.linspace(0, 1, 11)[1:-1])
    assert edges.tolist() == np.unique(deciles).tolist()
    assert x["quantiles"][0] == finite.min() and x["quantiles"][-1] == finite.max()
    assert x["mean"] == pytest.approx(finite.mean(), rel=1e-11)
    k = doc["features"]["k"]
    assert k["edges"] == [0.0, 1.0, 2.0, 3.0, 4.0] and len(k["counts"]) == 6  # merged deciles
    color = doc["features"]["color"]
    assert color["counts"] == ref["color"].dropna().value_counts().to_dict()
    assert color["missing"] == int(ref["color"].isna().sum())
    assert json.loads(text) == doc and text.endswith("\n") and " " not in text


@pytest.mark.parametrize("method", ["psi", "chi2", "jensen_shannon"])
def test_binned_scores_from_the_profile_equal_those_from_the_raw_reference(method: str) -> None:
    ref, cur = _data()
    doc = profile.loads(profile.dumps(profile.build(ref)))
    features = ["x", "k", "color"]
    raw = drift.feature_drift(ref, cur, features, method, 0.1, categorical=method)
    got = drift.profile_drift(doc, cur, features, method, 0.1, categorical=method)
    for a, b in zip(raw, got, strict=True):
        assert a["method"] == b["method"] == method
        assert b["score"] == pytest.approx(a["score"], abs=1e-12)
        assert b["drifted"] == a["drifted"]
        assert b["missing_rate_current"] == pytest.approx(a["missing_rate_current"])
        assert b["missing_rate_reference"] == pytest.approx(a["missing_rate_reference"])
        assert "approximation" not in b and b["why"]


def test_scores_match_hand_and_scipy_computations_on_a_known_shift() -> None:
    # reference: 0..9999 evenly; deciles are exact. current: shifted by a tenth of the range
    ref = pd.DataFrame({"u": np.arange(10000.0), "c": ["a"] * 7000 + ["b"] * 3000})
    cur = pd.DataFrame({"u": np.arange(10000.0) + 1000.0, "c": ["a"] * 4000 + ["b"] * 6000})
    doc = profile.build(ref)
    # hand PSI: the first decile bin empties, the last one doubles
    p = np.full(10, 0.1) + drift.EPSILON
    q = np.array([0.0] + [0.1] * 8 + [0.2]) + drift.EPSILON
    (psi_u,) = drift.profile_drift(doc, cur, ["u"], "psi", 0.2)
    assert psi_u["score"] == pytest.approx(float(np.sum((q - p) * np.log(q / p))), abs=1e-12)
    # chi2 on the categories: Cramér's V from scipy's contingency test
    (chi_c,) = drift.profile_drift(doc, cur, ["c"], "psi", 0.2, categorical="chi2")
    table = np.array([[7000, 3000], [4000, 6000]])
    stat, pvalue, _, _ = stats.chi2_contingency(table, correction=False)
    assert chi_c["method"] == "chi2" and "drift.categorical" in chi_c["why"]
    assert chi_c["score"] == pytest.approx(np.sqrt(stat / table.sum()), abs=1e-12)
    assert chi_c["p_value"] == pytest.approx(pvalue, rel=1e-9)
    (js_c,) = drift.profile_drift(doc, cur, ["c"], "psi", 0.2, categorical="jensen_shannon")
    assert js_c["score"] == pytest.approx(
        distance.jensenshannon([0.7, 0.3], [0.4, 0.6], base=2), abs=1e-12
    )
    (ks_u,) = drift.profile_drift(doc, cur, ["u"], "ks", 0.2)
    assert ks_u["score"] == pytest.approx(0.1, abs=1e-3)  # the CDFs are a tenth apart
    (w_u,) = drift.profile_drift(doc, cur, ["u"], "wasserstein", 0.2)
    assert w_u["score"] == pytest.approx(1000.0 / np.std(ref["u"]), rel=1e-3)


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.5])
def test_ks_and_wasserstein_from_quantiles_stay_within_the_stated_bound(shift: float) -> None:
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": rng.lognormal(0, 0.6, 20000)})
    cur = pd.DataFrame({"x": rng.lognormal(shift, 0.7, 8000)})
    doc = profile.build(ref)
    entry = doc["features"]["x"]
    exact_ks = stats.ks_2samp(ref["x"], cur["x"]).statistic
    exact_w = stats.wasserstein_distance(ref["x"], cur["x"]) / np.std(ref["x"])
    (ks,) = drift.profile_drift(doc, cur, ["x"], "ks", 0.1)
    (w,) = drift.profile_drift(doc, cur, ["x"], "wasserstein", 0.1)
    assert abs(ks["score"] - exact_ks) <= profile.approximation_bound(entry, "ks")
    assert abs(w["score"] - exact_w) <= profile.approximation_bound(entry, "wasserstein")
    assert "reference quantiles" in ks["approximation"]
    # the bound is not vacuous: 1/100 + 1/20000 for KS
    assert profile.approximation_bound(entry, "ks") == pytest.approx(0.01005)


def test_loads_refuses_other_schema_versions_and_torn_entries() -> None:
    ref, _ = _data(200)
    doc = profile.build(ref)
    with pytest.raises(profile.ProfileError, match="schema version 99"):
        profile.loads(profile.dumps({**doc, "schema_version": 99}))
    broken = json.loads(profile.dumps(doc))
    broken["features"]["x"]["counts"] = [1]
    with pytest.raises(profile.ProfileError, match="do not fit its edges"):
        profile.loads(json.dumps(broken))
    with pytest.raises(profile.ProfileError, match="not JSON"):
        profile.loads("{torn")
    with pytest.raises(profile.ProfileError, match="not an mlc reference profile"):
        profile.loads("{}")


def _classifier(n: int = 3000) -> tuple[LogisticRegression, pd.DataFrame]:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"a": rng.normal(0, 1, n), "b": rng.normal(0, 1, n)})
    y = (frame["a"] + 0.5 * rng.normal(size=n) > 0).astype(int)
    model = LogisticRegression().fit(frame, y)
    return model, frame.assign(label=y)


def _run_monitor(
    tmp_path: Path, inputs: dict[str, str], current: pd.DataFrame, min_rows: int = 50
) -> dict[str, object]:
    loc = str(tmp_path / "current")
    artifacts.save_dataframe(loc, current)
    params = {
        "drift": {
            "method": "psi",
            "numeric": "psi",
            "categorical": "chi2",
            "threshold": 0.2,
            "features": ["a", "b"],
            "schedule": "@hourly",
        },
        "window": 86400.0,
        "min_rows": min_rows,
        "performance": None,
        "model_name": "m",
        "target": "label",
        "task": "classification",
        "metrics": [],
    }
    signal = str(tmp_path / "signal")
    ctx = StepContext(project_dir=tmp_path, state_dir=tmp_path / ".mlc")
    get("monitor")(params, {**inputs, "current": loc}, {"signal": signal}, ctx)
    report: dict[str, object] = artifacts.load_json(signal, "report")
    report["_prom"] = artifacts.load_text(signal, "metrics.prom")
    return report


def test_monitor_step_scores_from_the_profile_as_from_the_train_split(tmp_path: Path) -> None:
    model, train = _classifier()
    model_loc = str(tmp_path / "model")
    artifacts.save_object(model_loc, model, "model")
    ref_loc = str(tmp_path / "train")
    artifacts.save_dataframe(ref_loc, train)
    text = profile.for_step({"reference": ref_loc}, "label", "classification", model, "register")
    assert text is not None
    doc = profile.loads(text)
    predicted = pd.Series(model.predict(train[["a", "b"]])).astype(str).value_counts()
    assert doc["prediction"]["counts"] == predicted.to_dict()  # class shares of the train split
    (tmp_path / "profile.json").write_text(text)
    rng = np.random.default_rng(9)
    shifted = pd.DataFrame({"a": rng.normal(1.2, 1, 800), "b": rng.normal(0, 1, 800)})
    by_profile = _run_monitor(
        tmp_path / "p", {"profile": str(tmp_path / "profile.json"), "model": model_loc}, shifted
    )
    by_split = _run_monitor(tmp_path / "s", {"reference": ref_loc, "model": model_loc}, shifted)
    assert by_profile["reference"]["source"] == "profile"  # type: ignore[index]
    assert by_split["reference"]["source"] == "training split"  # type: ignore[index]
    for a, b in zip(by_profile["drift"], by_split["drift"], strict=True):  # type: ignore[call-overload]
        assert a["score"] == pytest.approx(b["score"], abs=1e-12)
    assert by_profile["drifted"] == ["a"] and by_profile["verdict"] == "drift"
    # more rows now predicted positive: the prediction drift sees it, from the class counts
    pred = by_profile["prediction_drift"]
    assert pred["method"] == "chi2" and pred["drifted"]  # type: ignore[index]
    assert pred["score"] == pytest.approx(by_split["prediction_drift"]["score"], abs=1e-12)  # type: ignore[index]
    prom = str(by_profile["_prom"])
    assert f'{metrics_contract.PREDICTION_DRIFT_SCORE}{{model="m"}}' in prom
    assert f'{metrics_contract.MONITOR_ROWS}{{model="m",sample="current"}} 800' in prom
    assert f'{metrics_contract.MONITOR_ROWS}{{model="m",sample="reference"}} 3000' in prom


def test_too_few_rows_in_the_window_are_insufficient_data(tmp_path: Path) -> None:
    _, train = _classifier()
    (tmp_path / "profile.json").write_text(profile.dumps(profile.build(train, target="label")))
    few = pd.DataFrame({"a": [5.0] * 10, "b": [5.0] * 10})  # far off, but ten rows say little
    report = _run_monitor(tmp_path, {"profile": str(tmp_path / "profile.json")}, few, 50)
    assert report["verdict"] == "insufficient data"
    assert report["drift"] == [] and report["drifted"] == []
    assert "fewer than monitoring.min_rows = 50" in str(report["insufficient"])


def test_textfile_is_replaced_whole_and_passes_promtool(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    ref, cur = _data(1000)
    rows = drift.profile_drift(profile.build(ref), cur, ["x", "color"], "psi", 0.2)
    text = drift.prometheus_text(
        "credit",
        rows,
        {"roc_auc": 0.8},
        prediction={"score": 0.05},
        rows={"current": 500, "labelled": 20},
        timestamp=1.7e9,
    )
    path = tmp_path / "node" / "mlc.prom"
    path.parent.mkdir()
    path.write_text("stale\n")
    drift.write_textfile(path, text)
    assert path.read_text() == text
    assert [p.name for p in path.parent.iterdir()] == ["mlc.prom"]  # no temporary left behind
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
