"""Scheduled batch scoring of a spark-engine spec: a Spark Operator `ScheduledSparkApplication`
(sparkoperator.k8s.io/v1beta2) in place of the `CronJob`.

Its driver runs `mlc batch` (through `runtime/spark/driver.py`, so the CLI's SparkSession is
the driver's and scores on the application's executors with `mapInPandas`), with the same
arguments, tracking store and secrets as the CronJob's container. The driver runs as the
model's batch service account, which needs rights on pods, services and config maps to start
its executors (the Role and RoleBinding emitted beside it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mlc.compiler.ir import IRGraph, Step
from mlc.targets import _k8s_common as kube
from mlc.targets._image import DRIVER_FILE, SPARK_VERSION

API_VERSION = "sparkoperator.k8s.io/v1beta2"
FILE = "batch/scheduledsparkapplication.yaml"


def scheduled(step: Step) -> bool:
    """Whether the k8s target schedules this batch step on Spark."""
    return step.params.get("engine") == "spark"


def _spark_memory(quantity: str) -> str:
    for suffix, unit in (("Gi", "g"), ("Mi", "m"), ("Ki", "k"), ("G", "g"), ("M", "m")):
        if quantity.endswith(suffix):
            return quantity[: -len(suffix)] + unit
    return quantity


def scheduled_files(
    ir: IRGraph, step: Step, opts: Any, with_account: bool
) -> dict[str, str | bytes]:
    """`batch/scheduledsparkapplication.yaml`: the application, its driver's Role and
    RoleBinding (and the ServiceAccount, when no serving files have it)."""
    params: Mapping[str, Any] = step.params
    model = str(params["model_name"])
    app = kube.dns_name(model)
    ns = opts.namespace
    batch = params["batch"]
    account = kube.service_account_name(model)
    spec_file = f"{opts.project_dir.rstrip('/')}/mlc.yaml"
    arguments = [
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
        {"name": "MLC_SPARK_SUBMITTED", "value": "1"},
    ]
    res = step.resources.to_dict()
    pod: dict[str, Any] = {
        "cores": max(1, math.ceil(float(res.get("cpu") or 1))),
        "labels": kube.labels(f"{app}-batch"),
        "env": env,
    }
    if res.get("memory"):
        pod["memory"] = _spark_memory(str(res["memory"]))
    selector = kube.node_selector(ir, res)
    if selector:
        pod["nodeSelector"] = selector
    template: dict[str, Any] = {
        "type": "Python",
        "mode": "cluster",
        "pythonVersion": "3",
        "image": opts.batch_image,
        "imagePullPolicy": "IfNotPresent",
        "mainApplicationFile": DRIVER_FILE,
        "arguments": arguments,
        "sparkVersion": SPARK_VERSION,
        "restartPolicy": {"type": "Never"},
        "driver": {**pod, "serviceAccount": account},
        "executor": {**pod, "instances": 2},
    }
    application = {
        "apiVersion": API_VERSION,
        "kind": "ScheduledSparkApplication",
        "metadata": kube.meta(f"{app}-batch", ns, app),
        "spec": {
            "schedule": str(batch["schedule"]),
            # one scoring run at a time: a slow run is not overtaken by the next on the input
            "concurrencyPolicy": "Forbid",
            "successfulRunHistoryLimit": 3,
            "failedRunHistoryLimit": 3,
            "template": template,
        },
    }
    role = f"{app}-spark-driver"
    labels = kube.labels(f"{app}-batch")
    docs: list[dict[str, Any]] = []
    if with_account:
        docs.append(kube.service_account(ir, model, ns, app))
    docs += [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"labels": labels, "name": role, "namespace": ns},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["pods", "services", "configmaps", "persistentvolumeclaims"],
                    "verbs": ["create", "delete", "deletecollection", "get", "list", "watch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"labels": labels, "name": role, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
        },
        application,
    ]
    return {FILE: kube.dump_docs(docs)}
