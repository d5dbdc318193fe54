"""The batch scoring job: a `CronJob` that runs `mlc batch` on the spec's schedule.

The job runs the mlc runtime image (the one the kfp components run in) with the spec's project
mounted at `project_dir`; `mlc batch` resolves the registered model at the spec's alias in the
tracking store, checks each chunk of the input against the data contract, and publishes the
predictions, summary and drift report atomically. Kubernetes reads the five-field cron and the
`@daily`-style macros the spec accepts as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlc.compiler.ir import IRGraph, Step
from mlc.targets import _k8s_common as kube


def batch_files(ir: IRGraph, step: Step, opts: Any, with_account: bool) -> dict[str, str | bytes]:
    """`batch/cronjob.yaml` (and the ServiceAccount it runs as, when no serving files have it)."""
    params: Mapping[str, Any] = step.params
    model = str(params["model_name"])
    app = kube.dns_name(model)
    ns = opts.namespace
    batch = params["batch"]
    spec_file = f"{opts.project_dir.rstrip('/')}/mlc.yaml"
    args = [
        "batch",
        spec_file,
        "--input",
        str(batch["input"]),
        "--output",
        str(batch["output"]),
        "--alias",
        str(batch["alias"]),
    ]
    env: list[dict[str, Any]] = [
        kube.tracking_env(ir, opts),
        *kube.secret_env(params["secrets"]),
    ]
    container: dict[str, Any] = {
        "name": "batch",
        "image": opts.batch_image,
        "command": ["mlc"],
        "args": args,
        "workingDir": opts.project_dir,
        "env": env,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    resources = kube.container_resources(step.resources.to_dict())
    if resources:
        container["resources"] = resources
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": kube.service_account_name(model),
        "containers": [container],
    }
    selector = kube.node_selector(ir, step.resources.to_dict())
    if selector:
        pod["nodeSelector"] = selector
    job: dict[str, Any] = {"backoffLimit": int(step.retries), "template": {"spec": pod}}
    job["template"]["metadata"] = {"labels": kube.labels(f"{app}-batch")}
    if step.timeout_s:
        job["activeDeadlineSeconds"] = int(step.timeout_s)
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": kube.meta(f"{app}-batch", ns, app),
        "spec": {
            "schedule": str(batch["schedule"]),
            # one scoring run at a time: a slow run is not overtaken by the next on the input
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": job},
        },
    }
    docs: list[dict[str, Any]] = []
    if with_account:
        docs.append(kube.service_account(ir, model, ns, app))
    docs.append(cronjob)
    return {"batch/cronjob.yaml": kube.dump_docs(docs)}
