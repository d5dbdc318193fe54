"""`--target terraform`: cloud infrastructure for the operations graph, as HCL for aws, gcp, azure.

Realises the `storage`, `identity` and `budget` steps (and, when the deployment platform is a
managed endpoint — SageMaker, Vertex AI, Azure ML — the endpoint and its traffic split, emitted
beside them). Cheap to import: jinja2 and the templates load only when emitting.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from mlc.compiler.diagnostics import Diagnostic
from mlc.compiler.ir import IRGraph, StepKind
from mlc.targets.base import Capabilities, EmitContext, Target, TargetOptions


class TerraformOptions(TargetOptions):
    """Options under `targets.terraform`."""

    namespace: str | None = Field(None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    """Kubernetes namespace whose ServiceAccounts assume the identities (default: model name)."""
    alert_emails: tuple[str, ...] = ()
    """Who receives budget alerts (default: the spec's owners)."""
    extra_tags: dict[str, str] = Field(default_factory=dict)
    """Tags (labels on gcp) added to every resource beside `mlc-model`."""


class TerraformTarget(Target):
    name = "terraform"
    description = "Terraform (HCL) for storage, identities, budgets and managed endpoints."
    options_model = TerraformOptions
    capabilities = Capabilities(
        realises=frozenset({StepKind.STORAGE, StepKind.IDENTITY, StepKind.BUDGET}),
        supports=frozenset({"encryption.at_rest", "access.roles", "budgets"}),
    )

    def check(self, ir: IRGraph, ctx: EmitContext) -> list[Diagnostic]:
        """Region, GPU type and managed-endpoint strategy must exist on the chosen cloud."""
        from mlc.targets.terraform.render import problems

        return problems(ir)

    def emit(self, ir: IRGraph, ctx: EmitContext) -> Mapping[str, str | bytes]:
        from mlc.targets.terraform.render import render

        options = ctx.options
        assert isinstance(options, TerraformOptions)
        return render(ir, options)


__all__ = ["TerraformOptions", "TerraformTarget"]
