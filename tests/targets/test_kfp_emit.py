"""kfp target: the package parses strictly as kfp's protobufs, loads with kfp, is byte-stable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format

from mlc.compiler.api import check, compile_spec
from mlc.compiler.diagnostics import DiagnosticError
from mlc.compiler.ir import IRGraph
from mlc.targets.base import EmitContext
from mlc.targets.kfp import KfpOptions, KfpTarget
from mlc.targets.kfp.checks import is_image_reference

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*/mlc.yaml"))
GOLDENS = REPO / "tests" / "goldens" / "kfp"


def _compile(tmp_path: Path, spec: Path, *overrides: str) -> Path:
    compile_spec(spec, ["kfp"], tmp_path, overrides)
    return tmp_path / "kfp"


def _docs(path: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(path.read_text()))


def assert_kfp_valid(package: Path) -> list[dict[str, Any]]:
    """The real consumers: kfp's protobufs (strict) and kfp's component loader."""
    import kfp.components
    from kfp.kubernetes import kubernetes_executor_config_pb2
    from kfp.pipeline_spec import pipeline_spec_pb2

    docs = _docs(package)
    json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())
    if len(docs) > 1:
        json_format.ParseDict(docs[1], pipeline_spec_pb2.PlatformSpec())
        executors = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        for config in executors.values():
            json_format.ParseDict(config, kubernetes_executor_config_pb2.KubernetesExecutorConfig())
    loaded = kfp.components.load_component_from_file(str(package))
    assert loaded.name == docs[0]["pipelineInfo"]["name"]
    return docs


@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_golden_and_valid(spec: Path, tmp_path: Path, update_goldens: bool) -> None:
    out = _compile(tmp_path / "a", spec)
    again = _compile(tmp_path / "b", spec)
    golden = GOLDENS / spec.parent.name
    names = sorted(p.name for p in out.iterdir())
    for name in names:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    if update_goldens:
        golden.mkdir(parents=True, exist_ok=True)
        for name in names:
            (golden / name).write_bytes((out / name).read_bytes())
    assert names == sorted(p.name for p in golden.iterdir())
    for name in names:
        assert (out / name).read_bytes() == (golden / name).read_bytes(), f"{name} != golden"
    docs = assert_kfp_valid(out / "pipeline.yaml")
    text = (out / "pipeline.yaml").read_text()
    assert "kfp-2." not in text and str(REPO) not in text
    assert docs[0]["sdkVersion"] == "mlc"


def test_credit_structure(tmp_path: Path) -> None:
    docs = assert_kfp_valid(_compile(tmp_path, REPO / "examples/credit/mlc.yaml") / "pipeline.yaml")
    spec, platform = docs
    comps, execs = spec["components"], spec["deploymentSpec"]["executors"]
    main = comps["comp-exit-handler-1"]["dag"]["tasks"]
    # One component per IR pipeline step, each calling the runtime step entry.
    for step in (
        "ingest-applications",
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
        "model-card",
    ):
        source = execs[f"exec-{step}"]["container"]["command"][3]
        assert '"-m", "mlc.runtime", "step"' in source
    # Typed artifacts.
    evaluate = comps["comp-evaluate"]["outputDefinitions"]["artifacts"]
    assert evaluate["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    assert evaluate["predictions"]["artifactType"]["schemaTitle"] == "system.Dataset"
    card = comps["comp-model-card"]["outputDefinitions"]["artifacts"]["card"]
    assert card["artifactType"]["schemaTitle"] == "system.Markdown"
    assert (
        comps["comp-train"]["outputDefinitions"]["artifacts"]["model"]["artifactType"][
            "schemaTitle"
        ]
        == "system.Model"
    )
    # Register only on the passing branch; the else branch registers nothing.
    assert "register" not in main
    passed = comps["comp-condition-2"]["dag"]["tasks"]
    failed = comps["comp-condition-3"]["dag"]["tasks"]
    assert set(passed) == {"register"} and set(failed) == {"gate-rejected"}
    branches = comps["comp-condition-branches-1"]["dag"]["tasks"]
    assert branches["condition-2"]["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--gate-Output'] == true"
    )
    assert branches["condition-3"]["triggerPolicy"]["condition"].startswith("!(")
    # Resources, retries, caching, timeouts from the IR.
    res = execs["exec-train"]["container"]["resources"]
    assert res["resourceCpuRequest"] == res["resourceCpuLimit"] == "2"
    assert res["resourceMemoryRequest"] == res["resourceMemoryLimit"] == "4Gi"
    assert main["train"]["retryPolicy"]["maxRetryCount"] == 1
    assert main["train"]["cachingOptions"] == {"enableCache": True}
    assert main["model-card"]["cachingOptions"] == {}
    assert passed["register"]["cachingOptions"] == {}
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert k8s["exec-train"]["activeDeadlineSeconds"] == "900"
    # Secrets by reference only, and only for the step that names them.
    assert k8s["exec-features"]["secretAsEnv"][0]["secretName"] == "credit-risk"
    assert k8s["exec-features"]["secretAsEnv"][0]["keyToEnv"] == [
        {"envVar": "MLC_PSEUDONYM_KEY", "secretKey": "pseudonym_key"}
    ]
    assert [e for e, c in k8s.items() if "secretAsEnv" in c] == ["exec-features"]
    # Overridable values are pipeline parameters wired into the steps.
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["training_model_params_max_iter"]["defaultValue"] == 150
    assert params["data_split_seed"]["parameterType"] == "NUMBER_INTEGER"
    assert main["split"]["inputs"]["parameters"]["mlc_override_0"] == {
        "componentInputParameter": "pipelinechannel--data_split_seed"
    }
    # The exit handler runs whatever happens.
    exit_task = spec["root"]["dag"]["tasks"]["mlc-exit-handler"]
    assert exit_task["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert exit_task["inputs"]["parameters"]["status"] == {
        "taskFinalStatus": {"producerTask": "exit-handler-1"}
    }
    # No tuning storage: one tuning task, no loop.
    assert "for-loop-tune" not in main


def test_recurring_run(tmp_path: Path) -> None:
    out = _compile(tmp_path, REPO / "examples/credit/mlc.yaml")
    runs = yaml.safe_load((out / "recurring-runs.yaml").read_text())
    (run,) = runs["recurring_runs"]
    assert run["cron_expression"] == "0 0 3 * * 1"
    assert run["origin"] == "feedback.triggers[2]"
    assert run["parameters"]["training_model_params_max_iter"] == 150
    assert runs["pipeline_package"] == "pipeline.yaml"


def test_parallel_tuning_with_shared_storage(tmp_path: Path) -> None:
    out = _compile(
        tmp_path, REPO / "examples/credit/mlc.yaml", "tuning.storage=postgresql://optuna@db/optuna"
    )
    spec, _ = assert_kfp_valid(out / "pipeline.yaml")
    main = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    loop = main["for-loop-tune"]
    assert loop["parameterIterator"]["items"]["raw"] == "[0, 1]"
    assert loop["iteratorPolicy"]["parallelismLimit"] == 2
    worker = spec["components"]["comp-for-loop-tune"]["dag"]["tasks"]["tune-worker"]
    assert worker["componentRef"]["name"] == "comp-tune"
    assert "for-loop-tune" in main["tune"]["dependentTasks"]


def _target_diags(ir: IRGraph, **options: Any) -> list[Any]:
    return KfpTarget().check(ir, EmitContext(options=KfpOptions(**options)))


def _credit_ir() -> IRGraph:
    return check(REPO / "examples/credit/mlc.yaml").ir


def _with_resources(ir: IRGraph, step_id: str, **res: Any) -> IRGraph:
    data = ir.to_dict()
    for step in data["steps"]:
        if step["id"] == step_id:
            step["resources"].update(res)
    return IRGraph.from_dict(data)


def test_bad_resources_and_gpu_are_located() -> None:
    ir = _with_resources(
        _credit_ir(), "train", cpu="2 cores", memory="1.5Gi", gpu_type="nvidia-a100", gpu_count=0
    )
    diags = {(d.code, d.path) for d in _target_diags(ir)}
    assert ("MLC441", "training.resources.cpu") in diags
    assert ("MLC441", "training.resources.memory") in diags
    assert ("MLC442", "training.resources.gpu") in diags


def test_gpu_step_gets_accelerator_selector_and_toleration(tmp_path: Path) -> None:
    out = _compile(
        tmp_path,
        REPO / "examples/credit/mlc.yaml",
        "+training.resources.gpu={count: 1, type: nvidia-a100}",
        "budgets.gpu_hours=1000",
        "budgets.enforce=warn",
    )
    spec, platform = assert_kfp_valid(out / "pipeline.yaml")
    acc = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]["accelerator"]
    assert acc["resourceType"] == "nvidia.com/gpu" and acc["resourceCount"] == "1"
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    assert k8s["nodeSelector"] == {"labels": {"nvidia.com/gpu.product": "nvidia-a100"}}
    assert k8s["tolerations"][0]["key"] == "nvidia.com/gpu"


def test_bad_image_is_a_located_diagnostic(tmp_path: Path) -> None:
    spec = tmp_path / "mlc.yaml"
    text = (REPO / "examples/credit/mlc.yaml").read_text()
    spec.write_text(
        text.replace("targets:\n  ir: {}", "targets:\n  kfp:\n    image: 'Not An Image'")
    )
    for sub in ("data", "env"):
        (tmp_path / sub).symlink_to(REPO / "examples/credit" / sub)
    with pytest.raises(DiagnosticError) as err:
        compile_spec(spec, ["kfp"], tmp_path / "out")
    (diag,) = [d for d in err.value.diagnostics if d.code == "MLC440"]
    assert diag.location is not None and diag.location.file.endswith("mlc.yaml")
    assert diag.path == "targets.kfp.image"
    assert not (tmp_path / "out" / "kfp").exists()
    proc = subprocess.run(
        [
            str(REPO / ".venv/bin/mlc"),
            "compile",
            str(spec),
            "-t",
            "kfp",
            "-o",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr + proc.stdout
    assert "error[MLC440]" in proc.stderr + proc.stdout


def test_unknown_option_is_located(tmp_path: Path) -> None:
    with pytest.raises(DiagnosticError) as err:
        compile_spec(
            REPO / "examples/credit/mlc.yaml", ["kfp"], tmp_path, ["targets={kfp: {imgae: x}}"]
        )
    assert any("imgae" in d.message or "imgae" in d.path for d in err.value.diagnostics)


def test_multi_node_training_other_than_lightning_is_a_capability_error() -> None:
    from mlc.compiler.passes import PassContext
    from mlc.compiler.passes.capabilities import check_capabilities

    data = _credit_ir().to_dict()
    for step in data["steps"]:
        if step["id"] == "train":
            step["resources"]["nodes"] = 2
            step["requires"].append(
                {"feature": "resources.nodes", "origin": "training.resources.nodes"}
            )
    ir = IRGraph.from_dict(data)
    # kfp runs more than one node as a Kubeflow TrainJob (tests/targets/test_kfp_trainjob.py),
    # but only Lightning DDP spans nodes: this sklearn step is refused by the target's check
    diags = list(check_capabilities(ir, PassContext(targets=[KfpTarget()])))
    assert not [d for d in diags if d.code == "MLC410"]
    diags = KfpTarget().check(ir, EmitContext(options=KfpOptions()))
    (diag,) = [d for d in diags if d.code == "MLC410"]
    assert "resources.nodes" in diag.message and diag.path == "training.resources.nodes"
    assert "framework 'sklearn'" in diag.message


@pytest.mark.parametrize(
    "ref,ok",
    [
        ("ghcr.io/acme/mlc-runtime:0.1.0", True),
        ("python:3.11", True),
        ("localhost:5000/a/b@sha256:" + "a" * 64, True),
        ("Upper/Case", False),
        ("a b", False),
        ("repo:", False),
        ("-bad", False),
    ],
)
def test_image_reference(ref: str, ok: bool) -> None:
    assert is_image_reference(ref) is ok


def test_validate_stays_light() -> None:
    code = (
        "import sys; from mlc.compiler.api import check; "
        f"check({str(REPO / 'examples/credit/mlc.yaml')!r}, targets=['kfp']); "
        "print(json.dumps(sorted(m for m in ('kfp', 'torch', 'mlflow', 'pyspark') "
        "if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


def test_overridable_that_reaches_no_step_is_a_warning() -> None:
    data = _credit_ir().to_dict()
    data["settings"]["overridable"] = ["monitoring.slos.error_rate", "data.split.seed"]
    diags = _target_diags(IRGraph.from_dict(data))
    (diag,) = [d for d in diags if d.code == "MLC444"]
    assert "monitoring.slos.error_rate" in diag.message and diag.severity.value == "warning"
