"""`--target terraform`: goldens for aws, gcp, azure; fmt-clean; parses as HCL; deterministic."""

from __future__ import annotations

from pathlib import Path

import hcl2
import pytest
from support.tools import REPO, require_tool

from mlc.compiler.api import check
from mlc.targets.base import EmitContext
from mlc.targets.terraform import TerraformTarget, names, tool

CREDIT = REPO / "examples" / "credit" / "mlc.yaml"
GOLDENS = REPO / "tests" / "goldens" / "terraform"

CASES = {
    "aws/kserve": [],
    "aws/sagemaker": ["deployment.platform=sagemaker"],
    "gcp/kserve": ["deployment.cloud=gcp", "deployment.region=europe-west1"],
    "gcp/vertex": [
        "deployment.cloud=gcp",
        "deployment.region=europe-west1",
        "deployment.platform=vertex",
    ],
    "azure/kserve": ["deployment.cloud=azure", "deployment.region=westeurope"],
    "azure/azureml": [
        "deployment.cloud=azure",
        "deployment.region=westeurope",
        "deployment.platform=azureml",
    ],
}


def emit(overrides: list[str], spec: Path = CREDIT) -> dict[str, str]:
    result = check(spec, overrides, ["terraform"])
    assert result.ok, [d.render() for d in result.diagnostics]
    files = TerraformTarget().emit(result.ir, EmitContext(options=result.options["terraform"]))
    return {k: str(v) for k, v in files.items()}


def _label(text: str) -> str:
    return text.strip('"')  # python-hcl2 8 keeps the quotes of block labels


def resources(parsed: dict) -> dict[tuple[str, str], dict]:
    """`resource "kind" "name" {...}` blocks of a parsed file, by (kind, name)."""
    return {
        (_label(kind), _label(name)): body
        for block in parsed.get("resource", [])
        for kind, named in block.items()
        for name, body in named.items()
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_goldens(case: str, request: pytest.FixtureRequest) -> None:
    files = emit(CASES[case])
    folder = GOLDENS / case
    if request.config.getoption("--update-goldens", default=False):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.tf"):
            old.unlink()
        for rel, text in files.items():
            (folder / rel).write_text(text)
    expected = {p.name: p.read_text() for p in sorted(folder.glob("*.tf"))}
    assert sorted(files) == sorted(expected), f"regenerate with pytest --update-goldens ({case})"
    for rel, text in files.items():
        assert text == expected[rel], f"{case}/{rel} differs from its golden"


@pytest.mark.parametrize("case", sorted(CASES))
def test_parses_as_hcl_with_expected_blocks(case: str) -> None:
    files = emit(CASES[case])
    cloud, platform = case.split("/")
    parsed = {rel: hcl2.loads(text) for rel, text in files.items()}
    outputs = {_label(next(iter(o))) for o in parsed["outputs.tf"]["output"]}
    assert {
        names.DATA_BUCKET_OUTPUT,
        names.ARTIFACTS_BUCKET_OUTPUT,
        names.STORAGE_KEY_OUTPUT,
    } <= outputs
    assert {names.identity_output(r) for r in names.ROLES} <= outputs
    assert (names.ENDPOINT_OUTPUT in outputs) == (platform != "kserve")
    kinds = {kind for kind, _ in resources(parsed["storage.tf"])}
    budget_keys = list(resources(parsed["budgets.tf"]))
    # Four caps in the credit spec: total, serving, training, tuning.
    assert sorted(n for _, n in budget_keys) == ["serving", "total", "training", "tuning"]
    budgets = {kind for kind, _ in budget_keys}
    if cloud == "aws":
        assert "aws_kms_key" in kinds
        assert "aws_s3_bucket_public_access_block" in kinds
        assert budgets == {"aws_budgets_budget"}
    elif cloud == "gcp":
        assert "google_kms_crypto_key" in kinds
        assert budgets == {"google_billing_budget"}
    else:
        assert "azurerm_key_vault_key" in kinds
        assert budgets == {"azurerm_consumption_budget_resource_group"}


def test_storage_follows_retention_and_blocks_public_access() -> None:
    by_name = resources(hcl2.loads(emit([])["storage.tf"]))
    block = by_name[("aws_s3_bucket_public_access_block", "data")]
    assert all(
        block[k] is True
        for k in (
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        )
    )
    lifecycle = by_name[("aws_s3_bucket_lifecycle_configuration", "data")]["rule"][0]
    assert lifecycle["expiration"][0]["days"] == 365  # governance.retention.data: 365d
    rules = by_name[("aws_s3_bucket_lifecycle_configuration", "artifacts")]["rule"]
    assert [r["expiration"][0]["days"] for r in rules] == [730, 90]  # models, logs
    sse = by_name[("aws_s3_bucket_server_side_encryption_configuration", "data")]
    default = sse["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert _label(default["sse_algorithm"]) == "aws:kms"
    policy = by_name[("aws_s3_bucket_policy", "data")]["policy"]
    assert "aws:SecureTransport" in policy


def test_sagemaker_weights_express_canary_first_step() -> None:
    endpoint = hcl2.loads(emit(["deployment.platform=sagemaker"])["endpoint.tf"])
    config = resources(endpoint)[("aws_sagemaker_endpoint_configuration", "main")]
    variants = config["production_variants"]
    # The credit canary's steps are [10, 50, 100]: the first step sends 10 % to the canary.
    assert {v["variant_name"]: v["initial_variant_weight"] for v in variants} == {
        '"stable"': 90,
        '"canary"': 10,
    }


def test_deterministic() -> None:
    assert emit(CASES["gcp/vertex"]) == emit(CASES["gcp/vertex"])


@pytest.mark.parametrize("case", sorted(CASES))
def test_terraform_fmt_leaves_output_unchanged(case: str, tmp_path: Path) -> None:
    require_tool("terraform")
    for rel, text in emit(CASES[case]).items():
        (tmp_path / rel).write_text(text)
    code, out, err = tool.run(tmp_path, "fmt", "-check", "-diff", "-no-color", ".")
    assert code == 0, f"terraform fmt would change {case}:\n{out}{err}"
