"""What a user finds in MLflow after `mlc run` (issue 11, items 14 and 10's register half).

The registered version's run carries the hyperparameters training used (tuned and fixed), the
tuning trials, the model card (Markdown and JSON) and explanations without excluded or PII
columns; registering the same bytes again adds no version and moves no alias.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_candidate_model import SPEC, run_project, write_project

from mlc.runtime import artifacts, audit

TUNED_SPEC = SPEC.replace(
    "evaluation:\n",
    """tuning:
  objective: {metric: roc_auc, direction: maximize}
  search_space:
    C: {type: float, low: 0.01, high: 10.0, log: true}
  trials: 3
  cv_folds: 2
evaluation:
""",
).replace("      id: {dtype: int, unique: true}", "      id: {dtype: int, unique: true, pii: true}")


def test_explanations_leave_out_excluded_and_pii_columns_in_the_ir() -> None:
    from support import CREDIT

    from mlc.compiler.api import check

    ir = check(CREDIT, ()).ir
    # email is PII (pseudonymised, still a feature); applicant_id and sex are excluded
    assert ir.step("explain").params["exclude"] == ["applicant_id", "email", "sex"]


@pytest.mark.slow
def test_mlflow_run_shows_params_trials_card_and_reruns_move_nothing(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from mlc.runtime.steps.register import MODEL_HASH_TAG

    spec = write_project(tmp_path / "project", TUNED_SPEC)
    _, run = run_project(spec)
    assert run.status == "succeeded", run.error
    out = {s.step_id: s.outputs for s in run.steps}
    study = artifacts.load_json(out["tune"]["study"], "study")
    best = artifacts.load_json(out["tune"]["best_params"], "params")["best_params"]
    version = artifacts.load_json(out["register"]["model_version"], "model_version")
    uri = version["tracking_uri"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mv = client.get_model_version("two-groups", version["version"])
    mlflow_run = client.get_run(mv.run_id)

    # hyperparameters: the tuned one at its best value, the fixed one from the spec
    params = mlflow_run.data.params
    assert params["estimator"] == "LogisticRegression"
    assert float(params["C"]) == pytest.approx(best["C"])
    assert params["max_iter"] == "200"
    assert mlflow_run.data.tags["mlc.tuned_params"] == "C"

    def logged(path: str) -> str:
        folder = client.download_artifacts(mv.run_id, path, str(tmp_path / "dl"))
        return Path(folder).read_text()

    trials = json.loads(logged("tuning/trials.json"))
    assert len(trials) == study["trials_total"] >= 3
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    assert max(t["value"] for t in complete) == pytest.approx(study["best_value"])
    assert all(set(t["params"]) == {"C"} for t in trials)

    # the model card, in both forms, names one model hash: the registered one
    card = json.loads(logged("model_card/card.json"))
    assert card["lineage"]["model_hash"] == mv.tags[MODEL_HASH_TAG] == version["model_hash"]
    card_md = logged("model_card/card.md")
    assert card_md.startswith("# Model card: two-groups")
    assert card_md.count("**Model hash**") == 1

    # explanations: neither the excluded columns nor the PII one
    explain = json.loads(logged("reports/explain.json"))
    ranked = {row["feature"] for row in explain["features"]}
    assert ranked == {"x1", "x2"}
    assert explain["left_out"] == ["grp_a", "grp_b", "id"]

    # the same bytes registered again: no new version, aliases where they were
    before = sorted(client.get_model_version("two-groups", version["version"]).aliases)
    _, again = run_project(spec, from_step="register")
    assert again.status == "succeeded", again.error
    register = next(s for s in again.steps if s.step_id == "register")
    assert register.status == "ran"
    assert register.summary["new"] is False and "aliases unchanged" in register.summary["note"]
    rerun_doc = artifacts.load_json(register.outputs["model_version"], "model_version")
    assert rerun_doc["new_version"] is False and rerun_doc["version"] == version["version"]
    assert sorted(rerun_doc["aliases"]) == before == ["challenger", "champion"]
    assert len(client.search_model_versions("name = 'two-groups'")) == 1
    events = [r["event"] for r in audit.read(spec.parent / ".mlc")]
    assert events.count("registration") == 1 and events.count("promotion") == 1
