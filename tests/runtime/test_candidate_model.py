"""One candidate model from gate to register (issue 11, item 1).

With `governance.fairness.mitigation` set, the mitigated model is the candidate: the fairness
check, the metric gates, the explanations and the card judge it, and it is what register ships.
Mitigation accounts for every sensitive attribute, and the verdict names the attribute and the
groups of a failing fairness check. The data: two sensitive attributes where group `b0` lives
mostly in `a0`, so equalising `grp_a` alone shifts `grp_b` apart (built here, fixed seed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext
from mlc.runtime.steps import get

ATTRS = ["grp_a", "grp_b"]
METRIC = "demographic_parity_difference"

SPEC = """\
apiVersion: mlc/v1
name: two-groups
description: Binary classifier judged on two sensitive attributes.
owners: [ml@example.com]
data:
  sources:
    - {name: rows, format: csv, path: data/rows.csv}
  contract:
    columns:
      id: {dtype: int, unique: true}
      x1: {dtype: float}
      x2: {dtype: float}
      grp_a: {dtype: category, allowed: [a0, a1]}
      grp_b: {dtype: category, allowed: [b0, b1]}
      y: {dtype: int, allowed: [0, 1]}
  split: {method: stratified, test_size: 0.25, seed: 1}
features:
  target: y
  transforms:
    - {op: scale, columns: [x1, x2]}
  selection:
    exclude: [id, grp_a, grp_b]
training:
  framework: sklearn
  task: classification
  model: {name: LogisticRegression, params: {C: 1.0, max_iter: 200}}
  seed: 1
evaluation:
  metrics: [roc_auc, accuracy]
  gates:
    - {metric: roc_auc, op: '>=', threshold: 0.6}
governance:
  fairness:
    sensitive_attributes: [grp_a, grp_b]
    metric: demographic_parity_difference
    threshold: 0.1
    mitigation: threshold_optimizer
  explainability: {method: permutation, top_k: 5}
"""


def two_groups(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    """Rows whose positive rate differs by cell of (grp_a, grp_b); the label follows x1."""
    from scipy.stats import norm

    rng = np.random.default_rng(seed)
    # (grp_a, grp_b, share, positive rate): b0 mostly in a0, b1 mostly in a1
    cells = [("a0", "b0", 0.4, 0.45), ("a0", "b1", 0.1, 0.9), ("a1", "b0", 0.1, 0.1)]
    cells.append(("a1", "b1", 0.4, 0.35))
    idx = rng.choice(len(cells), size=n, p=[c[2] for c in cells])
    x1 = np.array([norm.ppf(cells[i][3]) for i in idx]) + rng.normal(size=n)
    x2 = rng.normal(size=n)
    y = ((x1 + 0.3 * x2 + rng.normal(scale=0.5, size=n)) > 0).astype(int)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "x1": x1.round(4),
            "x2": x2.round(4),
            "grp_a": [cells[i][0] for i in idx],
            "grp_b": [cells[i][1] for i in idx],
            "y": y,
        }
    )


def write_project(root: Path, spec: str = SPEC) -> Path:
    """A spec project under `root` with the two-groups data; returns the spec file."""
    (root / "data").mkdir(parents=True)
    two_groups().to_csv(root / "data" / "rows.csv", index=False)
    path = root / "mlc.yaml"
    path.write_text(spec)
    return path


def run_project(spec: Path, *overrides: str, from_step: str | None = None) -> Any:
    """`mlc run` in-process: the IR and the run's result."""
    from mlc.compiler.api import check
    from mlc.targets.local.executor import RunOptions, execute

    result = check(spec, overrides, targets=["local"])
    assert result.ok, [str(d) for d in result.diagnostics]
    options = result.options["local"]
    project = Path(result.loaded.project_dir)
    run = execute(
        result.ir,
        RunOptions(
            project_dir=project,
            state_dir=project / options.state_dir,
            tracking_uri=options.tracking_uri,
            from_step=from_step,
            quiet=True,
        ),
    )
    return result.ir, run


def selection_gap(pred: Any, groups: pd.Series) -> tuple[float, str, str]:
    """Largest minus smallest selection rate by group, and those groups (high, low)."""
    rates = (
        pd.Series(np.asarray(pred) == 1, index=groups.index).groupby(groups, observed=True).mean()
    )
    return float(rates.max() - rates.min()), str(rates.idxmax()), str(rates.idxmin())


