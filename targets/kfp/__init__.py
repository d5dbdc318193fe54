"""`--target kfp`: a Kubeflow Pipelines v2 package built from the IR.

Cheap to import: the options model is loaded while a spec is validated, so nothing here imports
kfp; the emitter modules build the `PipelineSpec` as plain data and import kfp only to check it.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from mlc.compiler.diagnostics import Diagnostic
from mlc.compiler.ir import IRGraph
from mlc.compiler.ir.model import EXECUTED_KINDS
from mlc.runtime.capabilities import RUNTIME_FEATURES
from mlc.targets.base import Capabilities, EmitContext, Target, TargetOptions

# What the kfp target honours. Data formats, transforms, frameworks and the like are carried out
# by the runtime inside the component, exactly as under `mlc run`, so the kfp target supports
# what the runtime supports; the settings below that need the orchestrator (resources, retries,
# timeouts, parallel tuning) are realised in the pipeline or its Kubernetes platform config.
_SUPPORTS = RUNTIME_FEATURES | frozenset(
    {
        "resources.cpu",
        "resources.memory",
        "resources.gpu",
        "retries",
        "max_time",
        "tuning.parallel",
        "tuning.shared_storage",
        # a Kubeflow Trainer TrainJob (`mlc.targets.kfp.trainjob`; Lightning DDP only)
        "resources.nodes",
    }
)
"""Not supported, on purpose: `distributed.fsdp` / `distributed.deepspeed` (Lightning
starts their ranks by re-running the component's command, and every rank would then write the
step's outputs; DDP, in `RUNTIME_FEATURES`, runs in spawned workers instead)."""


class KfpOptions(TargetOptions):
    """Options under `targets: {kfp: {...}}`."""

    image: str = "ghcr.io/mlc-project/mlc-runtime:0.1.0"
    """Runtime image every component runs in (an OCI reference; the package's `Dockerfile`
    builds it)."""
    namespace: str = "kubeflow"
    """Namespace runs and recurring runs are submitted to."""
    service_account: str = ""
    """Kubernetes service account the runs use (empty: the namespace's default)."""
    experiment: str = ""
    """Experiment runs are filed under (empty: the pipeline's name)."""
    caching: bool = True
    """Default for steps that allow caching; steps the spec marks uncached are never cached."""
    project_dir: str = "/project"
    """Default of the `project_dir` pipeline parameter: where the spec's project lives in the
    image (relative data paths in the spec resolve against it)."""
    gpu_resource: str = "nvidia.com/gpu"
    """Extended resource name requested for GPUs."""
    gpu_node_selector_key: str = "nvidia.com/gpu.product"
    """Node label that a GPU step's accelerator type (`resources.gpu.type`) selects on."""
    gpu_toleration_key: str = "nvidia.com/gpu"
    """Taint key that GPU nodes carry; GPU steps tolerate it (`Exists`, `NoSchedule`)."""
    install_kfp_package: bool = False
    """Install kfp at component start (needs network); the runtime image already has it."""
    filename: str = Field("pipeline.yaml", pattern=r"^[A-Za-z0-9._-]+\.ya?ml$")
    """Name of the emitted pipeline package."""
    trainjob_runtime: str = Field("torch-distributed", pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    """ClusterTrainingRuntime that multi-node training (`resources.nodes > 1`) runs on."""
    shared_volume: str = Field("mlc-shared", pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    """ReadWriteMany PersistentVolumeClaim through which a multi-node train step's launcher
    and its TrainJob's nodes pass artifacts (mounted at /mlc-shared)."""
    pushgateway_url: str = ""
    """Prometheus Pushgateway the monitor pipeline pushes its gauges to (empty: none); see
    `mlc.targets.kfp.monitor`."""


class KfpTarget(Target):
    name = "kfp"
    description = "A Kubeflow Pipelines v2 package (IR YAML) plus its recurring-run definition."
    options_model = KfpOptions
    capabilities = Capabilities(realises=EXECUTED_KINDS, supports=_SUPPORTS)

    def check(self, ir: IRGraph, ctx: EmitContext) -> list[Diagnostic]:
        from mlc.targets.kfp.checks import check_ir

        options = ctx.options
        assert isinstance(options, KfpOptions)
        return check_ir(ir, options)

    def emit(self, ir: IRGraph, ctx: EmitContext) -> Mapping[str, str | bytes]:
        from mlc.targets.kfp.package import emit_package

        options = ctx.options
        assert isinstance(options, KfpOptions)
        return emit_package(ir, options)


__all__ = ["KfpOptions", "KfpTarget"]
