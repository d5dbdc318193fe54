"""`mode: batch` and `mode: edge` compile for the targets that run them: the local pipeline, the kfp
package (a component after register, a recurring run on the batch schedule) and the k8s
CronJob (strict Kubernetes schema)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from support import EXAMPLES

from mlc.compiler.api import check, compile_spec
from mlc.compiler.diagnostics import DiagnosticError

CREDIT = EXAMPLES / "credit" / "mlc.yaml"
DIABETES = EXAMPLES / "diabetes" / "mlc.yaml"
K8S_VERSION = "1.30"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("spec", [CREDIT, DIABETES], ids=["credit", "diabetes"])
@pytest.mark.parametrize("mode", ["batch", "edge"])
def test_examples_compile_for_local_and_kfp_with_the_mode_realised(
    tmp_path: Path, spec: Path, mode: str
) -> None:
    result = check(spec, [f"+serving={mode}"], ["local", "kfp"])
    assert result.ok, [d.render() for d in result.diagnostics]
    assert not [d for d in result.diagnostics if d.code == "MLC420" and d.path == "deployment"]
    kind = "batch_predict" if mode == "batch" else "export"
    compile_spec(spec, ["local", "kfp"], tmp_path, [f"+serving={mode}"])
    local = json.loads((tmp_path / "local" / "pipeline.json").read_text())
    (step,) = [s for s in local["steps"] if s["kind"] == kind]
    assert "register" in step["after"]
    assert step["when"] == "gate.passed"
    pipeline = _docs(tmp_path / "kfp" / "pipeline.yaml")[0]
    component = "comp-batch-predict" if mode == "batch" else "comp-export"
    assert component in pipeline["components"]
    executor = pipeline["deploymentSpec"]["executors"][f"exec-{component[5:]}"]
    assert json.dumps(kind) in " ".join(executor["container"]["command"])


def test_kfp_runs_the_pipeline_on_the_batch_schedule(tmp_path: Path) -> None:
    compile_spec(CREDIT, ["kfp"], tmp_path, ["+serving=batch"])
    runs = yaml.safe_load((tmp_path / "kfp" / "recurring-runs.yaml").read_text())
    (batch,) = [r for r in runs["recurring_runs"] if r["origin"] == "deployment.batch.schedule"]
    # the spec's '0 2 * * *' in KFP's six fields (seconds first)
    assert batch["cron_expression"] == "0 0 2 * * *"
    assert batch["name"] == "credit-risk-batch" and batch["max_concurrency"] == 1


def test_k8s_cronjob_passes_strict_schema_and_runs_mlc_batch(tmp_path: Path) -> None:
    compile_spec(DIABETES, ["k8s"], tmp_path, ["+serving=batch"])
    docs = _docs(tmp_path / "k8s" / "batch" / "cronjob.yaml")
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    account, cron = docs
    assert account["kind"] == "ServiceAccount" and cron["kind"] == "CronJob"
    assert cron["spec"]["schedule"] == "@weekly"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    (container,) = pod["containers"]
    assert container["command"] == ["mlc"]
    args = container["args"]
    assert args[:2] == ["batch", "/project/mlc.yaml"]
    assert args[args.index("--input") + 1] == "data/diabetes.csv"
    assert args[args.index("--alias") + 1] == "champion"
    assert pod["restartPolicy"] == "Never"


def test_k8s_cronjob_reads_secrets_by_reference_only(tmp_path: Path) -> None:
    compile_spec(CREDIT, ["k8s"], tmp_path, ["+serving=batch"])
    text = (tmp_path / "k8s" / "batch" / "cronjob.yaml").read_text()
    (cron,) = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "CronJob"]
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    secret_env = [e for e in container["env"] if "valueFrom" in e]
    assert {e["name"] for e in secret_env} == {"MLC_PSEUDONYM_KEY"}
    assert all("value" not in e for e in secret_env)
    for doc in yaml.safe_load_all(text):
        if doc:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_serving_only_targets_still_refuse_a_spec_without_an_endpoint(tmp_path: Path) -> None:
    with pytest.raises(DiagnosticError) as err:
        compile_spec(CREDIT, ["kserve"], tmp_path, ["+serving=batch"])
    assert [d.code for d in err.value.diagnostics if d.code == "MLC711"] == ["MLC711"]


def test_an_overlay_that_changes_a_kind_replaces_the_mapping() -> None:
    # the credit spec's canary (steps, bake_time, rollback) does not leak into recreate
    result = check(CREDIT, ["+serving=edge"], ["local"])
    assert result.ok
    (export,) = [s for s in result.ir.steps if s.kind.value == "export"]
    assert export.params["strategy"] == {"kind": "recreate"}
    assert export.params["edge"]["quantize"] == "dynamic"
    assert [r.feature for r in export.requires] == ["mode.edge"]


def test_batch_id_column_outside_the_contract_is_located() -> None:
    with pytest.raises(DiagnosticError) as err:
        check(CREDIT, ["+serving=batch", "deployment.batch.id_column=applicant"], ["local"])
    (diag,) = [d for d in err.value.diagnostics if d.path == "deployment.batch.id_column"]
    assert diag.code == "MLC201" and "'applicant'" in diag.message
    assert "applicant_id" in (diag.hint or "")
