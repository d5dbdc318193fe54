"""`--target kserve`: KServe InferenceServices with the spec's rollout strategy.

Recreate: one InferenceService. Canary: one manifest per traffic step (`canaryTrafficPercent`)
plus the rollback manifest, in the order of `rollout/order.json`. A/B: one InferenceService per
variant behind an `InferenceGraph` Splitter. Shadow: the primary and the shadow service with an
Istio `VirtualService` mirroring traffic. Blue-green: two services and a `VirtualService` per
traffic position (the switch, and the switch back). Beside them, `common.yaml` holds the
ServiceAccount, NetworkPolicy, deployer RBAC, PodDisruptionBudget and (with TLS in transit) the
Istio mutual-TLS `DestinationRule`.
"""

from __future__ import annotations

import json
from typing import Any

from mlc.compiler.ir import IRGraph, Step, StepKind
from mlc.targets import _k8s_common as kube
from mlc.targets._serving import ServingBuilder, ServingTarget
from mlc.targets.base import Capabilities

ISVC_API = "serving.kserve.io/v1beta1"
GRAPH_API = "serving.kserve.io/v1alpha1"
ISTIO_API = "networking.istio.io/v1beta1"

SUPPORTS = kube.SERVING_FEATURES | frozenset(
    {"platform.kserve", "strategy.ab", "strategy.shadow", "autoscaling.scale_to_zero"}
)


class KServeOptions(kube.K8sOptions):
    """Options of the kserve target (`targets.kserve` in a spec)."""

    image: str = kube.SERVE_IMAGE
    """Predictor image running `mlc serve` (V2 protocol; build it from the emitted
    `Dockerfile`): the registered model needs mlc's transforms, which KServe's stock mlflow
    runtime does not have."""


