"""kfp target, multi-node training: the train step as a Kubeflow Trainer TrainJob.

The TrainJob the launcher submits is checked strictly against Kubeflow Trainer's CRD, the RBAC
against Kubernetes' own schemas, and the pipeline against kfp's protobufs. The launcher itself
runs here against a stand-in for the Kubernetes API (it records what it is sent and answers as
the API server would): the launcher component's generated source is executed as kfp would.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from google.protobuf import json_format
from support.crd import validate_custom
from support.manifests import K8S_VERSION

from mlc.compiler.api import compile_spec
from mlc.compiler.diagnostics import DiagnosticError
from mlc.runtime import k8s_launch
from mlc.runtime import trainjob as launcher
from mlc.runtime.context import StepError

REPO = Path(__file__).resolve().parents[2]
DIABETES = REPO / "examples" / "diabetes" / "mlc.yaml"
MULTI_NODE = ("training.resources.nodes=3", "+training.distributed.strategy=ddp")


def _compile(out: Path, *overrides: str, target: str = "kfp") -> Path:
    compile_spec(DIABETES, [target], out, overrides)
    return out / target


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


class _Artifact:
    def __init__(self, path: Path) -> None:
        self.path = str(path)


class _FakeApi:
    """The API server, as far as the launcher uses it: records the TrainJob, then reports the
    conditions in `states` one poll at a time; `on_create` plays the nodes' part."""

    def __init__(self, states: list[list[dict[str, str]]], on_create: Any = None) -> None:
        self.created: list[dict[str, Any]] = []
        self.states = states
        self.on_create = on_create

    def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        assert (group, version, plural) == ("trainer.kubeflow.org", "v1alpha1", "trainjobs")
        assert namespace == body["metadata"]["namespace"]
        self.created.append(json.loads(json.dumps(body)))
        if self.on_create is not None:
            self.on_create(body)
        return body

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> dict[str, Any]:
        assert name == self.created[-1]["metadata"]["name"]
        conditions = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {**self.created[-1], "status": {"conditions": conditions}}


def _condition(kind: str, message: str = "") -> dict[str, str]:
    return {"type": kind, "status": "True", "reason": kind, "message": message}


def _launcher(package: Path, shared: Path) -> tuple[Any, dict[str, Any]]:
    """The train launcher's component function, loaded from the package as kfp's executor
    would, with the shared volume's mount point moved to `shared`."""
    docs = _docs(package)
    source = docs[0]["deploymentSpec"]["executors"]["exec-train"]["container"]["command"][-1]
    namespace: dict[str, Any] = {}
    exec(compile(source.replace("/mlc-shared", str(shared)), "component", "exec"), namespace)
    task = docs[0]["root"]["dag"]["tasks"]["exit-handler-1"]
    train = docs[0]["components"]["comp-exit-handler-1"]["dag"]["tasks"]["train"]
    assert task and train["componentRef"]["name"] == "comp-train"
    params = train["inputs"]["parameters"]["mlc_params"]["runtimeValue"]["constant"]
    return namespace["train"], json.loads(params)


