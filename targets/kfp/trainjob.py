"""Multi-node training on kfp: the train step as a Kubeflow Trainer `TrainJob`.

A KFP v2 component is one pod, so a train step with `resources.nodes > 1` (Lightning DDP)
becomes a small launcher component instead (`mlc.runtime.trainjob`): it creates a `TrainJob`
(trainer.kubeflow.org/v1alpha1) on the `torch-distributed` ClusterTrainingRuntime with
`numNodes` nodes of the step's resources, waits for its conditions, and returns node 0's model as
the step's artifact. Every node runs the step entry `mlc run` runs
(`python -m mlc.runtime step train`), with `MLC_NUM_NODES`, `NODE_RANK`, `MASTER_ADDR` and
`MASTER_PORT` taken from the runtime's `PET_*` variables, so Lightning's DDP spans the nodes.

Artifacts cross between the launcher pod and the nodes on a shared volume (a ReadWriteMany
PersistentVolumeClaim, `targets.kfp.shared_volume`) mounted at `SHARED_PATH` by both. The
launcher's service account needs rights on trainjobs: `trainjob-rbac.yaml` grants them.
"""

from __future__ import annotations

import json
import math
from typing import Any

from mlc.compiler.diagnostics import Diagnostic
from mlc.compiler.ir import IRGraph, Step, StepKind
from mlc.targets.kfp import KfpOptions, launch
from mlc.targets.kfp.components import Component
from mlc.targets.kfp.launch import SHARED_PATH
from mlc.targets.kfp.platform import secret_ref, step_secrets

API_VERSION = "trainer.kubeflow.org/v1alpha1"
VOLUME = "mlc-shared"
CONTAINER = "node"
"""The torch-distributed runtime's replicated job and container are both named `node`."""
RBAC_FILE = "trainjob-rbac.yaml"

# PET_* are what Kubeflow Trainer's torch plugin sets on every node; Lightning reads these names.
_NODE_SCRIPT = (
    'export NODE_RANK="${{PET_NODE_RANK:-0}}" MASTER_ADDR="${{PET_MASTER_ADDR:-127.0.0.1}}" '
    'MASTER_PORT="${{PET_MASTER_PORT:-29500}}"\n'
    'exec python3 -m mlc.runtime step {kind} --params "$MLC_PARAMS" '
    '--project-dir "$MLC_PROJECT_DIR"{extra} --inputs {inputs} '
    "--outputs {outputs}\n"
)


def distributed(step: Step) -> bool:
    """Whether the kfp target runs `step` as a TrainJob."""
    return step.kind is StepKind.TRAIN and step.resources.nodes > 1


def check(ir: IRGraph) -> list[Diagnostic]:
    """Multi-node steps the TrainJob cannot run: only Lightning spans nodes (DDP)."""
    out = []
    for step in ir.steps:
        if distributed(step) and step.params.get("framework") != "lightning":
            out.append(
                Diagnostic(
                    "MLC410",
                    f"target 'kfp' cannot honour 'resources.nodes' for step '{step.id}' with "
                    f"framework '{step.params.get('framework')}': only Lightning DDP spans nodes",
                    hint="use framework 'lightning' with distributed.strategy 'ddp', or nodes: 1",
                    path="training.resources.nodes",
                )
            )
    return out


def _resources(step: Step, options: KfpOptions) -> dict[str, Any]:
    res = step.resources
    amounts: dict[str, Any] = {}
    if res.cpu is not None:
        amounts["cpu"] = res.cpu
    if res.memory is not None:
        amounts["memory"] = res.memory
    if res.gpu_count > 0:
        amounts[options.gpu_resource] = str(res.gpu_count)
    return {"limits": dict(amounts), "requests": dict(amounts)} if amounts else {}


