"""Spark steps on kfp: each spark-engine data step (and `spark_ml` training) as a Spark
Operator `SparkApplication` (sparkoperator.k8s.io/v1beta2), submitted and awaited by a small
launcher component (`mlc.runtime.spark.launcher`).

The application's driver runs the same step entry as `mlc run` (`runtime/spark/driver.py` in
the runtime image, `step <kind> --params ...`), with the master and executors the operator
gives it; `data.spark.conf` becomes the application's `sparkConf`. Artifacts cross between the
launcher pod and the driver and executors on the shared volume (`targets.kfp.shared_volume`,
ReadWriteMany). The image must hold Java and the `spark` extra as well as mlc. The launcher's
service account needs rights on sparkapplications, and the driver's on pods and services to
start its executors: `spark-rbac.yaml` grants both.
"""

from __future__ import annotations

import math
from typing import Any

from mlc.compiler.ir import IRGraph, Step, StepKind
from mlc.targets._image import DRIVER_FILE, SPARK_VERSION
from mlc.targets.kfp import KfpOptions, launch
from mlc.targets.kfp.components import Component
from mlc.targets.kfp.launch import SHARED_PATH
from mlc.targets.kfp.platform import secret_ref, step_secrets
from mlc.targets.kfp.trainjob import VOLUME

API_VERSION = "sparkoperator.k8s.io/v1beta2"
DRIVER_ACCOUNT = "mlc-spark-driver"
RBAC_FILE = "spark-rbac.yaml"
_DATA_KINDS = (StepKind.INGEST, StepKind.VALIDATE, StepKind.SPLIT, StepKind.FEATURES)


def launched(step: Step) -> bool:
    """Whether the kfp target runs `step` as a SparkApplication."""
    if step.kind in _DATA_KINDS:
        return step.params.get("engine") == "spark"
    return step.kind is StepKind.TRAIN and step.params.get("framework") == "spark_ml"


def _settings(ir: IRGraph) -> dict[str, Any]:
    for step in ir.steps:
        if step.kind is StepKind.INGEST and "spark" in step.params:
            found: dict[str, Any] = step.params["spark"]
            return found
    return {"master": "local[1]", "conf": {}}


def _pod(step: Step, options: KfpOptions, secrets: dict[str, str], driver: bool) -> dict[str, Any]:
    res = step.resources
    pod: dict[str, Any] = {
        "cores": max(1, math.ceil(float(res.cpu or 1))),
        "labels": {"app.kubernetes.io/managed-by": "mlc", "mlc/step": step.id},
        "volumeMounts": [{"mountPath": SHARED_PATH, "name": VOLUME}],
    }
    if res.memory:
        pod["memory"] = _spark_memory(str(res.memory))
    env: list[dict[str, Any]] = [{"name": "MLC_SPARK_SUBMITTED", "value": "1"}]
    for var in step_secrets(step, secrets):
        name, key = secret_ref(var, secrets[var])
        env.append({"name": var, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}})
    pod["env"] = env
    if driver:
        pod["serviceAccount"] = DRIVER_ACCOUNT
    return pod


def _spark_memory(quantity: str) -> str:
    """A Kubernetes quantity (`4Gi`, `512Mi`) in Spark's units (`4g`, `512m`)."""
    for suffix, unit in (("Gi", "g"), ("Mi", "m"), ("Ki", "k"), ("G", "g"), ("M", "m")):
        if quantity.endswith(suffix):
            return quantity[: -len(suffix)] + unit
    return quantity


def manifest(
    comp: Component, options: KfpOptions, secrets: dict[str, str], ir: IRGraph
) -> dict[str, Any]:
    """The step's SparkApplication as the launcher submits it, less what only the run knows
    (name suffix, namespace, and the step's arguments: params, inputs, outputs)."""
    step = comp.step
    settings = _settings(ir)
    arguments: list[str] = []
    if comp.tracking.get("uri"):
        arguments += ["--tracking-uri", str(comp.tracking["uri"])]
    if comp.tracking.get("artifact_location"):
        arguments += ["--artifact-location", str(comp.tracking["artifact_location"])]
    spec: dict[str, Any] = {
        "type": "Python",
        "mode": "cluster",
        "pythonVersion": "3",
        "image": options.image,
        "imagePullPolicy": "IfNotPresent",
        "mainApplicationFile": DRIVER_FILE,
        "arguments": arguments,
        "sparkVersion": SPARK_VERSION,
        "sparkConf": {str(k): str(v) for k, v in sorted(settings["conf"].items())},
        "restartPolicy": {"type": "Never"},
        "driver": _pod(step, options, secrets, driver=True),
        "executor": {**_pod(step, options, secrets, driver=False), "instances": 2},
        "volumes": [
            {"name": VOLUME, "persistentVolumeClaim": {"claimName": options.shared_volume}}
        ],
        "timeToLiveSeconds": 3600,
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "SparkApplication",
        "metadata": {
            "annotations": {"mlc/shared-path": SHARED_PATH},
            "labels": {
                "app.kubernetes.io/managed-by": "mlc",
                "mlc/step": step.id,
                "mlc/kind": step.kind.value,
            },
            "name": step.id,
            "namespace": options.namespace,
        },
        "spec": spec,
    }


def launcher_source(
    comp: Component, options: KfpOptions, secrets: dict[str, str], ir: IRGraph
) -> tuple[str, str]:
    """(function name, module source) of the launcher component (`launch.launcher_source`)."""
    return launch.launcher_source(
        comp,
        manifest(comp, options, secrets, ir),
        module="mlc.runtime.spark.launcher",
        doc=f"IR step {comp.step.id!r} ({comp.step.kind.value}) as a Spark Operator "
        "SparkApplication running the mlc runtime step entry.",
    )


def launcher_platform(step: Step, options: KfpOptions) -> dict[str, Any]:
    """kfp-kubernetes config of the launcher pod (`launch.launcher_platform`). No secrets: the
    driver and executors get those."""
    return launch.launcher_platform(step, options)


def rbac(options: KfpOptions) -> list[dict[str, Any]]:
    """The launcher's rights on sparkapplications, and the driver's account with rights on the
    pods, services and config maps its executors need."""
    account = options.service_account or "pipeline-runner"
    ns = options.namespace
    launcher, driver = "mlc-spark-launcher", DRIVER_ACCOUNT
    return [
        launch.service_account(driver, ns),
        launch.launcher_role(launcher, "sparkoperator.k8s.io", "sparkapplications", ns),
        launch.binding(launcher, account, ns),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"labels": launch.LABELS, "name": driver, "namespace": ns},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["pods", "services", "configmaps", "persistentvolumeclaims"],
                    "verbs": ["create", "delete", "deletecollection", "get", "list", "watch"],
                }
            ],
        },
        launch.binding(driver, driver, ns),
    ]


def extra_files(ir: IRGraph, options: KfpOptions) -> dict[str, str | bytes]:
    """`spark-rbac.yaml` when some step runs as a SparkApplication, else nothing."""
    if not any(launched(s) for s in ir.steps):
        return {}
    from mlc.targets.kfp.package import dump_yaml

    return {RBAC_FILE: "---\n".join(dump_yaml(doc) for doc in rbac(options))}