def test_multi_node_train_is_a_trainjob_launched_from_the_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kfp.kubernetes import kubernetes_executor_config_pb2
    from kfp.pipeline_spec import pipeline_spec_pb2

    out = _compile(tmp_path / "out", *MULTI_NODE)
    package = out / "pipeline.yaml"
    spec, platform = _docs(package)
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec())
    configs = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for config in configs.values():
        json_format.ParseDict(config, kubernetes_executor_config_pb2.KubernetesExecutorConfig())
    # the launcher pod asks for no training resources and mounts the shared volume
    train_exec = spec["deploymentSpec"]["executors"]["exec-train"]["container"]
    assert "resources" not in train_exec
    assert configs["exec-train"]["pvcMount"][0]["mountPath"] == "/mlc-shared"

    rbac = _docs(out / "trainjob-rbac.yaml")
    assert [d["kind"] for d in rbac] == ["ServiceAccount", "Role", "RoleBinding"]
    for doc in rbac:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    (rule, _status) = rbac[1]["rules"]
    assert rule["resources"] == ["trainjobs"] and "create" in rule["verbs"]
    assert rbac[2]["subjects"][0]["name"] == rbac[0]["metadata"]["name"]

    shared = tmp_path / "shared"
    shared.mkdir()

    def nodes_train(body: dict[str, Any]) -> None:
        # what node 0 leaves behind: the step's model folder
        env = {e["name"]: e.get("value") for e in body["spec"]["trainer"]["env"]}
        made = Path(env["MLC_WORKDIR"]) / "node-0" / "model"
        made.mkdir(parents=True)
        (made / "_meta.json").write_text('{"type": "model"}')
        assert sorted(p.name for p in (Path(env["MLC_WORKDIR"]) / "in").iterdir()) == [
            "train",
            "transform",
            "validation",
        ]

    api = _FakeApi([[_condition("Created")], [_condition("Complete")]], nodes_train)
    monkeypatch.setattr(k8s_launch, "api_client", lambda: api)
    monkeypatch.setattr(k8s_launch.time, "sleep", lambda s: None)
    monkeypatch.setenv("MLC_POD_NAME", "credit-abc-train-launcher")
    monkeypatch.setenv("MLC_POD_UID", "0b9a6c2e-1111-2222-3333-444455556666")
    inputs = {}
    for name in ("train", "transform", "validation"):
        (tmp_path / "in" / name).mkdir(parents=True)
        (tmp_path / "in" / name / "_meta.json").write_text("{}")
        inputs[name] = _Artifact(tmp_path / "in" / name)
    model = tmp_path / "model-out"
    fn, params = _launcher(package, shared)
    fn(
        mlc_params=json.dumps(params),
        mlc_project_dir="/project",
        model=_Artifact(model),
        **inputs,
    )

    (job,) = api.created
    assert validate_custom(job) == []
    assert job["spec"]["runtimeRef"] == {
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
        "name": "torch-distributed",
    }
    trainer = job["spec"]["trainer"]
    assert trainer["numNodes"] == 3
    assert trainer["resourcesPerNode"] == {
        "limits": {"cpu": "2", "memory": "4Gi"},
        "requests": {"cpu": "2", "memory": "4Gi"},
    }
    env = {e["name"]: e.get("value") for e in trainer["env"]}
    assert env["MLC_NUM_NODES"] == "3" and env["MLC_PROJECT_DIR"] == "/project"
    assert json.loads(env["MLC_PARAMS"]) == params
    # every node runs the runtime's step entry, as `mlc run` and one-pod components do
    script = trainer["command"][-1]
    assert 'exec python3 -m mlc.runtime step train --params "$MLC_PARAMS"' in script
    assert 'model="$MLC_WORKDIR/node-$NODE_RANK/model"' in script
    assert 'NODE_RANK="${PET_NODE_RANK:-0}"' in script
    assert job["metadata"]["ownerReferences"][0]["uid"].startswith("0b9a6c2e")
    assert job["metadata"]["name"].startswith("train-")
    # node 0's model is the step's output; the work folder is gone
    assert json.loads((model / "_meta.json").read_text()) == {"type": "model"}
    assert list(shared.iterdir()) == []


def _template(tmp_path: Path, *overrides: str) -> dict[str, Any]:
    """The TrainJob template embedded in the launcher's source."""
    out = _compile(tmp_path / "out", *MULTI_NODE, *overrides)
    source = _docs(out / "pipeline.yaml")[0]["deploymentSpec"]["executors"]["exec-train"]
    text = source["container"]["command"][-1]
    start = text.index("mlc_json.loads('") + len("mlc_json.loads('")
    literal = text[start - 1 : text.index("')\n", start) + 1]
    template: dict[str, Any] = json.loads(ast.literal_eval(literal))
    template["metadata"]["annotations"]["mlc/shared-path"] = str(tmp_path / "shared")
    return template


