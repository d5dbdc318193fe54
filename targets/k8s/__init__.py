"""`--target k8s`: plain Kubernetes serving with progressive delivery by Argo Rollouts, and
batch scoring as a `CronJob`.

A `Deployment` per model version, a `Service`, a `HorizontalPodAutoscaler`. For canary and
blue-green an Argo Rollouts `Rollout` takes over the Deployment (`workloadRef`): its canary
steps (`setWeight`) and pauses (the bake time) come from the spec, and an `AnalysisTemplate`
queries Prometheus for the spec's rollback conditions, so a failing canary rolls back without
anyone watching. ServiceAccount, NetworkPolicy, deployer RBAC and PodDisruptionBudget come from
the shared module, as in the kserve target.

Two kinds of change roll out here. A new pod template (image, spec) is canaried by Argo
Rollouts, judged by the `AnalysisTemplate` on the series the new template's pods export (they
are told apart by their pod-template hash, which every pod name carries). A new model version is
canaried inside `mlc serve`: with the canary strategy the pods serve the stable (`champion`) and
canary (`challenger`) tracks at the spec's weights, judge the canary on their own metrics after
each bake, promote or roll back by moving registry aliases (audited), and re-resolve the aliases
every `reload_interval_s` (`--reload-interval`), so `mlc loop` in the `monitor/` CronJob — which
registers the challenger — deploys it without touching a Kubernetes object. Pods pinned to the
candidate alias (blue-green's preview) resolve it once: it must not change while it is judged.

The analysis conditions treat no data as no verdict: `len(result) > 0 && …` for success and
failure alike, so an empty answer (no traffic yet, a series missing) is Inconclusive — counted
against `inconclusiveLimit`, after which the Rollout pauses for a person — and never a pass.
Its queries read only series `mlc serve` exports (`mlc_requests_total`,
`mlc_request_errors_total`, `mlc_request_duration_seconds_bucket`), not the monitoring target's
recording rules, so they hold without those rules installed; `drift_score` reads
`mlc_feature_drift_score`, which the loop's monitor pass pushes to the Pushgateway (the serving
pods do not compute drift).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlc.compiler.ir import IRGraph, Step, StepKind
from mlc.runtime import metrics_contract
from mlc.targets import _k8s_common as kube
from mlc.targets._serving import ServingBuilder, ServingTarget
from mlc.targets.base import Capabilities
from mlc.targets.k8s import monitor
from mlc.targets.k8s.batch import batch_files
from mlc.targets.k8s.spark import scheduled, scheduled_files

ROLLOUTS_API = "argoproj.io/v1alpha1"

SUPPORTS = kube.SERVING_FEATURES | frozenset({"platform.k8s", "mode.batch"})
"""No `strategy.ab` / `strategy.shadow` (they need a mesh: use the kserve target) and no
`autoscaling.scale_to_zero` (a HorizontalPodAutoscaler keeps at least one pod)."""

HASH_ARG = "canary-hash"
"""Analysis argument: the pod-template hash of the Rollout's newest ReplicaSet (its pods are
named `<app>-<hash>-<suffix>`, and Prometheus labels every scraped series with `pod`)."""

_OPS = {">": "<=", ">=": "<", "<": ">=", "<=": ">"}
"""A rollback condition `m > t` holds exactly when the success condition `m <= t` fails."""


class K8sTargetOptions(monitor.LoopOptions):
    """Options of the k8s target (`targets.k8s` in a spec)."""

    image: str = kube.SERVE_IMAGE
    """Serving image running `mlc serve` (build it from the emitted `Dockerfile`)."""
    analysis_interval: str = "1m"
    """How often the rollout analysis queries Prometheus."""
    analysis_window: str = "5m"
    """Range the analysis's rates are taken over."""
    analysis_inconclusive_limit: int = 5
    """Measurements without data (no traffic) tolerated before the analysis is Inconclusive
    and the Rollout pauses for a person."""
    batch_image: str = "ghcr.io/mlc-project/mlc-runtime:0.1.0"
    """Image the batch scoring job runs `mlc batch` in (the kfp components' runtime image)."""
    project_dir: str = "/project"
    """Where the spec's project lives in the batch image."""


