"""Render the Terraform target: IR -> template context -> HCL files laid out as `terraform fmt`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlc.compiler.diagnostics import Diagnostic, has_errors
from mlc.compiler.ir import IRGraph, StepKind
from mlc.targets.base import EmitError
from mlc.targets.terraform import access, facts, names
from mlc.targets.terraform.hcl import format_hcl, hcl_value, quote

if TYPE_CHECKING:
    from mlc.targets.terraform import TerraformOptions

TEMPLATES = Path(__file__).parent / "templates"

PROVIDERS: dict[str, dict[str, dict[str, str]]] = {
    "aws": {"aws": {"source": "hashicorp/aws", "version": "5.100.0"}},
    "gcp": {"google": {"source": "hashicorp/google", "version": "6.13.0"}},
    "azure": {
        "azurerm": {"source": "hashicorp/azurerm", "version": "4.14.0"},
        "azapi": {"source": "azure/azapi", "version": "2.1.0"},
    },
}
"""Pinned provider versions per cloud (aws matches the offline mirror CI installs from)."""

FILES = ("versions", "variables", "storage", "identities", "budgets", "endpoint", "outputs")


def problems(ir: IRGraph) -> list[Diagnostic]:
    """Every reason the IR cannot become Terraform, each with its spec key path."""
    found = facts.placement_problems(ir)
    if has_errors(found) and any(d.code == "MLC430" for d in found):
        return found
    found += facts.strategy_problems(ir)
    cloud = str(ir.settings["deployment"]["cloud"])
    step = facts.step_of(ir, StepKind.IDENTITY)
    found += access.access_bindings(cloud, list(step.params.get("access", [])) if step else [])[1]
    budgets = facts.budgets(ir)
    if cloud == "azure" and budgets and len(budgets[0]["thresholds"]) > 5:
        found.append(
            Diagnostic(
                "MLC435",
                "azure budgets carry at most 5 alert thresholds, not "
                f"{len(budgets[0]['thresholds'])}",
                hint="keep 5 thresholds",
                path="budgets.alert_thresholds",
            )
        )
    return found


def context(ir: IRGraph, options: TerraformOptions) -> dict[str, Any]:
    """Everything the templates of the IR's cloud need, as plain data."""
    cloud = str(ir.settings["deployment"]["cloud"])
    storage = facts.storage(ir)
    endpoint = facts.endpoint(ir)
    ident = facts.step_of(ir, StepKind.IDENTITY)
    bindings, _ = access.access_bindings(
        cloud, list(ident.params.get("access", [])) if ident else []
    )
    roles = []
    for role in names.ROLES:
        entry: dict[str, Any] = {
            "role": role,
            "output": names.identity_output(role),
            "service_account": names.service_account_name(ir.name, role),
        }
        if cloud == "aws":
            entry["statements"] = access.aws_role_statements(role, storage["cmk"], ir.name)
            entry["sagemaker"] = endpoint is not None and role in ("serving", "training")
        elif cloud == "gcp":
            entry["grants"] = access.GCP_ROLE_GRANTS[role]
        else:
            entry["grants"] = access.AZURE_ROLE_GRANTS[role]
        roles.append(entry)
    for binding in bindings:
        if cloud == "aws":
            binding["statements"] = [
                {**s, "Sid": f"{p.title().replace('_', '')}{s['Sid']}"}
                for p in binding["permissions"]
                for s in access.aws_permission_statements(p, storage["cmk"], endpoint is not None)
            ]
        else:
            table = (
                access.GCP_PERMISSION_GRANTS if cloud == "gcp" else access.AZURE_PERMISSION_GRANTS
            )
            binding["grants"] = sorted({g for p in binding["permissions"] for g in table[p]})
    tags = {"mlc-model": ir.name, **dict(ir.metadata.get("tags") or {}), **options.extra_tags}
    owners = [o for o in ir.metadata.get("owners") or [] if "@" in o]
    return {
        "name": ir.name,
        "cloud": cloud,
        "region": ir.settings["deployment"]["region"],
        "providers": PROVIDERS[cloud],
        "tags": dict(sorted(tags.items())),
        "namespace": options.namespace or ir.name,
        "alert_emails": list(options.alert_emails) or owners,
        "storage": storage,
        "roles": roles,
        "access": bindings,
        "budgets": facts.budgets(ir),
        "endpoint": endpoint,
        "names": names,
    }


def render(ir: IRGraph, options: TerraformOptions) -> dict[str, str]:
    """The Terraform files for the IR's cloud: `<file>.tf` -> HCL text.

    Raises:
        EmitError: when `problems` finds anything (check() reports the same before emit).
    """
    found = problems(ir)
    if has_errors(found):
        raise EmitError(found)
    import jinja2

    ctx = context(ir, options)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES / ctx["cloud"])),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["hcl"] = hcl_value
    env.filters["q"] = quote
    out: dict[str, str] = {}
    for stem in FILES:
        text = env.get_template(f"{stem}.tf.j2").render(**ctx)
        if text.strip():
            out[f"{stem}.tf"] = format_hcl(text)
    return out
