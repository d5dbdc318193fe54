"""What the kfp target's launcher components share: a component that runs one step as a
Kubernetes custom resource (TrainJob, SparkApplication) through `mlc.runtime.k8s_launch`, the
launcher pod's platform config, and the RBAC documents that let it create the resource."""

from __future__ import annotations

import json
import math
from typing import Any

from mlc.compiler.ir import Step
from mlc.targets.kfp import KfpOptions
from mlc.targets.kfp.components import (
    _PRELUDE,
    Component,
    apply_overrides,
    py_name,
    signature,
)

SHARED_PATH = "/mlc-shared"
"""Where the launcher and the workload's pods mount the shared volume."""
LABELS = {"app.kubernetes.io/managed-by": "mlc"}


def launcher_source(
    comp: Component, template: dict[str, Any], *, module: str, doc: str
) -> tuple[str, str]:
    """(function name, module source) of a launcher component, in the shape of
    `components.function_source` (same interface: params, overrides, inputs, outputs).

    `module` is imported as `mlc_launcher` and its `main(template, params, inputs, outputs,
    project_dir)` runs `template` with the step's params after the pipeline's overrides.
    """
    fn = py_name(comp.step.id)
    sig = signature(comp)
    ins = ", ".join(f"{json.dumps(ir_name)}: {n}.path" for n, (ir_name, _) in comp.inputs.items())
    outs = ", ".join(f"{json.dumps(ir_name)}: {n}.path" for n, (ir_name, _) in comp.outputs.items())
    body = json.dumps(template, sort_keys=True)
    lines = [
        f"def {fn}({', '.join(sig)}) -> None:",
        f'    """{doc}"""',
        "    import json as mlc_json",
        "    import sys as mlc_sys",
        "",
        f"    import {module} as mlc_launcher",
        "",
        *apply_overrides(comp),
        f"    mlc_template = mlc_json.loads({body!r})",
        "    mlc_code = mlc_launcher.main(",
        f"        mlc_template, mlc_step, {{{ins}}}, {{{outs}}}, mlc_project_dir",
        "    )",
        "    if mlc_code:",
        "        mlc_sys.exit(mlc_code)",
    ]
    return fn, _PRELUDE + "\n".join(lines) + "\n\n"


def launcher_platform(step: Step, options: KfpOptions) -> dict[str, Any]:
    """kfp-kubernetes config of a launcher pod: the shared volume and its own pod's name and
    uid (the resource's owner). No GPUs or secrets: the workload's pods get those."""
    config: dict[str, Any] = {
        "fieldPathAsEnv": [
            {"fieldPath": "metadata.name", "name": "MLC_POD_NAME"},
            {"fieldPath": "metadata.uid", "name": "MLC_POD_UID"},
        ],
        "pvcMount": [
            {
                "constant": options.shared_volume,
                "mountPath": SHARED_PATH,
                "pvcNameParameter": {"runtimeValue": {"constant": options.shared_volume}},
            }
        ],
    }
    if step.timeout_s:
        # The launcher waits a little longer than the workload may run, to report its end.
        config["activeDeadlineSeconds"] = str(max(1, math.ceil(step.timeout_s)) + 300)
    return config


def launcher_role(name: str, group: str, plural: str, namespace: str) -> dict[str, Any]:
    """A Role letting the launcher create, follow and delete one resource kind."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"labels": LABELS, "name": name, "namespace": namespace},
        "rules": [
            {
                "apiGroups": [group],
                "resources": [plural],
                "verbs": ["create", "delete", "get", "list", "watch"],
            },
            {"apiGroups": [group], "resources": [f"{plural}/status"], "verbs": ["get"]},
        ],
    }


def binding(role: str, account: str, namespace: str) -> dict[str, Any]:
    """A RoleBinding of `role` (same name) to the service account `account`."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"labels": LABELS, "name": role, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }


def service_account(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"labels": LABELS, "name": name, "namespace": namespace},
    }
