"""`--target local`: the pipeline run on this machine, in-process, by `mlc run`.

`emit` writes the pipeline (`pipeline.json`: the steps in execution order with their inputs,
outputs, conditions and cache settings); `mlc run` executes the same steps through
`mlc.targets.local.executor`. Cheap to import: the executor and the runtime load only when a
run starts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from mlc.compiler.diagnostics import Diagnostic, Severity
from mlc.compiler.ir import EXECUTED_KINDS, IRGraph, StepKind
from mlc.runtime.capabilities import RUNTIME_FEATURES
from mlc.targets.base import Capabilities, EmitContext, Target, TargetOptions, quantities

PIPELINE_VERSION = "1"

_SUPPORTS = RUNTIME_FEATURES | frozenset(
    {
        "resources.cpu",
        "resources.memory",
        "retries",
        "max_time",
        "tuning.parallel",
        "tuning.shared_storage",
    }
)
"""What the runtime does on this machine. Not here: GPUs (`resources.gpu`), several nodes
(`resources.nodes`) and distributed strategies — a laptop run cannot promise them."""


class LocalOptions(TargetOptions):
    """Options under `targets.local` in a spec."""

    state_dir: str = ".mlc"
    """Folder (relative to the spec) for the cache, runs, MLflow store, audit and lineage."""
    tracking_uri: str | None = None
    """MLflow tracking URI; default a sqlite store in `state_dir`."""


def _memory_bytes(text: str) -> int | None:
    try:
        return quantities.memory_bytes(text)
    except quantities.QuantityError:
        return None


def _cpu_count(text: str) -> float | None:
    try:
        return quantities.cpu_cores(text)
    except quantities.QuantityError:
        return None


def pipeline_steps(ir: IRGraph) -> dict[str, Any]:
    """The pipeline steps in execution order, as `mlc run` will execute them."""
    steps = []
    for step in ir.steps:
        if step.kind not in EXECUTED_KINDS:
            continue
        steps.append(
            {
                "id": step.id,
                "kind": step.kind.value,
                "inputs": dict(sorted(step.inputs.items())),
                "outputs": dict(sorted(step.outputs.items())),
                "after": sorted(s.id for s in ir.upstream(step.id)),
                "when": step.when,
                "cache": step.cache,
                "retries": step.retries,
                "timeout_s": step.timeout_s,
            }
        )
    return {
        "pipeline_version": PIPELINE_VERSION,
        "name": ir.name,
        "spec_hash": ir.metadata.get("spec_hash"),
        "steps": steps,
    }


class LocalTarget(Target):
    name = "local"
    description = "Runs the pipeline on this machine (mlc run): cached, resumable, audited."
    options_model = LocalOptions
    # The feedback loop runs under `mlc monitor`, the monitor logic reached through the retrain
    # trigger; `monitor` itself stays with the monitoring target: latency SLOs need a server.
    capabilities = Capabilities(
        realises=EXECUTED_KINDS | {StepKind.RETRAIN_TRIGGER},
        supports=_SUPPORTS
        | {
            "drift.psi",
            "drift.ks",
            "drift.chi2",
            "drift.wasserstein",
            "drift.jensen_shannon",
            "performance.delayed_labels",
            "trigger.drift",
            "trigger.performance_drop",
            "trigger.schedule",
            "trigger.data_volume",
            "active_learning",
        },
    )

    def check(self, ir: IRGraph, ctx: EmitContext) -> list[Diagnostic]:
        """Resource requests are minimums: say so when this machine is smaller."""
        diags = []
        cpus = os.cpu_count() or 1
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            memory = None
        for step in ir.steps:
            if step.kind not in EXECUTED_KINDS or step.kind is StepKind.TUNE:
                continue
            res = step.resources
            want_cpu = _cpu_count(res.cpu) if res.cpu else None
            if want_cpu is not None and want_cpu > cpus:
                diags.append(
                    Diagnostic(
                        "MLC450",
                        f"step '{step.id}' asks for {res.cpu} CPUs; this machine has {cpus}",
                        hint="it runs slower here; lower the request for local runs in an overlay",
                        severity=Severity.WARNING,
                        path=f"{step.origin}.resources.cpu",
                    )
                )
            want_mem = _memory_bytes(res.memory) if res.memory else None
            if want_mem is not None and memory is not None and want_mem > memory:
                diags.append(
                    Diagnostic(
                        "MLC450",
                        f"step '{step.id}' asks for {res.memory} of memory; this machine "
                        f"has {memory / 2**30:.1f}Gi",
                        hint="lower the request in an overlay",
                        severity=Severity.WARNING,
                        path=f"{step.origin}.resources.memory",
                    )
                )
        return diags

    def emit(self, ir: IRGraph, ctx: EmitContext) -> Mapping[str, str | bytes]:
        pipeline = pipeline_steps(ir)
        return {"pipeline.json": json.dumps(pipeline, indent=2, sort_keys=True) + "\n"}


__all__ = ["LocalOptions", "LocalTarget", "pipeline_steps"]
