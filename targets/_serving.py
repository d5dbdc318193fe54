"""The base of the Kubernetes serving targets (`kserve`, `k8s`): one check, one emit, one set-up.

Both targets realise the online deployment step and nothing else, refuse a spec without one
(`MLC711`), check the GPU type against the spec's cloud, and build their manifests from the
same view of the deploy step: model name, DNS-safe app name, namespace, TLS in transit, and the
`common.yaml` objects (ServiceAccount, NetworkPolicy, deployer RBAC, PodDisruptionBudget). A
target subclass names its options model and its builder; a builder subclass adds the objects
that differ (InferenceServices and Istio routing, or Deployments and Argo Rollouts).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from mlc.compiler.diagnostics import Diagnostic
from mlc.compiler.ir import IRGraph, Step, StepKind
from mlc.targets import _k8s_common as kube
from mlc.targets._image import image_extras, runtime_dockerfile
from mlc.targets.base import COMPILER_VERSION, EmitContext, Target


class ServingBuilder(ABC):
    """The files of one serving target for one deploy step; subclasses implement `files`."""

    deployer_resources: ClassVar[tuple[tuple[str, str], ...]] = ()
    """(apiGroup, plural) of the objects a deployer role may change for this target."""

    def __init__(self, ir: IRGraph, step: Step, opts: kube.K8sOptions) -> None:
        self.ir, self.step, self.opts = ir, step, opts
        self.params: Mapping[str, Any] = step.params
        self.model = str(self.params["model_name"])
        self.app = kube.dns_name(self.model)
        self.ns = opts.namespace
        self.tls = bool(self.params["encryption"]["in_transit"])

    def common(self, ports: Sequence[int]) -> list[dict[str, Any]]:
        """ServiceAccount, NetworkPolicy (open on `ports`), deployer RBAC, PodDisruptionBudget."""
        return [
            kube.service_account(self.ir, self.model, self.ns, self.app),
            kube.network_policy(self.params["network"], self.ns, self.app, list(ports)),
            *kube.deployer_rbac(
                self.params["access"], self.ns, self.app, list(self.deployer_resources)
            ),
            kube.pod_disruption_budget(
                self.ns, self.app, int(self.params["autoscaling"]["min_replicas"])
            ),
        ]

    @abstractmethod
    def files(self) -> dict[str, str | bytes]:
        """Relative path -> manifest text."""


class ServingTarget(Target):
    """A target that serves the online deployment on Kubernetes through a `ServingBuilder`."""

    builder: ClassVar[type[ServingBuilder]]
    """Builds the files from the IR, the deploy step and the validated options."""

    def jobs(
        self, ir: IRGraph, opts: kube.K8sOptions, serving: Mapping[str, str | bytes]
    ) -> dict[str, str | bytes]:
        """Files for the other steps the target realises beside the endpoint (a batch job);
        `serving` is what the builder wrote. None by default."""
        return {}

    def _steps(self, ir: IRGraph) -> list[Step]:
        return [s for s in ir.steps if s.kind in self.capabilities.realises]

    def check(self, ir: IRGraph, ctx: EmitContext) -> list[Diagnostic]:
        steps = self._steps(ir)
        if not steps:
            return [
                Diagnostic(
                    "MLC711",
                    f"the {self.name} target serves online deployments, and this spec has none",
                    hint="set 'deployment.mode: online'",
                    path="deployment",
                )
            ]
        return [d for step in steps for d in kube.check_gpu(ir, step)]

    def emit(self, ir: IRGraph, ctx: EmitContext) -> Mapping[str, str | bytes]:
        opts = ctx.options
        if not isinstance(opts, self.options_model) or not isinstance(opts, kube.K8sOptions):
            raise TypeError(
                f"the {self.name} target needs {self.options_model.__name__}, "
                f"not {type(opts).__name__}"
            )
        step = kube.deploy_step(ir)
        files = self.builder(ir, step, opts).files() if step is not None else {}
        jobs = self.jobs(ir, opts, files)
        files.update(jobs)
        if jobs:
            # batch scoring and the loop's retrains run in the runtime image, not the server's
            batch = ir.first(StepKind.BATCH_PREDICT) is not None
            image = str(getattr(opts, "batch_image" if batch else "runtime_image", ""))
            where = str(getattr(opts, "project_dir", kube.PROJECT_DIR))
            files["runtime.Dockerfile"] = runtime_dockerfile(ir, image, where)
        if files:
            extras = image_extras(ir, ("ml", "serve"), training=False)
            files["Dockerfile"] = kube.serving_dockerfile(ir.name, COMPILER_VERSION, extras)
        return files