class _Builder(ServingBuilder):
    deployer_resources = (
        ("serving.kserve.io", "inferenceservices"),
        ("serving.kserve.io", "inferencegraphs"),
        ("networking.istio.io", "virtualservices"),
    )

    def __init__(self, ir: IRGraph, step: Step, opts: KServeOptions) -> None:
        super().__init__(ir, step, opts)
        self.opts: KServeOptions = opts

    def isvc(self, name: str, alias: str, canary_percent: int | None = None) -> dict[str, Any]:
        auto = self.params["autoscaling"]
        res = self.step.resources.to_dict()
        container: dict[str, Any] = {
            "name": "kserve-container",
            "image": self.opts.image,
            "command": ["mlc"],
            "args": kube.serve_args(alias, kube.SERVING_PORT, False),
            "env": [
                kube.tracking_env(self.ir, self.opts),
                *kube.secret_env(self.params["secrets"]),
            ],
            "ports": [{"containerPort": kube.SERVING_PORT, "protocol": "TCP"}],
            **kube.serve_probes(kube.SERVING_PORT, False),
            "volumeMounts": [{"name": "predictions", "mountPath": kube.LOG_MOUNT}],
        }
        resources = kube.container_resources(res)
        if resources:
            container["resources"] = resources
        predictor: dict[str, Any] = {
            "serviceAccountName": kube.service_account_name(self.model),
            "minReplicas": 0 if auto["scale_to_zero"] else auto["min_replicas"],
            "maxReplicas": auto["max_replicas"],
            "scaleMetric": "concurrency",
            "scaleTarget": auto["target_utilization"],
            "containers": [container],
            "volumes": [{"name": "predictions", "emptyDir": {}}],
        }
        selector = kube.node_selector(self.ir, res)
        if selector:
            predictor["nodeSelector"] = selector
        if canary_percent is not None:
            predictor["canaryTrafficPercent"] = canary_percent
        annotations = {"sidecar.istio.io/inject": "true"} if self.tls else None
        return {
            "apiVersion": ISVC_API,
            "kind": "InferenceService",
            "metadata": kube.meta(name, self.ns, self.app, alias, annotations),
            "spec": {"predictor": predictor},
        }

    def host(self, isvc_name: str) -> str:
        return f"{isvc_name}-predictor.{self.ns}.svc.cluster.local"

    def virtual_service(
        self, name: str, routes: list[tuple[str, int]], mirror: tuple[str, int] | None = None
    ) -> dict[str, Any]:
        http: dict[str, Any] = {
            "route": [
                {"destination": {"host": self.host(svc), "port": {"number": 80}}, "weight": w}
                for svc, w in routes
            ]
        }
        if mirror is not None:
            http["mirror"] = {"host": self.host(mirror[0]), "port": {"number": 80}}
            http["mirrorPercentage"] = {"value": float(mirror[1])}
        return {
            "apiVersion": ISTIO_API,
            "kind": "VirtualService",
            "metadata": kube.meta(name, self.ns, self.app),
            "spec": {"hosts": [f"{self.app}.{self.ns}.svc.cluster.local"], "http": [http]},
        }

    def common_docs(self) -> list[dict[str, Any]]:
        docs = self.common([kube.SERVING_PORT])
        if self.tls:
            docs.append(
                {
                    "apiVersion": ISTIO_API,
                    "kind": "DestinationRule",
                    "metadata": kube.meta(self.app, self.ns, self.app),
                    "spec": {
                        "host": f"*.{self.ns}.svc.cluster.local",
                        "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
                    },
                }
            )
        return docs

    def files(self) -> dict[str, str | bytes]:
        out: dict[str, str | bytes] = {"common.yaml": kube.dump_docs(self.common_docs())}
        strategy = self.params["strategy"]
        kind = strategy["kind"]
        stable, candidate = self.opts.stable_version, self.opts.candidate_version
        if kind == "recreate":
            out["inferenceservice.yaml"] = kube.dump_docs([self.isvc(self.app, stable)])
        elif kind == "canary":
            canary_steps = []
            for i, pct in enumerate(strategy["steps"], start=1):
                path = f"rollout/{i:02d}-canary-{pct}.yaml"
                out[path] = kube.dump_docs([self.isvc(self.app, candidate, pct)])
                canary_steps.append(
                    {
                        "apply": path,
                        "bake_time_s": strategy["bake_time"] if pct != 100 else 0,
                        "traffic_percent": pct,
                    }
                )
            out["rollout/00-stable.yaml"] = kube.dump_docs([self.isvc(self.app, stable)])
            # KServe keeps the last rolled-out revision: 0 % to the canary sends all back to it.
            out["rollout/rollback.yaml"] = kube.dump_docs([self.isvc(self.app, candidate, 0)])
            out["rollout/order.json"] = _json(
                {
                    "initial": "rollout/00-stable.yaml",
                    "steps": canary_steps,
                    "rollback": "rollout/rollback.yaml",
                    "rollback_when": list(strategy["rollback"]),
                }
            )
        elif kind == "ab":
            docs, steps = [], []
            for variant in strategy["variants"]:
                name = kube.dns_name(f"{self.app}-{variant['name']}")
                docs.append(self.isvc(name, variant["model_alias"]))
                steps.append(
                    {
                        "name": kube.dns_name(variant["name"]),
                        "serviceName": name,
                        "weight": variant["weight"],
                    }
                )
            out["inferenceservices.yaml"] = kube.dump_docs(docs)
            out["inferencegraph.yaml"] = kube.dump_docs(
                [
                    {
                        "apiVersion": GRAPH_API,
                        "kind": "InferenceGraph",
                        "metadata": kube.meta(self.app, self.ns, self.app),
                        "spec": {"nodes": {"root": {"routerType": "Splitter", "steps": steps}}},
                    }
                ]
            )
        elif kind == "shadow":
            shadow = f"{self.app}-shadow"
            out["inferenceservices.yaml"] = kube.dump_docs(
                [self.isvc(self.app, stable), self.isvc(shadow, candidate)]
            )
            out["virtualservice.yaml"] = kube.dump_docs(
                [
                    self.virtual_service(
                        self.app, [(self.app, 100)], (shadow, int(strategy["mirror_percent"]))
                    )
                ]
            )
        elif kind == "blue_green":
            blue, green = f"{self.app}-blue", f"{self.app}-green"
            out["inferenceservices.yaml"] = kube.dump_docs(
                [self.isvc(blue, stable), self.isvc(green, candidate)]
            )
            out["switch/to-blue.yaml"] = kube.dump_docs(
                [self.virtual_service(self.app, [(blue, 100), (green, 0)])]
            )
            out["switch/to-green.yaml"] = kube.dump_docs(
                [self.virtual_service(self.app, [(blue, 0), (green, 100)])]
            )
            out["switch/order.json"] = _json(
                {
                    "initial": "switch/to-blue.yaml",
                    "switch": "switch/to-green.yaml",
                    "bake_time_s": strategy["bake_time"],
                    "mode": strategy["switch"],
                    "rollback": "switch/to-blue.yaml",
                    "rollback_when": list(strategy["rollback"]),
                }
            )
        return out


class KServeTarget(ServingTarget):
    name = "kserve"
    description = "KServe InferenceService manifests with canary, A/B, shadow or blue-green."
    options_model = KServeOptions
    capabilities = Capabilities(realises=frozenset({StepKind.DEPLOY}), supports=SUPPORTS)
    builder = _Builder


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
