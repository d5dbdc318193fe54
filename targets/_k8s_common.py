"""Kubernetes objects shared by the kserve and k8s targets.

ServiceAccount bound to the cloud identity Terraform creates, NetworkPolicy from
`security.network`, Role/RoleBinding for deployers, PodDisruptionBudget, secret references,
container resources and the deterministic YAML writer. Reads IR step params only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from mlc.compiler.diagnostics import Diagnostic
from mlc.compiler.ir import IRGraph, Step, StepKind
from mlc.targets import _cloud
from mlc.targets.base import TargetOptions, is_secret_ref
from mlc.targets.terraform import names

MANAGED_BY = "mlc"
VERSION_LABEL = "mlc.dev/version"
SERVING_PORT = 8080
TLS_PORT = 8443
TLS_MOUNT = "/etc/mlc/tls"

IDENTITY_ANNOTATIONS = names.IDENTITY_ANNOTATIONS
"""ServiceAccount annotation that binds pods to the cloud identity (IRSA / workload identity)."""

GPU_NODE_LABEL = {
    "aws": "k8s.amazonaws.com/accelerator",
    "gcp": "cloud.google.com/gke-accelerator",
    "azure": "accelerator",
    "onprem": "nvidia.com/gpu.product",
}
"""Node label that selects an accelerator type on each cloud's managed Kubernetes."""

STORAGE_SCHEME = {"aws": "s3", "gcp": "gs", "azure": "https", "onprem": "pvc"}


class K8sOptions(TargetOptions):
    """Options shared by the kserve and k8s targets."""

    namespace: str = "default"
    """Namespace every manifest is placed in."""
    tracking_uri: str = "http://mlflow.mlflow.svc:5000"
    """MLflow tracking server the served versions (and batch jobs) load from."""
    stable_version: str = "champion"
    """Registry alias of the version serving today (the rollback destination)."""
    candidate_version: str = "challenger"
    """Registry alias of the version being rolled out."""
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    """Prometheus the rollout analysis queries."""


def dns_name(text: str) -> str:
    """A DNS-1123 label made from `text`.

    >>> dns_name("vault:secret/data/Credit_Risk")
    'vault-secret-data-credit-risk'
    """
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return re.sub(r"-{2,}", "-", name)[:63].rstrip("-") or "x"


def dump_docs(docs: Iterable[Mapping[str, Any]]) -> str:
    """Deterministic multi-document YAML: sorted keys, block style, no aliases."""

    class _NoAlias(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return yaml.dump_all(
        list(docs),
        Dumper=_NoAlias,
        sort_keys=True,
        default_flow_style=False,
        explicit_start=True,
        width=100,
    )


def deploy_step(ir: IRGraph) -> Step | None:
    """The online deployment step, if the spec serves online."""
    return ir.first(StepKind.DEPLOY)


def cloud_of(ir: IRGraph) -> str:
    return str(ir.settings.get("deployment", {}).get("cloud") or "onprem")


def identity_placeholder(role: str) -> str:
    """The value written into manifests, substituted from the Terraform output at deploy time.

    >>> identity_placeholder("serving")
    '${serving_identity}'
    """
    return "${" + names.identity_output(role) + "}"


def service_account_name(model: str, role: str = "serving") -> str:
    """The ServiceAccount the Terraform identity of `role` trusts."""
    return dns_name(names.service_account_name(model, role))


def referenced_identities(ir: IRGraph) -> list[tuple[str, str]]:
    """(role, dotted spec origin) of each identity the serving manifests reference."""
    step = deploy_step(ir)
    if step is None or "identity" not in step.inputs:
        return []
    role = str(ir.artifact(step.inputs["identity"]).meta.get("role", "serving"))
    return [(role, "security.access")]


def labels(app: str, version: str | None = None) -> dict[str, str]:
    out = {"app.kubernetes.io/name": app, "app.kubernetes.io/managed-by": MANAGED_BY}
    if version is not None:
        out[VERSION_LABEL] = version
    return out


def meta(
    name: str,
    namespace: str,
    app: str,
    version: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels(app, version)}
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def model_uri(ir: IRGraph, model: str, alias: str) -> str:
    """Where the registry places the files of `model` at `alias`, inside the artifacts bucket."""
    scheme = STORAGE_SCHEME.get(cloud_of(ir), "pvc")
    bucket = "${" + names.ARTIFACTS_BUCKET_OUTPUT + "}"
    if scheme == "https":
        return f"https://{bucket}.blob.core.windows.net/models/{model}/{alias}"
    if scheme == "pvc":
        return f"pvc://{dns_name(model)}-artifacts/models/{model}/{alias}"
    return f"{scheme}://{bucket}/models/{model}/{alias}"


# -- access ---------------------------------------------------------------------------------


def service_account(ir: IRGraph, model: str, ns: str, app: str) -> dict[str, Any]:
    """ServiceAccount bound to the Terraform serving identity of the spec's cloud."""
    cloud = cloud_of(ir)
    annotations: dict[str, str] = {}
    metadata = meta(service_account_name(model), ns, app)
    for role, _origin in referenced_identities(ir):
        key = IDENTITY_ANNOTATIONS.get(cloud)
        if key is not None:
            annotations[key] = identity_placeholder(role)
    if cloud == "azure":
        metadata["labels"]["azure.workload.identity/use"] = "true"
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata,
        "automountServiceAccountToken": cloud != "onprem",
    }


