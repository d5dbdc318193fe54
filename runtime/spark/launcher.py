"""Launch a spark-engine step as a Spark Operator `SparkApplication` and wait for it (the kfp
target's launcher component for Spark steps).

The kfp target writes the SparkApplication at compile time (`mlc.targets.kfp.spark`); here the
launcher fills in what only the run knows (a unique name, the namespace, the step's params
after pipeline overrides, a work folder on the shared volume), copies the step's inputs onto
that volume, creates the application, follows `status.applicationState.state` until it is
COMPLETED or FAILED, and copies the outputs the driver wrote back into the step's artifacts.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlc.runtime.context import StepError

GROUP, VERSION, PLURAL = "sparkoperator.k8s.io", "v1beta2", "sparkapplications"
DONE = {"COMPLETED"}
FAILED = {"FAILED", "SUBMISSION_FAILED", "FAILING", "INVALIDATING", "UNKNOWN_STATE"}


def launch(
    template: dict[str, Any],
    params: dict[str, Any],
    inputs: dict[str, str],
    outputs: dict[str, str],
    *,
    project_dir: str,
    step: str,
    api: Any = None,
    poll_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Run the SparkApplication `template` for one step; returns the finished application.

    Raises:
        StepError: naming the application and what the API server or Spark said.
    """
    from mlc.runtime import trainjob

    if api is None:
        try:
            api = trainjob._api()
        except Exception as exc:  # no in-cluster config and no kubeconfig
            raise StepError(
                step,
                f"cannot reach the Kubernetes API to launch the SparkApplication: {exc}",
                "the launcher runs in a pipeline pod (in-cluster config) or with a kubeconfig",
            ) from None
    body = json.loads(json.dumps(template))
    meta = body.setdefault("metadata", {})
    namespace = trainjob._namespace(meta.get("namespace") or "default")
    name = f"{meta.get('name') or step}-{uuid.uuid4().hex[:8]}"[:63]
    meta.update(name=name, namespace=namespace)
    workdir = Path(meta["annotations"]["mlc/shared-path"]) / name
    pod, uid = os.environ.get("MLC_POD_NAME"), os.environ.get("MLC_POD_UID")
    if pod and uid:
        # Deleted with the launcher pod: a cancelled run leaves no Spark job running on.
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}]
    for ir_name, path in sorted(inputs.items()):
        shutil.copytree(path, workdir / "in" / ir_name)
    args = [
        "step",
        body["metadata"]["labels"]["mlc/kind"],
        "--params",
        json.dumps(params, sort_keys=True),
        "--project-dir",
        project_dir,
        *body["spec"].get("arguments", []),
    ]
    if inputs:
        args += ["--inputs", *(f"{n}={workdir / 'in' / n}" for n in sorted(inputs))]
    if outputs:
        args += ["--outputs", *(f"{n}={workdir / 'out' / n}" for n in sorted(outputs))]
    body["spec"]["arguments"] = args
    where = f"SparkApplication {namespace}/{name}"
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    except Exception as exc:  # kubernetes.client.ApiException, or no API server at all
        raise StepError(
            step,
            f"the API server refused {where}: {trainjob._server_message(exc)}",
            "check that the Spark Operator is installed and the run's service account may "
            "create sparkapplications (apply the emitted spark-rbac.yaml)",
        ) from None
    print(f"mlc: {where} created", file=sys.stderr)
    while True:
        try:
            doc = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except Exception as exc:
            raise StepError(step, f"cannot read {where}: {trainjob._server_message(exc)}") from None
        state = (doc.get("status") or {}).get("applicationState") or {}
        if state.get("state") in FAILED:
            raise StepError(
                step,
                f"{where} {state['state'].lower()}: {state.get('errorMessage') or 'no message'}",
                f"see the driver's log: kubectl -n {namespace} logs {name}-driver",
            )
        if state.get("state") in DONE:
            break
        sleep(poll_s)
    for ir_name, path in sorted(outputs.items()):
        produced = workdir / "out" / ir_name
        if not produced.exists():
            raise StepError(
                step,
                f"{where} completed without writing its {ir_name} ({produced})",
                "check that the driver and executors mount the shared volume at the same path",
            )
        shutil.copytree(produced, path, dirs_exist_ok=True)
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"mlc: {where} complete", file=sys.stderr)
    result: dict[str, Any] = doc
    return result


def main(
    template: dict[str, Any],
    params: dict[str, Any],
    inputs: dict[str, str],
    outputs: dict[str, str],
    project_dir: str,
) -> int:
    """The launcher component's entry: 0, or 1 with the step error on stderr."""
    step = str(template.get("metadata", {}).get("labels", {}).get("mlc/kind", "spark"))
    try:
        launch(template, params, inputs, outputs, project_dir=project_dir, step=step)
    except StepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
