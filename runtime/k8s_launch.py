"""Run one step as a Kubernetes custom resource and wait for it: what the kfp target's launcher
components (TrainJob, SparkApplication) share.

The kfp target writes the resource at compile time; `launch` fills in what only the run knows (a
unique name, the namespace, an owner reference to the launcher pod, a work folder on the shared
volume), copies the step's inputs onto that volume, lets the resource kind put the step's params
and folders where its workload reads them, creates the resource, follows its status until it
completes or fails, and copies the outputs the workload wrote back into the step's artifacts.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlc.runtime.context import StepError

_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclass(frozen=True)
class Failure:
    """A finished resource that failed: what it said, and where to look next."""

    message: str
    hint: str


@dataclass(frozen=True)
class Work:
    """What only the run knows, handed to `Kind.fill`."""

    name: str
    namespace: str
    workdir: Path
    params: dict[str, Any]
    inputs: list[str]
    outputs: list[str]
    project_dir: str


@dataclass(frozen=True)
class Kind:
    """One custom resource kind the launcher can run a step as."""

    kind: str
    group: str
    version: str
    plural: str
    fill: Callable[[dict[str, Any], Work], None]
    """Put the params and the work folder's paths into the body (in place)."""
    state: Callable[[dict[str, Any], Work], Failure | bool]
    """From a read of the resource: True when complete, False while running, or the failure."""
    output_dir: str
    """The folder under the work folder the workload writes its outputs to."""
    refused_hint: Callable[[dict[str, Any]], str]
    """The hint when the API server refuses the resource (the body is given)."""
    written_hint: str
    """The hint when the resource completed without writing an output."""


def api_client() -> Any:
    """The custom objects API: in-cluster config in a pod, else the kubeconfig."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CustomObjectsApi()


def server_message(exc: Any) -> str:
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


def namespace(default: str) -> str:
    """The pod's own namespace when running in a cluster, else `default`."""
    try:
        return Path(_NAMESPACE_FILE).read_text().strip() or default
    except OSError:
        return default


def launch(
    kind: Kind,
    template: dict[str, Any],
    params: dict[str, Any],
    inputs: dict[str, str],
    outputs: dict[str, str],
    *,
    project_dir: str,
    step: str,
    api: Any = None,
    poll_s: float = 10.0,
    sleep: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Run `template` (a `kind` resource) for one step; returns the finished resource.

    `inputs`/`outputs` map the step's IR names to local artifact folders (the kfp artifacts);
    `api` is a `CustomObjectsApi` (default: `api_client()`), `sleep` waits between reads.

    Raises:
        StepError: naming the resource and what the API server or the workload said.
    """
    client = api
    if client is None:
        try:
            client = api_client()
        except Exception as exc:  # no in-cluster config and no kubeconfig
            raise StepError(
                step,
                f"cannot reach the Kubernetes API to launch the {kind.kind}: {exc}",
                "the launcher runs in a pipeline pod (in-cluster config) or with a kubeconfig",
            ) from None
    body = json.loads(json.dumps(template))
    meta = body.setdefault("metadata", {})
    ns = namespace(meta.get("namespace") or "default")
    name = f"{meta.get('name') or step}-{uuid.uuid4().hex[:8]}"[:63]
    meta.update(name=name, namespace=ns)
    workdir = Path(meta["annotations"]["mlc/shared-path"]) / name
    pod, uid = os.environ.get("MLC_POD_NAME"), os.environ.get("MLC_POD_UID")
    if pod and uid:
        # Deleted with the launcher pod: a cancelled run leaves no job running on.
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}]
    for ir_name, path in sorted(inputs.items()):
        shutil.copytree(path, workdir / "in" / ir_name)
    work = Work(name, ns, workdir, params, sorted(inputs), sorted(outputs), project_dir)
    kind.fill(body, work)
    where = f"{kind.kind} {ns}/{name}"
    try:
        client.create_namespaced_custom_object(kind.group, kind.version, ns, kind.plural, body)
    except Exception as exc:  # kubernetes.client.ApiException, or no API server at all
        raise StepError(
            step,
            f"the API server refused {where}: {server_message(exc)}",
            kind.refused_hint(body),
        ) from None
    print(f"mlc: {where} created", file=sys.stderr)
    while True:
        try:
            doc = client.get_namespaced_custom_object(
                kind.group, kind.version, ns, kind.plural, name
            )
        except Exception as exc:
            raise StepError(step, f"cannot read {where}: {server_message(exc)}") from None
        state = kind.state(doc, work)
        if isinstance(state, Failure):
            raise StepError(step, f"{where} {state.message}", state.hint)
        if state:
            break
        (sleep or time.sleep)(poll_s)
    for ir_name, path in sorted(outputs.items()):
        produced = workdir / kind.output_dir / ir_name
        if not produced.exists():
            raise StepError(
                step,
                f"{where} completed without writing its {ir_name} ({produced})",
                kind.written_hint,
            )
        shutil.copytree(produced, path, dirs_exist_ok=True)
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"mlc: {where} complete", file=sys.stderr)
    result: dict[str, Any] = doc
    return result


def main(
    kind: Kind,
    template: dict[str, Any],
    params: dict[str, Any],
    inputs: dict[str, str],
    outputs: dict[str, str],
    project_dir: str,
    step: str | None = None,
) -> int:
    """A launcher component's entry: 0, or 1 with the step error on stderr. The step is named
    by `step`, else by the template's `mlc/kind` label."""
    if step is None:
        step = str(template.get("metadata", {}).get("labels", {}).get("mlc/kind", "step"))
    try:
        launch(kind, template, params, inputs, outputs, project_dir=project_dir, step=step)
    except StepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