def test_gpu_nodes_request_their_gpus_on_the_nodes_of_their_type(tmp_path: Path) -> None:
    template = _template(
        tmp_path,
        "+training.resources.gpu={count: 2, type: nvidia-h100}",
        "training.lightning.accelerator=gpu",
        "+training.distributed.devices=2",
    )
    assert validate_custom(template) == []
    per_node = template["spec"]["trainer"]["resourcesPerNode"]
    assert per_node["limits"]["nvidia.com/gpu"] == per_node["requests"]["nvidia.com/gpu"] == "2"
    (patch,) = template["spec"]["runtimePatches"]
    (job,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod = job["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "nvidia-h100"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["containers"][0]["volumeMounts"][0]["name"] == pod["volumes"][0]["name"]


def test_a_trainjob_the_api_server_refuses_is_a_step_error_with_its_message(
    tmp_path: Path,
) -> None:
    class Refused(Exception):
        status, reason = 422, "Unprocessable Entity"
        body = json.dumps(
            {
                "kind": "Status",
                "message": 'admission webhook "validator.trainjob.trainer.kubeflow.org" denied '
                "the request: ClusterTrainingRuntime torch-distributed not found",
            }
        )

    class Api(_FakeApi):
        def create_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
            raise Refused()

    with pytest.raises(StepError) as err:
        launcher.launch(_template(tmp_path), {}, {}, {}, project_dir="/p", api=Api([[]]))
    text = str(err.value)
    assert "the API server refused TrainJob kubeflow/train-" in text
    assert "ClusterTrainingRuntime torch-distributed not found" in text
    assert "trainjob-rbac.yaml" in text


def test_a_failed_trainjob_is_a_step_error_with_its_condition(tmp_path: Path) -> None:
    api = _FakeApi([[_condition("Created")], [_condition("Failed", "node-1 exited with 1")]])
    with pytest.raises(StepError) as err:
        launcher.launch(
            _template(tmp_path), {}, {}, {"model": str(tmp_path / "m")}, project_dir="/p",
            api=api, sleep=lambda s: None,
        )  # fmt: skip
    assert "failed: Failed: node-1 exited with 1" in str(err.value)
    assert not (tmp_path / "m").exists()


def test_only_kfp_realises_more_than_one_node(tmp_path: Path) -> None:
    with pytest.raises(DiagnosticError) as err:
        _compile(tmp_path / "local", *MULTI_NODE, target="local")
    assert "MLC410" in str(err.value) and "resources.nodes" in str(err.value)
    # one node: no launcher, no RBAC, the train component runs the step in its own pod
    out = _compile(tmp_path / "one")
    assert not (out / "trainjob-rbac.yaml").exists()
    container = _docs(out / "pipeline.yaml")[0]["deploymentSpec"]["executors"]["exec-train"][
        "container"
    ]
    assert "trainjob" not in container["command"][-1]
    assert container["resources"]["resourceMemoryLimit"] == "4Gi"
    shutil.rmtree(tmp_path / "one")


def test_parallel_tuning_workers_read_the_shared_storage_from_its_secret(tmp_path: Path) -> None:
    """Not a TrainJob, the other half of scaling out on kfp: the `ParallelFor` trial workers
    share `tuning.storage`, given as a secret reference the pods get from a Secret."""
    compile_spec(
        REPO / "examples" / "credit" / "mlc.yaml",
        ["kfp"],
        tmp_path,
        [
            "tuning.storage=env:OPTUNA_STORAGE",
            '+security.secrets.OPTUNA_STORAGE="vault:secret/data/optuna#url"',
        ],
    )
    spec, platform = _docs(tmp_path / "kfp" / "pipeline.yaml")
    loop = spec["components"]["comp-for-loop-tune"]["dag"]["tasks"]
    assert loop["tune-worker"]["componentRef"]["name"] == "comp-tune"
    params = json.loads(
        loop["tune-worker"]["inputs"]["parameters"]["mlc_params"]["runtimeValue"]["constant"]
    )
    assert params["storage"] == "env:OPTUNA_STORAGE"
    (mounted,) = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-tune"][
        "secretAsEnv"
    ]
    assert mounted["secretName"] == "optuna"
    assert mounted["keyToEnv"] == [{"envVar": "OPTUNA_STORAGE", "secretKey": "url"}]