class _Builder(ServingBuilder):
    deployer_resources = (
        ("apps", "deployments"),
        ("", "services"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("argoproj.io", "rollouts"),
        ("argoproj.io", "analysistemplates"),
    )

    def __init__(self, ir: IRGraph, step: Step, opts: K8sTargetOptions) -> None:
        super().__init__(ir, step, opts)
        self.opts: K8sTargetOptions = opts
        self.port = kube.TLS_PORT if self.tls else kube.SERVING_PORT

    def pod_template(self, alias: str) -> dict[str, Any]:
        res = self.step.resources.to_dict()
        env: list[dict[str, Any]] = [
            kube.tracking_env(self.ir, self.opts),
            monitor.audit_env(self.opts),
            {"name": "MODEL_NAME", "value": self.model},
            {"name": "MODEL_VERSION", "value": alias},
        ]
        container: dict[str, Any] = {
            "name": "model",
            "image": self.opts.image,
            "command": ["mlc"],
            "args": self.serve_args(alias),
            "ports": [{"containerPort": self.port, "name": "http", "protocol": "TCP"}],
            **kube.serve_probes(self.port, self.tls),
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "runAsNonRoot": True,
                "readOnlyRootFilesystem": True,
            },
            "volumeMounts": monitor.state_mounts(),
        }
        pod: dict[str, Any] = {
            "serviceAccountName": kube.service_account_name(self.model),
            "containers": [container],
            "volumes": [monitor.prediction_volume(self.app)],
            # the log claim is shared with the loop's job: both write as the images' user
            "securityContext": {"fsGroup": monitor.RUN_AS},
        }
        if self.tls:
            container["volumeMounts"].append(
                {"name": "tls", "mountPath": kube.TLS_MOUNT, "readOnly": True}
            )
            pod["volumes"].append(
                {"name": "tls", "secret": {"secretName": kube.tls_secret_name(self.app)}}
            )
        container["env"] = [
            *env,
            *kube.secret_env(self.params["secrets"]),
            monitor.admin_token_env(self.app),
        ]
        resources = kube.container_resources(res)
        if resources:
            container["resources"] = resources
        selector = kube.node_selector(self.ir, res)
        if selector:
            pod["nodeSelector"] = selector
        return {"metadata": {"labels": kube.labels(self.app, alias)}, "spec": pod}

    def serve_args(self, alias: str) -> list[str]:
        """The canary strategy serves both tracks in the server; others pin one alias a pod."""
        in_server = self.params["strategy"]["kind"] == "canary"
        return monitor.serving_args(
            None if in_server else alias,
            self.port,
            self.tls,
            follow=in_server or alias == self.opts.stable_version,
            reload_s=self.opts.reload_interval_s,
        )

    def deployment(self, alias: str, replicas: int | None, recreate: bool) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "selector": {"matchLabels": {"app.kubernetes.io/name": self.app}},
            "template": self.pod_template(alias),
        }
        if replicas is not None:
            spec["replicas"] = replicas
        if recreate:
            spec["strategy"] = {"type": "Recreate"}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": kube.meta(self.app, self.ns, self.app, alias),
            "spec": spec,
        }

    def service(self, name: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": kube.meta(name, self.ns, self.app),
            "spec": {
                "selector": {"app.kubernetes.io/name": self.app},
                "ports": [
                    {
                        "name": "https" if self.tls else "http",
                        "port": 443 if self.tls else 80,
                        "targetPort": self.port,
                        "protocol": "TCP",
                    }
                ],
            },
        }

    def hpa(self, kind: str, api: str) -> dict[str, Any]:
        auto = self.params["autoscaling"]
        return {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": kube.meta(self.app, self.ns, self.app),
            "spec": {
                "scaleTargetRef": {"apiVersion": api, "kind": kind, "name": self.app},
                "minReplicas": max(1, int(auto["min_replicas"])),
                "maxReplicas": int(auto["max_replicas"]),
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {
                                "type": "Utilization",
                                "averageUtilization": int(auto["target_utilization"]),
                            },
                        },
                    }
                ],
            },
        }

    def analysis_query(self, metric: str) -> str:
        """PromQL for one rollback metric over the new pod template's pods; empty when they
        served nothing in the window (never NaN, which would fail a comparison)."""
        mc = metrics_contract
        if metric == "drift_score":
            # pushed by the loop's monitor pass (Pushgateway), per model and feature
            return f'max({mc.FEATURE_DRIFT_SCORE}{{{mc.LABEL_MODEL}="{self.model}"}})'
        sel = f'{{{mc.LABEL_MODEL}="{self.model}",pod=~"{self.app}-{{{{args.{HASH_ARG}}}}}-.*"}}'
        window = self.opts.analysis_window
        served = f"sum(rate({mc.REQUESTS_TOTAL}{sel}[{window}])) > 0"
        if metric == "error_rate":
            errors = f"sum(rate({mc.REQUEST_ERRORS_TOTAL}{sel}[{window}]))"
            return f"({errors} or vector(0)) / ({served})"
        quantile = {"latency_p99_ms": "0.99", "latency_p50_ms": "0.5"}[metric]
        buckets = f"sum by (le) (rate({mc.REQUEST_DURATION_BUCKET}{sel}[{window}]))"
        return f"histogram_quantile({quantile}, {buckets}) and on() ({served})"

    def analysis_template(self, rollback: list[dict[str, Any]]) -> dict[str, Any]:
        metrics = []
        for cond in rollback:
            metric = cond["metric"]
            threshold = float(cond["threshold"]) * metrics_contract.ROLLBACK_SCALE[metric]
            healthy = f"result[0] {_OPS[cond['op']]} {threshold:g}"
            metrics.append(
                {
                    "name": kube.dns_name(metric),
                    "interval": self.opts.analysis_interval,
                    "failureLimit": 0,
                    "inconclusiveLimit": self.opts.analysis_inconclusive_limit,
                    "successCondition": f"len(result) > 0 && {healthy}",
                    "failureCondition": f"len(result) > 0 && !({healthy})",
                    "provider": {
                        "prometheus": {
                            "address": self.opts.prometheus_url,
                            "query": self.analysis_query(metric),
                        }
                    },
                }
            )
        return {
            "apiVersion": ROLLOUTS_API,
            "kind": "AnalysisTemplate",
            "metadata": kube.meta(self.app, self.ns, self.app),
            "spec": {"args": [{"name": HASH_ARG}], "metrics": metrics},
        }

    def rollout(self, strategy: dict[str, Any]) -> dict[str, Any]:
        analysis = {
            "templates": [{"templateName": self.app}],
            "args": [{"name": HASH_ARG, "valueFrom": {"podTemplateHashValue": "Latest"}}],
        }
        rollback = bool(strategy["rollback"])
        bake = f"{int(strategy['bake_time'])}s"
        if strategy["kind"] == "canary":
            steps: list[dict[str, Any]] = []
            for pct in strategy["steps"]:
                steps.append({"setWeight": pct})
                if pct != 100:
                    steps.append({"pause": {"duration": bake}})
            canary: dict[str, Any] = {
                "canaryService": f"{self.app}-canary",
                "stableService": self.app,
                "steps": steps,
            }
            if rollback:
                canary["analysis"] = {**analysis, "startingStep": 1}
            plan: dict[str, Any] = {"canary": canary}
        else:
            blue_green: dict[str, Any] = {
                "activeService": self.app,
                "previewService": f"{self.app}-preview",
                "autoPromotionEnabled": strategy["switch"] == "auto",
            }
            if strategy["switch"] == "auto":
                blue_green["autoPromotionSeconds"] = int(strategy["bake_time"])
            if rollback:
                blue_green["prePromotionAnalysis"] = analysis
                blue_green["postPromotionAnalysis"] = analysis
            plan = {"blueGreen": blue_green}
        auto = self.params["autoscaling"]
        return {
            "apiVersion": ROLLOUTS_API,
            "kind": "Rollout",
            "metadata": kube.meta(self.app, self.ns, self.app),
            "spec": {
                "replicas": max(1, int(auto["min_replicas"])),
                "revisionHistoryLimit": 3,
                "selector": {"matchLabels": {"app.kubernetes.io/name": self.app}},
                "workloadRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": self.app,
                    "scaleDown": "onsuccess",
                },
                "strategy": plan,
            },
        }

    def files(self) -> dict[str, str | bytes]:
        strategy = self.params["strategy"]
        kind = strategy["kind"]
        out: dict[str, str | bytes] = {
            "common.yaml": kube.dump_docs(self.common([self.port])),
            "predictions.yaml": kube.dump_docs(
                [monitor.prediction_claim(self.app, self.ns, self.opts)]
            ),
        }
        if kind == "recreate":
            out["deployment.yaml"] = kube.dump_docs(
                [self.deployment(self.opts.stable_version, None, recreate=True)]
            )
            out["service.yaml"] = kube.dump_docs([self.service(self.app)])
            out["hpa.yaml"] = kube.dump_docs([self.hpa("Deployment", "apps/v1")])
            return out
        # The Rollout owns the replicas; the Deployment only carries the pod template.
        out["deployment.yaml"] = kube.dump_docs(
            [self.deployment(self.opts.candidate_version, 0, recreate=False)]
        )
        second = f"{self.app}-canary" if kind == "canary" else f"{self.app}-preview"
        out["service.yaml"] = kube.dump_docs([self.service(self.app), self.service(second)])
        out["hpa.yaml"] = kube.dump_docs([self.hpa("Rollout", ROLLOUTS_API)])
        docs = [self.rollout(strategy)]
        if strategy["rollback"]:
            docs.append(self.analysis_template(list(strategy["rollback"])))
        out["rollout.yaml"] = kube.dump_docs(docs)
        return out


