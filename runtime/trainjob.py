"""Launch a training step as a Kubeflow Trainer `TrainJob` and wait for it (the kfp target's
launcher component for `resources.nodes > 1`).

The kfp target writes the TrainJob at compile time (`mlc.targets.kfp.trainjob`); the launcher
(`mlc.runtime.k8s_launch`) fills in the run's name, namespace and work folder, and here the
step's params and that folder go into the trainer's environment. Every node runs the same step
entry as `mlc run` does (`python -m mlc.runtime step train`), writing its own `node-<rank>`
folder; node 0's model becomes the step's output artifact.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from mlc.runtime import k8s_launch
from mlc.runtime.k8s_launch import Failure, Work

GROUP, VERSION, PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"


def _condition(doc: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (doc.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            found: dict[str, Any] = cond
            return found
    return None


def _fill(body: dict[str, Any], work: Work) -> None:
    values = {
        "MLC_PARAMS": json.dumps(work.params, sort_keys=True),
        "MLC_WORKDIR": str(work.workdir),
        "MLC_PROJECT_DIR": work.project_dir,
    }
    for env in body["spec"]["trainer"]["env"]:
        if env["name"] in values:
            env["value"] = values[env["name"]]


def _state(doc: dict[str, Any], work: Work) -> Failure | bool:
    failed = _condition(doc, "Failed")
    if failed is not None:
        said = f"{failed.get('reason', '')}: {failed.get('message', '')}".rstrip(": ")
        return Failure(
            f"failed: {said}",
            f"see its pods' logs: kubectl -n {work.namespace} logs -l "
            f"jobset.sigs.k8s.io/jobset-name={work.name}",
        )
    return _condition(doc, "Complete") is not None


def _refused(body: dict[str, Any]) -> str:
    return (
        "check that Kubeflow Trainer is installed (ClusterTrainingRuntime "
        f"'{body['spec']['runtimeRef']['name']}') and the run's service account may "
        "create trainjobs (apply the emitted trainjob-rbac.yaml)"
    )


TRAINJOB = k8s_launch.Kind(
    kind="TrainJob",
    group=GROUP,
    version=VERSION,
    plural=PLURAL,
    fill=_fill,
    state=_state,
    output_dir="node-0",
    refused_hint=_refused,
    written_hint="check that every node mounts the shared volume at the same path",
)


launch = functools.partial(k8s_launch.launch, TRAINJOB, step="train")
"""Run the TrainJob template for one step (`k8s_launch.launch`); returns the finished TrainJob.
Raises `StepError` when the API server refuses it or it fails (its condition's message)."""
main = functools.partial(k8s_launch.main, TRAINJOB, step="train")
"""The launcher component's entry: 0, or 1 with the step error on stderr."""
