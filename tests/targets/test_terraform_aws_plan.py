"""aws output is accepted by Terraform itself: init from the offline mirror, validate, plan."""

from __future__ import annotations

from pathlib import Path

import pytest
from python_terraform import IsFlagged
from support.tools import REPO, missing, require_tool

from mlc.compiler.api import check
from mlc.targets.base import EmitContext
from mlc.targets.terraform import TerraformTarget, tool

CREDIT = REPO / "examples" / "credit" / "mlc.yaml"

# Fake credentials and the provider's skip settings: plan runs with no account and no network.
PROVIDER_OVERRIDE = """provider "aws" {
  access_key                  = "mlc-test"
  secret_key                  = "mlc-test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
}
"""
VARS = {
    "environment": "test",
    "oidc_provider_arn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.test/id/MLC",
    "oidc_provider": "oidc.eks.test/id/MLC",
    "serving_image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/serve:1",
}


def _mirror() -> Path:
    mirror = tool.find_mirror()
    if mirror is None:
        missing("an offline terraform provider mirror with hashicorp/aws (MLC_TF_PLUGIN_MIRROR)")
    assert mirror is not None
    return mirror


@pytest.mark.parametrize(
    "overrides", [[], ["deployment.platform=sagemaker"]], ids=["kserve", "sagemaker"]
)
def test_init_validate_plan(overrides: list[str], tmp_path: Path) -> None:
    require_tool("terraform")
    cli_config = tool.write_cli_config(tmp_path / "terraformrc", _mirror())
    work = tmp_path / "tf"
    work.mkdir()
    result = check(CREDIT, overrides, ["terraform"])
    assert result.ok
    files = TerraformTarget().emit(result.ir, EmitContext(options=result.options["terraform"]))
    for rel, text in files.items():
        (work / rel).write_text(str(text))
    (work / "provider_override.tf").write_text(PROVIDER_OVERRIDE)

    code, out, err = tool.run(
        work, "init", cli_config=cli_config, input=False, no_color=IsFlagged, backend=False
    )
    assert code == 0, out + err
    code, out, err = tool.run(work, "validate", cli_config=cli_config, no_color=IsFlagged)
    assert code == 0, out + err
    assert "The configuration is valid" in out
    variables = VARS if overrides else {k: v for k, v in VARS.items() if k != "serving_image"}
    code, out, err = tool.run(
        work,
        "plan",
        cli_config=cli_config,
        refresh="false",
        input=False,
        lock=False,
        no_color=IsFlagged,
        detailed_exitcode=IsFlagged,
        var=variables,
    )
    # -detailed-exitcode: 2 means a valid plan with changes (everything is to be created).
    assert code == 2, out + err
    assert "0 to change, 0 to destroy" in out
    assert 'data_bucket         = "credit-risk-test-data"' in out
    if overrides:
        assert "aws_sagemaker_endpoint.main will be created" in out
