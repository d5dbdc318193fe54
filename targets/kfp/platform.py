"""Kubernetes settings of a step: container resources and kfp-kubernetes platform config.

Resources go into the executor's container spec (requests equal limits, as the spec gives one
value); GPUs add an accelerator request, a node selector on the accelerator type and a
toleration; secrets are mounted by reference only (`secretAsEnv`), never by value.
"""

from __future__ import annotations

import math
import re
from typing import Any

from mlc.compiler.ir import Resources, Step
from mlc.targets.base import quantities
from mlc.targets.kfp import KfpOptions

_SECRET = re.compile(r"^(?P<scheme>[a-z-]+):(?P<path>[^#]*)(?:#(?P<key>.+))?$")


def resources_spec(res: Resources, options: KfpOptions) -> dict[str, Any] | None:
    """The container `resources` of an executor, in the fields kfp 2.17 writes."""
    out: dict[str, Any] = {}
    if res.cpu is not None:
        cpu = quantities.cpu_cores(res.cpu)
        out.update(
            cpuLimit=cpu, cpuRequest=cpu, resourceCpuLimit=res.cpu, resourceCpuRequest=res.cpu
        )
    if res.memory is not None:
        # kfp's deprecated float fields are in units of 10^9 bytes; newer backends read the
        # strings.
        gb = quantities.memory_gb(res.memory)
        out.update(
            memoryLimit=gb,
            memoryRequest=gb,
            resourceMemoryLimit=res.memory,
            resourceMemoryRequest=res.memory,
        )
    if res.gpu_count > 0:
        count = str(res.gpu_count)
        out["accelerator"] = {
            "count": count,
            "resourceCount": count,
            "resourceType": options.gpu_resource,
            "type": options.gpu_resource,
        }
    return out or None


def secret_ref(env: str, ref: str) -> tuple[str, str]:
    """(Kubernetes Secret name, key) holding a spec secret reference.

    The secret manager's entry is expected to be synced into the namespace (e.g. by External
    Secrets) as a Secret named after the last path segment, the key after `#`.

    >>> secret_ref("MLC_KEY", "vault:secret/data/credit-risk#pseudonym_key")
    ('credit-risk', 'pseudonym_key')
    >>> secret_ref("DB_URL", "env:DB_URL")
    ('mlc-secrets', 'DB_URL')
    """
    match = _SECRET.match(ref)
    if match is None or match.group("scheme") == "env":
        return "mlc-secrets", env
    segment = match.group("path").rstrip("/").rsplit("/", 1)[-1]
    name = re.sub(r"[^a-z0-9-]+", "-", segment.lower()).strip("-") or "mlc-secrets"
    return name[:253], match.group("key") or env


def step_secrets(step: Step, secrets: dict[str, str]) -> list[str]:
    """Secrets a step uses: those its params name as `env:VAR` (least privilege)."""
    import json

    text = json.dumps(step.params, sort_keys=True)
    return sorted(env for env in secrets if f"env:{env}" in text)


def executor_platform(step: Step, options: KfpOptions, secrets: dict[str, str]) -> dict[str, Any]:
    """kfp-kubernetes `KubernetesExecutorConfig` of a step, as kfp-kubernetes writes it."""
    config: dict[str, Any] = {}
    by_secret: dict[str, dict[str, str]] = {}
    for env in step_secrets(step, secrets):
        name, key = secret_ref(env, secrets[env])
        by_secret.setdefault(name, {})[key] = env
    if by_secret:
        config["secretAsEnv"] = [
            {
                "keyToEnv": [{"envVar": env, "secretKey": key} for key, env in sorted(m.items())],
                "optional": False,
                "secretName": name,
                "secretNameParameter": {"runtimeValue": {"constant": name}},
            }
            for name, m in sorted(by_secret.items())
        ]
    res = step.resources
    if res.gpu_count > 0:
        if res.gpu_type:
            config["nodeSelector"] = {"labels": {options.gpu_node_selector_key: res.gpu_type}}
        config["tolerations"] = [
            {"effect": "NoSchedule", "key": options.gpu_toleration_key, "operator": "Exists"}
        ]
    if step.timeout_s:
        # whole seconds, at least one: Kubernetes refuses 0, which `int()` makes of '500ms'
        config["activeDeadlineSeconds"] = str(max(1, math.ceil(step.timeout_s)))
    return config
