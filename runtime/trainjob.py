"""Launch a training step as a Kubeflow Trainer `TrainJob` and wait for it (the kfp target's
launcher component for `resources.nodes > 1`).

The kfp target writes the TrainJob at compile time (`mlc.targets.kfp.trainjob`); here the
launcher fills in what only the run knows (a unique name, the namespace, the step's params after
pipeline overrides, a work folder on the shared volume), copies the step's input artifacts onto
that volume, creates the TrainJob, follows its conditions until it completes or fails, and copies
node 0's model into the step's output artifact. Every node runs the same step entry as
`mlc run` does (`python -m mlc.runtime step train`), writing its own `node-<rank>` folder.
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

GROUP, VERSION, PLURAL = "trainer.kubeflow.org", "v1alpha1", "trainjobs"
_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _api() -> Any:
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CustomObjectsApi()


def _server_message(exc: Any) -> str:
    """What the API server said: the `message` of its Status body, else the exception."""
    body = getattr(exc, "body", None)
    if body:
        try:
            doc = json.loads(body)
        except (TypeError, ValueError):
            return str(body).strip()
        if isinstance(doc, dict) and doc.get("message"):
            return str(doc["message"])
    reason = getattr(exc, "reason", None)
    status = getattr(exc, "status", None)
    return f"{status} {reason}".strip() if status or reason else str(exc)


def _namespace(default: str) -> str:
    try:
        return Path(_NAMESPACE_FILE).read_text().strip() or default
    except OSError:
        return default


def _condition(doc: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (doc.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            found: dict[str, Any] = cond
            return found
    return None


def launch(
    template: dict[str, Any],
    params: dict[str, Any],
    inputs: dict[str, str],
    outputs: dict[str, str],
    *,
    project_dir: str,
    step: str = "train",
    api: Any = None,
    poll_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Run the TrainJob `template` for one step; returns the finished TrainJob.

    `inputs`/`outputs` map the step's IR names to local artifact folders (the kfp artifacts).

    Raises:
        StepError: the API server refused the TrainJob, or it failed (its condition's message).
    """
    if api is None:
        try:
            api = _api()
        except Exception as exc:  # no in-cluster config and no kubeconfig
            raise StepError(
                step,
                f"cannot reach the Kubernetes API to launch the TrainJob: {exc}",
                "the launcher runs in a pipeline pod (in-cluster config) or with a kubeconfig",
            ) from None
    body = json.loads(json.dumps(template))
    meta = body.setdefault("metadata", {})
    namespace = _namespace(meta.get("namespace") or "default")
    name = f"{meta.get('name') or step}-{uuid.uuid4().hex[:8]}"[:63]
    meta.update(name=name, namespace=namespace)
    shared = Path(body["metadata"]["annotations"]["mlc/shared-path"])
    workdir = shared / name
    pod, uid = os.environ.get("MLC_POD_NAME"), os.environ.get("MLC_POD_UID")
    if pod and uid:
        # Deleted with the launcher pod: a cancelled run leaves no TrainJob training on.
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}]
    for ir_name, path in sorted(inputs.items()):
        shutil.copytree(path, workdir / "in" / ir_name)
    values = {
        "MLC_PARAMS": json.dumps(params, sort_keys=True),
        "MLC_WORKDIR": str(workdir),
        "MLC_PROJECT_DIR": project_dir,
    }
    for env in body["spec"]["trainer"]["env"]:
        if env["name"] in values:
            env["value"] = values[env["name"]]
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    except Exception as exc:  # kubernetes.client.ApiException, or no API server at all
        raise StepError(
            step,
            f"the API server refused TrainJob {namespace}/{name}: {_server_message(exc)}",
            "check that Kubeflow Trainer is installed (ClusterTrainingRuntime "
            f"'{body['spec']['runtimeRef']['name']}') and the run's service account may "
            "create trainjobs (apply the emitted trainjob-rbac.yaml)",
        ) from None
    print(f"mlc: TrainJob {namespace}/{name} created", file=sys.stderr)
    while True:
        try:
            doc = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except Exception as exc:
            raise StepError(
                step, f"cannot read TrainJob {namespace}/{name}: {_server_message(exc)}"
            ) from None
        failed = _condition(doc, "Failed")
        if failed is not None:
            raise StepError(
                step,
                f"TrainJob {namespace}/{name} failed: "
                f"{failed.get('reason', '')}: {failed.get('message', '')}".rstrip(": "),
                f"see its pods' logs: kubectl -n {namespace} logs -l "
                f"jobset.sigs.k8s.io/jobset-name={name}",
            )
        if _condition(doc, "Complete") is not None:
            break
        sleep(poll_s)
    for ir_name, path in sorted(outputs.items()):
        produced = workdir / "node-0" / ir_name
        if not produced.exists():
            raise StepError(
                step,
                f"TrainJob {namespace}/{name} completed without writing its {ir_name} ({produced})",
                "check that every node mounts the shared volume at the same path",
            )
        shutil.copytree(produced, path, dirs_exist_ok=True)
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"mlc: TrainJob {namespace}/{name} complete", file=sys.stderr)
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
    try:
        launch(template, params, inputs, outputs, project_dir=project_dir)
    except StepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