def _subject(member: str, ns: str) -> dict[str, str]:
    kind, _, who = member.partition(":")
    if not who:
        kind, who = ("User", member)
    elif kind == "serviceaccount":
        sa_ns, _, sa = who.rpartition("/")
        return {"kind": "ServiceAccount", "name": sa, "namespace": sa_ns or ns}
    else:
        kind = "Group" if kind == "group" else "User"
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": who}


def deployer_rbac(
    access: Sequence[Mapping[str, Any]], ns: str, app: str, resources: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Role + RoleBinding per access role holding the `deploy` permission.

    `resources` lists (apiGroup, plural) the deployer may change.
    """
    groups: dict[str, list[str]] = {}
    for group, plural in resources:
        groups.setdefault(group, []).append(plural)
    rules = [
        {
            "apiGroups": [g],
            "resources": sorted(p),
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        }
        for g, p in sorted(groups.items())
    ]
    docs: list[dict[str, Any]] = []
    for role in access:
        if "deploy" not in role.get("permissions", ()):
            continue
        name = dns_name(f"{app}-{role['role']}")
        docs.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": meta(name, ns, app),
                "rules": rules,
            }
        )
        docs.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": meta(name, ns, app),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [_subject(m, ns) for m in role.get("members", ())],
            }
        )
    return docs


def _peer(source: str) -> dict[str, Any]:
    """A NetworkPolicy peer from a CIDR block or a namespace name."""
    if re.match(r"^[0-9a-fA-F.:]+/\d+$", source):
        return {"ipBlock": {"cidr": source}}
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": source}}}


def network_policy(
    network: Mapping[str, Any], ns: str, app: str, ports: Sequence[int]
) -> dict[str, Any]:
    """NetworkPolicy: callers from `ingress` only (everyone if public), egress as listed.

    Egress is restricted only when the spec lists destinations; DNS stays open so that
    listed hostnames resolve.
    """
    port_list = [{"port": p, "protocol": "TCP"} for p in ports]
    ingress_from = [_peer(s) for s in network.get("ingress", ())]
    ingress_rule: dict[str, Any] = {"ports": port_list}
    if not network.get("allow_public"):
        ingress_rule["from"] = ingress_from
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": app}},
        "policyTypes": ["Ingress"],
        "ingress": [ingress_rule] if network.get("allow_public") or ingress_from else [],
    }
    egress = list(network.get("egress", ()))
    if egress:
        spec["policyTypes"] = ["Ingress", "Egress"]
        spec["egress"] = [
            {"to": [_peer(s) for s in egress]},
            {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
        ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(app, ns, app),
        "spec": spec,
    }


def pod_disruption_budget(ns: str, app: str, min_replicas: int) -> dict[str, Any]:
    """Keep at least one pod through voluntary disruptions when more than one may run."""
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app.kubernetes.io/name": app}}}
    if min_replicas > 1:
        spec["minAvailable"] = min_replicas - 1
    else:
        spec["maxUnavailable"] = 1
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(app, ns, app),
        "spec": spec,
    }


# -- containers -----------------------------------------------------------------------------


def secret_ref(reference: str) -> tuple[str, str]:
    """(Secret name, key) a secret reference is mounted from; never the value.

    >>> secret_ref("vault:secret/data/credit-risk#pseudonym_key")
    ('vault-secret-data-credit-risk', 'pseudonym_key')
    >>> secret_ref("env:API_TOKEN")
    ('env-api-token', 'API_TOKEN')
    """
    scheme, _, rest = reference.partition(":")
    path, _, key = rest.partition("#")
    if not key:
        key = path.rsplit("/", 1)[-1]
    key = re.sub(r"[^-._a-zA-Z0-9]", "_", key)
    return dns_name(f"{scheme}-{path}"), key


def secret_env(secrets: Mapping[str, str]) -> list[dict[str, Any]]:
    """Container env entries reading each secret from a Kubernetes Secret by reference."""
    env = []
    for var, ref in sorted(secrets.items()):
        name, key = secret_ref(ref)
        env.append({"name": var, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}})
    return env


def container_resources(res: Mapping[str, Any]) -> dict[str, Any]:
    """requests/limits from the IR's resources, GPUs as `nvidia.com/gpu` limits."""
    requests: dict[str, str] = {}
    for key in ("cpu", "memory"):
        if res.get(key):
            requests[key] = str(res[key])
    limits = dict(requests)
    if res.get("gpu_count"):
        limits["nvidia.com/gpu"] = str(res["gpu_count"])
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def node_selector(ir: IRGraph, res: Mapping[str, Any]) -> dict[str, str]:
    if res.get("gpu_count") and res.get("gpu_type"):
        return {GPU_NODE_LABEL.get(cloud_of(ir), "nvidia.com/gpu.product"): str(res["gpu_type"])}
    return {}


def tls_secret_name(app: str) -> str:
    return f"{app}-tls"


def check_gpu(ir: IRGraph, step: Step) -> list[Diagnostic]:
    """A GPU type the spec's cloud does not offer is an error located at the GPU type."""
    gpu_type, cloud = step.resources.gpu_type, cloud_of(ir)
    if not step.resources.gpu_count or gpu_type is None or cloud not in _cloud.GPU_TYPES:
        return []
    if _cloud.offers_gpu(cloud, gpu_type):
        return []
    return [
        Diagnostic(
            "MLC710",
            f"GPU type '{gpu_type}' is not offered on cloud '{cloud}'",
            hint="use one of: " + ", ".join(sorted(_cloud.GPU_TYPES[cloud])),
            path=f"{step.origin}.resources.gpu.type",
        )
    ]


SERVING_FEATURES = frozenset(
    {
        "mode.online",
        "cloud.aws",
        "cloud.gcp",
        "cloud.azure",
        "cloud.onprem",
        "strategy.recreate",
        "strategy.canary",
        "strategy.blue_green",
        "resources.gpu",
        "encryption.in_transit",
        "network.policy",
        "secrets",
    }
)
"""What both Kubernetes serving targets honour; each adds its platform and extra strategies."""


# -- the serving container -------------------------------------------------------------------

SERVE_IMAGE = "ghcr.io/mlc-project/mlc-serve:0.1.0"
"""Default serving image: what the emitted `Dockerfile` builds (mlc with the serving extras and
the spec's project), running `mlc serve`."""
PROJECT_DIR = "/project"
LOG_MOUNT = "/var/lib/mlc"
"""A writable volume for the prediction log (the container's root filesystem is read-only)."""


def tracking_env(ir: IRGraph, opts: K8sOptions) -> dict[str, Any]:
    """`MLFLOW_TRACKING_URI` of a pod: the spec's `tracking.uri` (a secret reference from its
    Secret, as every secret is mounted), else the target's `tracking_uri` option."""
    uri = (ir.settings.get("tracking") or {}).get("uri")
    if uri and is_secret_ref(str(uri)):
        name, key = secret_ref(str(uri))
        return {
            "name": "MLFLOW_TRACKING_URI",
            "valueFrom": {"secretKeyRef": {"name": name, "key": key}},
        }
    return {"name": "MLFLOW_TRACKING_URI", "value": str(uri or opts.tracking_uri)}


def serve_args(alias: str, port: int, tls: bool) -> list[str]:
    """`mlc serve` for one registered alias in a pod: V2 protocol, metrics, guards, log."""
    args = [
        "serve",
        f"{PROJECT_DIR}/mlc.yaml",
        "--alias",
        alias,
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
        "--log-dir",
        f"{LOG_MOUNT}/predictions",
    ]
    if tls:
        args += ["--tls-cert", f"{TLS_MOUNT}/tls.crt", "--tls-key", f"{TLS_MOUNT}/tls.key"]
    return args


def serve_probes(port: int, tls: bool) -> dict[str, Any]:
    """Readiness after the model loaded and warmed up; liveness of the process."""
    scheme = "HTTPS" if tls else "HTTP"
    return {
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": port, "scheme": scheme}},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": port, "scheme": scheme}},
    }


def serving_dockerfile(model: str, version: str, extras: Sequence[str] = ("ml", "serve")) -> str:
    """The serving image's Dockerfile, built from the spec's project folder; `extras` are the
    mlc extras the model needs to load (its framework's beside `ml` and `serve`)."""
    return f"""# The serving image of {model}: `mlc serve` over the registry, as manifests run it.
# Build from the spec's project folder (it is copied to {PROJECT_DIR}):
#   docker build -f <this file> -t {SERVE_IMAGE} <project folder>
# MLC_PACKAGE may name a wheel by URL, or another release than mlc {version}.
FROM python:3.11-slim

ARG MLC_PACKAGE="mlc[{",".join(extras)}]=={version}"
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install "$MLC_PACKAGE" && useradd --uid 10001 --no-create-home mlc \
    && mkdir -p {LOG_MOUNT} && chown mlc {LOG_MOUNT}
COPY . {PROJECT_DIR}
WORKDIR {PROJECT_DIR}
USER 10001
EXPOSE 8080
ENTRYPOINT ["mlc"]
CMD ["serve", "{PROJECT_DIR}/mlc.yaml", "--host", "0.0.0.0", "--port", "8080"]
"""
