"""Checks before emitting: what kfp or Kubernetes would reject, reported at the spec key.

The spec language already refuses most bad values; these checks hold IR from any source (a
plugin, an IR file) to what a KFP cluster accepts, so nothing fails later inside kfp.
"""

from __future__ import annotations

import re

from mlc.compiler.diagnostics import Diagnostic, Severity
from mlc.compiler.ir import IRGraph, Step
from mlc.targets.kfp import KfpOptions

# The grammar of github.com/distribution/reference, which container runtimes apply.
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)"  # noqa: E501
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
# kfp's own rules (kfp.dsl.PipelineTask._validate_cpu/_memory_request_limit).
_CPU = re.compile(r"^([0-9]*[.])?[0-9]+m?$")
_MEMORY = re.compile(r"^[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


def is_image_reference(value: str) -> bool:
    """Whether `value` is a valid OCI image reference.

    >>> is_image_reference("ghcr.io/acme/mlc-runtime:1.2")
    True
    >>> is_image_reference("Not An Image")
    False
    """
    return len(value) <= 255 and bool(_REFERENCE.match(value))


def _option(code: str, message: str, key: str, hint: str) -> Diagnostic:
    return Diagnostic(code, message, hint=hint, path=f"targets.kfp.{key}")


def check_options(options: KfpOptions) -> list[Diagnostic]:
    out = []
    if not is_image_reference(options.image):
        out.append(
            _option(
                "MLC440",
                f"'{options.image}' is not a valid image reference",
                "image",
                "write e.g. 'ghcr.io/acme/mlc-runtime:0.1.0' (lower-case "
                "repository, optional tag and @sha256 digest)",
            )
        )
    for key in ("gpu_node_selector_key", "gpu_toleration_key"):
        value = getattr(options, key)
        if not _LABEL_KEY.match(value):
            out.append(
                _option(
                    "MLC440",
                    f"'{value}' is not a valid Kubernetes label key",
                    key,
                    "write e.g. 'nvidia.com/gpu.product'",
                )
            )
    if options.gpu_resource.count("/") != 1 or not _LABEL_KEY.match(options.gpu_resource):
        out.append(
            _option(
                "MLC440",
                f"'{options.gpu_resource}' is not an extended resource name",
                "gpu_resource",
                "write e.g. 'nvidia.com/gpu'",
            )
        )
    return out


def _resources_origin(step: Step) -> str:
    # Training-like steps take resources from `training.resources`, operations steps from
    # their own section; the origin of the step names that section.
    if step.origin in ("training", "tuning"):
        return "training.resources"
    return f"{step.origin}.resources"


def check_step(step: Step) -> list[Diagnostic]:
    out = []
    res = step.resources
    where = _resources_origin(step)
    if res.cpu is not None and not _CPU.match(res.cpu):
        out.append(
            Diagnostic(
                "MLC441",
                f"CPU '{res.cpu}' of step '{step.id}' is not a quantity kfp accepts",
                hint="write cores (2, 0.5) or millicores ('500m')",
                path=f"{where}.cpu",
            )
        )
    if res.memory is not None and not _MEMORY.match(res.memory):
        out.append(
            Diagnostic(
                "MLC441",
                f"memory '{res.memory}' of step '{step.id}' is not a quantity kfp accepts",
                hint="write a whole number with a unit, "
                "e.g. '512Mi' or '4Gi' (kfp takes no decimals)",
                path=f"{where}.memory",
            )
        )
    if res.gpu_type is not None and res.gpu_count < 1:
        out.append(
            Diagnostic(
                "MLC442",
                f"step '{step.id}' names GPU type '{res.gpu_type}' but no GPU count",
                hint="set resources.gpu.count (1 or more)",
                path=f"{where}.gpu",
            )
        )
    if res.gpu_count < 0:
        out.append(
            Diagnostic(
                "MLC442",
                f"step '{step.id}' asks for {res.gpu_count} GPUs",
                hint="set a count of 1 or more",
                path=f"{where}.gpu.count",
            )
        )
    return out


def check_ir(ir: IRGraph, options: KfpOptions) -> list[Diagnostic]:
    """Every problem kfp would raise later, as diagnostics located by spec key path."""
    from mlc.targets.kfp import trainjob
    from mlc.targets.kfp.pipeline import overrides, pipeline_steps

    out = check_options(options) + trainjob.check(ir)
    steps = pipeline_steps(ir)
    for dotted in overrides(ir, steps)[1]:
        out.append(
            Diagnostic(
                "MLC444",
                f"overridable '{dotted}' reaches no step the kfp pipeline runs, so it is "
                "not a pipeline parameter",
                hint=f"override it at compile time instead (mlc compile … {dotted}=VALUE)",
                severity=Severity.WARNING,
                path="overridable",
            )
        )
    conditional = {s.id for s in steps if s.when}
    for step in steps:
        out.extend(check_step(step))
        if not step.when:
            for producer in ir.upstream(step.id):
                if producer.id in conditional:
                    out.append(
                        Diagnostic(
                            "MLC443",
                            f"step '{step.id}' runs on every branch but reads "
                            f"'{producer.id}', which runs only when '{producer.when}'",
                            hint=f"make '{step.id}' conditional too",
                            path=step.origin,
                        )
                    )
        if step.when and step.when.split(".")[0] not in {s.id for s in steps}:
            out.append(
                Diagnostic(
                    "MLC443",
                    f"step '{step.id}' is conditional on "
                    f"'{step.when}', which no pipeline step produces",
                    path=step.origin,
                )
            )
    return out
