"""`--target kserve`: KServe InferenceServices with the spec's rollout strategy.

Recreate: one InferenceService. Canary: one InferenceService whose predictor runs the canary
itself (see below). A/B: one InferenceService per
variant behind an `InferenceGraph` Splitter. Shadow: the primary and the shadow service with an
Istio `VirtualService` mirroring traffic. Blue-green: two services and a `VirtualService` per
traffic position (the switch, and the switch back). Beside them, `common.yaml` holds the
ServiceAccount, NetworkPolicy, deployer RBAC, PodDisruptionBudget and (with TLS in transit) the
Istio mutual-TLS `DestinationRule`. With drift or performance monitoring, `monitor/` holds the
`CronJob` running `mlc loop` and `predictions.yaml` the log claim it shares with the predictors
(see `mlc.targets.k8s.monitor`).

Who advances a canary: the in-server router, not the Kubernetes API. The predictor runs
`mlc serve` with the spec's canary strategy (stable `champion`, canary `challenger` at the first
step's weight), judges the canary on its own request metrics after each bake, advances, promotes
(moves `champion`) or rolls back, each decision in the audit chain, and re-resolves the aliases
every `reload_interval_s`; `mlc loop` registers the challenger and nothing else. Why not patch
`canaryTrafficPercent`: KServe splits traffic between the last two *revisions* of the
InferenceService, so each model version would need a new revision (a template change) plus a
controller with `patch` rights on InferenceServices judging Prometheus from outside — a second
canary implementation beside the one `mlc serve` has, and a cluster write permission for a job
that otherwise needs none. So no job here gets RBAC on InferenceServices; the deployer roles in
`common.yaml` stay the only writers. A new predictor image or spec still rolls out as a KServe
revision when the deployer applies the changed manifest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mlc.compiler.ir import IRGraph, Step, StepKind
from mlc.targets import _k8s_common as kube
from mlc.targets._serving import ServingBuilder, ServingTarget
from mlc.targets.base import Capabilities
from mlc.targets.k8s import monitor

ISVC_API = "serving.kserve.io/v1beta1"
GRAPH_API = "serving.kserve.io/v1alpha1"
ISTIO_API = "networking.istio.io/v1beta1"

SUPPORTS = kube.SERVING_FEATURES | frozenset(
    {"platform.kserve", "strategy.ab", "strategy.shadow", "autoscaling.scale_to_zero"}
)


class KServeOptions(monitor.LoopOptions):
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

    def isvc(self, name: str, alias: str | None) -> dict[str, Any]:
        """`alias` None: the predictor serves the spec's strategy in the server."""
        auto = self.params["autoscaling"]
        res = self.step.resources.to_dict()
        container: dict[str, Any] = {
            "name": "kserve-container",
            "image": self.opts.image,
            "command": ["mlc"],
            "args": monitor.serving_args(
                alias,
                kube.SERVING_PORT,
                False,
                follow=alias in (None, self.opts.stable_version),
                reload_s=self.opts.reload_interval_s,
            ),
            "env": [
                kube.tracking_env(self.ir, self.opts),
                monitor.audit_env(self.opts),
                *kube.secret_env(self.params["secrets"]),
                monitor.admin_token_env(self.app),
            ],
            "ports": [{"containerPort": kube.SERVING_PORT, "protocol": "TCP"}],
            **kube.serve_probes(kube.SERVING_PORT, False),
            "volumeMounts": monitor.state_mounts(),
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
            "volumes": [monitor.prediction_volume(self.app)],
            "securityContext": {"fsGroup": monitor.RUN_AS},
        }
        selector = kube.node_selector(self.ir, res)
        if selector:
            predictor["nodeSelector"] = selector
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
        out: dict[str, str | bytes] = {
            "common.yaml": kube.dump_docs(self.common_docs()),
            "predictions.yaml": kube.dump_docs(
                [monitor.prediction_claim(self.app, self.ns, self.opts)]
            ),
        }
        strategy = self.params["strategy"]
        kind = strategy["kind"]
        stable, candidate = self.opts.stable_version, self.opts.candidate_version
        if kind == "recreate":
            out["inferenceservice.yaml"] = kube.dump_docs([self.isvc(self.app, stable)])
        elif kind == "canary":
            # the server runs the canary (steps, bake, judgement, promotion) itself
            out["inferenceservice.yaml"] = kube.dump_docs([self.isvc(self.app, None)])
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

    def jobs(
        self, ir: IRGraph, opts: kube.K8sOptions, serving: Mapping[str, str | bytes]
    ) -> dict[str, str | bytes]:
        """The loop's CronJob beside the predictors (kserve predictors serve without TLS)."""
        assert isinstance(opts, KServeOptions)
        deploy = kube.deploy_step(ir)
        if deploy is None:
            return {}
        app = kube.dns_name(str(deploy.params["model_name"]))
        url = f"http://{app}-predictor.{opts.namespace}.svc.cluster.local"
        return monitor.monitor_files(ir, opts, serve_url=url, with_account=False)


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