def _fitted(tmp_path: Path) -> tuple[dict[str, str], pd.DataFrame]:
    """Train/test artifacts and a fitted pipeline that reads x1 and x2 only."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline

    df = two_groups()
    train, test = train_test_split(df, test_size=0.25, random_state=1, stratify=df["y"])
    locs = {name: str(tmp_path / name) for name in ("train", "test", "model")}
    artifacts.save_dataframe(locs["train"], train)
    artifacts.save_dataframe(locs["test"], test)
    columns = ColumnTransformer([("keep", "passthrough", ["x1", "x2"])])
    model = Pipeline([("transform", columns), ("model", LogisticRegression())])
    model.fit(train.drop(columns="y"), train["y"])
    artifacts.save_object(locs["model"], model, "model")
    return locs, test


def _fairness(tmp_path: Path, locs: dict[str, str], mitigation: str) -> dict[str, str]:
    params = {
        "sensitive_attributes": ATTRS,
        "metric": METRIC,
        "threshold": 0.1,
        "mitigation": mitigation,
        "target": "y",
    }
    names = ("metrics", "report", "model") if mitigation != "none" else ("metrics", "report")
    outs = {name: str(tmp_path / f"fair-{mitigation}-{name}") for name in names}
    get("fairness")(params, locs, outs, StepContext(project_dir=tmp_path))
    return outs


def test_mitigation_accounts_for_every_sensitive_attribute(tmp_path: Path) -> None:
    from fairlearn.postprocessing import ThresholdOptimizer

    locs, test = _fitted(tmp_path)
    model = artifacts.load_object(locs["model"])
    train = artifacts.load_dataframe(locs["train"])
    x = test.drop(columns="y")
    before_b, _, _ = selection_gap(model.predict(x), x["grp_b"])
    assert before_b < 0.1  # grp_b passes before mitigation, grp_a does not
    assert selection_gap(model.predict(x), x["grp_a"])[0] > 0.1

    # What mitigating the first attribute alone (the old behaviour) does to the second one.
    first_only = ThresholdOptimizer(
        estimator=model, constraints="demographic_parity", prefit=True
    ).fit(train.drop(columns="y"), train["y"], sensitive_features=train["grp_a"])
    pred_first = first_only.predict(x, sensitive_features=x["grp_a"], random_state=0)
    assert selection_gap(pred_first, x["grp_b"])[0] > max(0.1, before_b + 0.1)

    outs = _fairness(tmp_path, locs, "threshold_optimizer")
    candidate = artifacts.load_object(outs["model"])
    assert candidate.sensitive == ATTRS
    pred = candidate.predict(x)
    # the candidate decides as fairlearn's optimizer over both attributes' combinations does
    both = ThresholdOptimizer(
        estimator=model,
        constraints="demographic_parity",
        prefit=True,
        predict_method="predict_proba",
    ).fit(train.drop(columns="y"), train["y"], sensitive_features=train[ATTRS])
    assert list(pred) == list(both.predict(x, sensitive_features=x[ATTRS], random_state=0))
    doc = artifacts.load_json(outs["metrics"], "metrics")
    assert doc["candidate"] == "mitigated"
    for attr in ATTRS:
        gap, high, low = selection_gap(pred, x[attr])
        assert doc["by_attribute"][attr] == pytest.approx(gap)
        assert gap <= 0.1, attr
        assert doc["worst_groups"][attr]["high"]["group"] == high
        assert doc["worst_groups"][attr]["low"]["group"] == low
    assert doc["value"] == pytest.approx(max(doc["by_attribute"].values()))
    assert doc["before_mitigation"]["by_attribute"]["grp_b"] == pytest.approx(before_b)
    # The candidate's probabilities are the randomized rule's: predict draws from them.
    proba = candidate.predict_proba(x)
    assert proba.shape == (len(x), 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert list(pred) == list(candidate.predict(x))


def test_failing_fairness_check_names_the_attribute_and_groups(tmp_path: Path) -> None:
    locs, test = _fitted(tmp_path)
    outs = _fairness(tmp_path, locs, "none")
    assert "model" not in outs  # no mitigation: the trained model is the candidate
    gate_params = {
        "gates": [],
        "champion": None,
        "robustness": [],
        "fairness": {
            "metric": METRIC,
            "threshold": 0.1,
            "direction": "lower",
            "sensitive_attributes": ATTRS,
            "mitigation": "none",
        },
        "model_name": "toy",
    }
    metrics = str(tmp_path / "eval")
    artifacts.save_json(metrics, "metrics", {"metrics": {}}, "metrics")
    verdict_loc = str(tmp_path / "verdict")
    summary = get("gate")(
        gate_params,
        {"metrics": metrics, "fairness": outs["metrics"]},
        {"verdict": verdict_loc},
        StepContext(),
    )
    assert summary["passed"] is False
    verdict = artifacts.load_json(verdict_loc, "verdict")
    rows = {c["attribute"]: c for c in verdict["checks"] if c["kind"] == "fairness"}
    assert set(rows) == set(ATTRS)
    model = artifacts.load_object(locs["model"])
    x = test.drop(columns="y")
    gap, high, low = selection_gap(model.predict(x), x["grp_a"])
    failing = rows["grp_a"]
    assert failing["passed"] is False and failing["value"] == pytest.approx(gap)
    assert failing["groups"] == [high, low]
    assert f"(grp_a: {high} vs {low})" in failing["name"]
    assert high in failing["reason"] and low in failing["reason"]
    assert rows["grp_b"]["passed"] is True
    assert summary["failed"] == [failing["name"]]


@pytest.mark.slow
def test_the_registered_model_is_the_one_the_gates_judged(tmp_path: Path) -> None:
    import mlflow.pyfunc
    from mlflow import MlflowClient
    from sklearn.metrics import roc_auc_score

    from mlc.runtime.steps.register import MODEL_HASH_TAG, _mlflow_uris_restored

    ir, run = run_project(write_project(tmp_path / "project"))
    assert run.status == "succeeded", run.error
    for step in ("evaluate", "explain", "register", "model-card"):
        assert ir.step(step).inputs["model"] == "fairness.model", step
    out = {s.step_id: s.outputs for s in run.steps}
    candidate_loc, trained_loc = out["fairness"]["model"], out["train"]["model"]
    candidate_hash = artifacts.read_meta(candidate_loc)["hash"]
    assert candidate_hash != artifacts.read_meta(trained_loc)["hash"]

    # register shipped the candidate: the registry's hash tag and the card name it alone
    version = artifacts.load_json(out["register"]["model_version"], "model_version")
    assert version["model_hash"] == candidate_hash and version["new_version"] is True
    uri = version["tracking_uri"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mv = client.get_model_version("two-groups", version["version"])
    assert mv.tags[MODEL_HASH_TAG] == candidate_hash
    card = artifacts.load_json(out["model-card"]["card"], "card")
    assert card["lineage"]["model_hash"] == candidate_hash
    card_md = (Path(out["model-card"]["card"]) / "card.md").read_text()
    assert card_md.count("**Model hash**") == 1 and candidate_hash in card_md

    # the gate's numbers, recomputed with sklearn from the registered model's predictions
    test = artifacts.load_dataframe(out["split"]["test"])
    x, y = test.drop(columns="y"), test["y"]
    with _mlflow_uris_restored():
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        registered = mlflow.pyfunc.load_model(f"models:/two-groups/{version['version']}")
    shipped_pred = np.asarray(registered.predict(x))
    candidate = artifacts.load_object(candidate_loc)
    assert list(shipped_pred) == list(candidate.predict(x))
    verdict = artifacts.load_json(out["gate"]["verdict"], "verdict")
    checks = {c.get("attribute") or c["name"]: c for c in verdict["checks"]}
    auc = roc_auc_score(y, candidate.predict_proba(x)[:, 1])
    assert checks["roc_auc >= 0.6"]["value"] == pytest.approx(auc)
    trained = artifacts.load_object(trained_loc)
    assert abs(roc_auc_score(y, trained.predict_proba(x)[:, 1]) - auc) > 1e-3
    for attr in ATTRS:
        gap, high, low = selection_gap(shipped_pred, x[attr])
        assert checks[attr]["value"] == pytest.approx(gap)
        assert checks[attr]["groups"] == [high, low]
        assert checks[attr]["passed"] is True