def manifest(comp: Component, options: KfpOptions, secrets: dict[str, str]) -> dict[str, Any]:
    """The step's TrainJob as the launcher submits it, less what only the run knows (name
    suffix, namespace, and the values of MLC_PARAMS, MLC_WORKDIR, MLC_PROJECT_DIR)."""
    step = comp.step
    extra = ""
    if comp.tracking.get("uri"):
        extra += f" --tracking-uri {json.dumps(comp.tracking['uri'])}"
    if comp.tracking.get("artifact_location"):
        extra += f" --artifact-location {json.dumps(comp.tracking['artifact_location'])}"
    script = _NODE_SCRIPT.format(
        kind=step.kind.value,
        extra=extra,
        inputs=" ".join(f'{ir}="$MLC_WORKDIR/in/{ir}"' for ir, _ in comp.inputs.values()),
        outputs=" ".join(
            f'{ir}="$MLC_WORKDIR/node-$NODE_RANK/{ir}"' for ir, _ in comp.outputs.values()
        ),
    )
    env: list[dict[str, Any]] = [
        {"name": "MLC_NUM_NODES", "value": str(step.resources.nodes)},
        {"name": "MLC_PARAMS", "value": ""},
        {"name": "MLC_WORKDIR", "value": ""},
        {"name": "MLC_PROJECT_DIR", "value": ""},
    ]
    for var in step_secrets(step, secrets):
        name, key = secret_ref(var, secrets[var])
        env.append({"name": var, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}})
    trainer: dict[str, Any] = {
        "command": ["sh", "-ec", script],
        "env": env,
        "image": options.image,
        "numNodes": step.resources.nodes,
    }
    resources = _resources(step, options)
    if resources:
        trainer["resourcesPerNode"] = resources
    pod: dict[str, Any] = {
        "containers": [
            {
                "name": CONTAINER,
                "volumeMounts": [{"mountPath": SHARED_PATH, "name": VOLUME}],
            }
        ],
        "volumes": [
            {"name": VOLUME, "persistentVolumeClaim": {"claimName": options.shared_volume}}
        ],
    }
    res = step.resources
    if res.gpu_count > 0:
        if res.gpu_type:
            pod["nodeSelector"] = {options.gpu_node_selector_key: res.gpu_type}
        pod["tolerations"] = [
            {"effect": "NoSchedule", "key": options.gpu_toleration_key, "operator": "Exists"}
        ]
    spec: dict[str, Any] = {
        "runtimeRef": {
            "apiGroup": "trainer.kubeflow.org",
            "kind": "ClusterTrainingRuntime",
            "name": options.trainjob_runtime,
        },
        "trainer": trainer,
        "runtimePatches": [
            {
                "manager": "mlc",
                "trainingRuntimeSpec": {
                    "template": {
                        "spec": {
                            "replicatedJobs": [
                                {
                                    "name": CONTAINER,
                                    "template": {"spec": {"template": {"spec": pod}}},
                                }
                            ]
                        }
                    }
                },
            }
        ],
    }
    if step.timeout_s:
        spec["activeDeadlineSeconds"] = max(1, math.ceil(step.timeout_s))
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainJob",
        "metadata": {
            "annotations": {"mlc/shared-path": SHARED_PATH},
            "labels": {"app.kubernetes.io/managed-by": "mlc", "mlc/step": step.id},
            "name": step.id,
            "namespace": options.namespace,
        },
        "spec": spec,
    }


def launcher_source(
    comp: Component, options: KfpOptions, secrets: dict[str, str]
) -> tuple[str, str]:
    """(function name, module source) of the launcher component (`launch.launcher_source`)."""
    return launch.launcher_source(
        comp,
        manifest(comp, options, secrets),
        module="mlc.runtime.trainjob",
        doc=f"IR step {comp.step.id!r} on {comp.step.resources.nodes} nodes: a Kubeflow "
        "TrainJob running the mlc runtime step entry.",
    )


def launcher_platform(step: Step, options: KfpOptions) -> dict[str, Any]:
    """kfp-kubernetes config of the launcher pod (`launch.launcher_platform`)."""
    return launch.launcher_platform(step, options)


def rbac(options: KfpOptions) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding letting the pipeline's pods run TrainJobs."""
    account = options.service_account or "pipeline-runner"
    ns = options.namespace
    role = "mlc-trainjob-launcher"
    return [
        launch.service_account(account, ns),
        launch.launcher_role(role, "trainer.kubeflow.org", "trainjobs", ns),
        launch.binding(role, account, ns),
    ]


def extra_files(ir: IRGraph, options: KfpOptions) -> dict[str, str | bytes]:
    """`trainjob-rbac.yaml` when some step runs as a TrainJob, else nothing."""
    if not any(distributed(s) for s in ir.steps):
        return {}
    from mlc.targets.kfp.package import dump_yaml

    return {RBAC_FILE: "---\n".join(dump_yaml(doc) for doc in rbac(options))}