class K8sTarget(ServingTarget):
    name = "k8s"
    description = "Kubernetes Deployment/Service/HPA with Argo Rollouts canary or blue-green."
    options_model = K8sTargetOptions
    capabilities = Capabilities(
        realises=frozenset({StepKind.DEPLOY, StepKind.BATCH_PREDICT}), supports=SUPPORTS
    )
    builder = _Builder

    def jobs(
        self, ir: IRGraph, opts: kube.K8sOptions, serving: Mapping[str, str | bytes]
    ) -> dict[str, str | bytes]:
        assert isinstance(opts, K8sTargetOptions)
        out: dict[str, str | bytes] = {}
        deploy = kube.deploy_step(ir)
        if deploy is not None:
            tls = bool(deploy.params["encryption"]["in_transit"])
            app = kube.dns_name(str(deploy.params["model_name"]))
            url = f"{'https' if tls else 'http'}://{app}.{opts.namespace}.svc.cluster.local"
            out.update(monitor.monitor_files(ir, opts, serve_url=url, with_account=False))
        batch = ir.first(StepKind.BATCH_PREDICT)
        if batch is not None:
            files = scheduled_files if scheduled(batch) else batch_files
            out.update(files(ir, batch, opts, with_account="common.yaml" not in serving))
        return out
