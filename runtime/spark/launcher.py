"""Launch a spark-engine step as a Spark Operator `SparkApplication` and wait for it (the kfp
target's launcher component for Spark steps).

The kfp target writes the SparkApplication at compile time (`mlc.targets.kfp.spark`); the
launcher (`mlc.runtime.k8s_launch`) fills in the run's name, namespace and work folder, and here
the step's params (after pipeline overrides) and that folder's paths become the driver's
arguments. The application is followed through `status.applicationState.state` until it is
COMPLETED or FAILED.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from mlc.runtime import k8s_launch
from mlc.runtime.k8s_launch import Failure, Work

GROUP, VERSION, PLURAL = "sparkoperator.k8s.io", "v1beta2", "sparkapplications"
DONE = {"COMPLETED"}
FAILED = {"FAILED", "SUBMISSION_FAILED", "FAILING", "INVALIDATING", "UNKNOWN_STATE"}


def _fill(body: dict[str, Any], work: Work) -> None:
    args = [
        "step",
        body["metadata"]["labels"]["mlc/kind"],
        "--params",
        json.dumps(work.params, sort_keys=True),
        "--project-dir",
        work.project_dir,
        *body["spec"].get("arguments", []),
    ]
    if work.inputs:
        args += ["--inputs", *(f"{n}={work.workdir / 'in' / n}" for n in work.inputs)]
    if work.outputs:
        args += ["--outputs", *(f"{n}={work.workdir / 'out' / n}" for n in work.outputs)]
    body["spec"]["arguments"] = args


def _state(doc: dict[str, Any], work: Work) -> Failure | bool:
    state = (doc.get("status") or {}).get("applicationState") or {}
    if state.get("state") in FAILED:
        return Failure(
            f"{state['state'].lower()}: {state.get('errorMessage') or 'no message'}",
            f"see the driver's log: kubectl -n {work.namespace} logs {work.name}-driver",
        )
    return state.get("state") in DONE


SPARK_APPLICATION = k8s_launch.Kind(
    kind="SparkApplication",
    group=GROUP,
    version=VERSION,
    plural=PLURAL,
    fill=_fill,
    state=_state,
    output_dir="out",
    refused_hint=lambda body: (
        "check that the Spark Operator is installed and the run's service account may "
        "create sparkapplications (apply the emitted spark-rbac.yaml)"
    ),
    written_hint="check that the driver and executors mount the shared volume at the same path",
)


launch = functools.partial(k8s_launch.launch, SPARK_APPLICATION)
"""Run the SparkApplication template for one step (`k8s_launch.launch`, `step=` names it);
returns the finished application. Raises `StepError` naming the application and what the API
server or Spark said."""
main = functools.partial(k8s_launch.main, SPARK_APPLICATION)
"""The launcher component's entry (the step named by the template's `mlc/kind` label): 0, or 1
with the step error on stderr."""
