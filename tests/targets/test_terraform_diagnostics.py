"""Bad input for `--target terraform`: located diagnostics before any file is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.tools import REPO

from mlc.compiler.api import compile_spec
from mlc.compiler.diagnostics import DiagnosticError
from mlc.targets import _cloud
from mlc.targets.terraform import hcl, names

CREDIT_DIR = REPO / "examples" / "credit"


def _errors(spec: Path, overrides: list[str], out: Path) -> list:
    with pytest.raises(DiagnosticError) as info:
        compile_spec(spec, ["terraform"], out, overrides)
    assert not out.exists(), "nothing may be written when the spec has errors"
    return [d for d in info.value.diagnostics if d.code.startswith("MLC43")]


def _spec_with(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "credit"
    shutil.copytree(CREDIT_DIR, folder)
    spec = folder / "mlc.yaml"
    text = spec.read_text()
    assert old in text
    spec.write_text(text.replace(old, new))
    return spec


def test_unknown_region_is_located(tmp_path: Path) -> None:
    spec = _spec_with(tmp_path, "region: eu-west-1", "region: europe-west1")
    [diag] = _errors(spec, [], tmp_path / "out")
    assert diag.code == "MLC431" and diag.path == "deployment.region"
    assert diag.location is not None and diag.location.file.endswith("mlc.yaml")
    assert "does not exist on aws" in diag.message


def test_gpu_type_the_cloud_does_not_offer(tmp_path: Path) -> None:
    spec = _spec_with(
        tmp_path,
        "resources: {cpu: '1', memory: 2Gi}",
        "resources: {cpu: '1', memory: 2Gi, gpu: {count: 1, type: nvidia-l4}}",
    )
    diags = _errors(
        spec, ["deployment.cloud=azure", "deployment.region=westeurope"], tmp_path / "out"
    )
    [diag] = [d for d in diags if d.code == "MLC432"]
    assert diag.path == "deployment.resources.gpu.type"
    assert diag.location is not None and diag.location.line > 1
    assert "not offered by azure" in diag.message


def test_shadow_on_vertex_cannot_be_expressed(tmp_path: Path) -> None:
    old = """  strategy:
    kind: canary
    steps: [10, 50, 100]
    bake_time: 10m
    rollback:
      - {metric: error_rate, op: '>', threshold: 0.02}
      - {metric: latency_p99_ms, op: '>', threshold: 250}"""
    spec = _spec_with(tmp_path, old, "  strategy: {kind: shadow, mirror_percent: 20}")
    diags = _errors(
        spec,
        ["deployment.cloud=gcp", "deployment.region=europe-west1", "deployment.platform=vertex"],
        tmp_path / "out",
    )
    [diag] = diags
    assert diag.code == "MLC433" and diag.path == "deployment.strategy.kind"
    assert diag.location is not None


def test_azureml_mirrors_at_most_half(tmp_path: Path) -> None:
    old = "    kind: canary\n    steps: [10, 50, 100]\n    bake_time: 10m\n"
    spec = _spec_with(tmp_path, old, "    kind: shadow\n    mirror_percent: 80\n")
    text = spec.read_text()
    start = text.index("    rollback:")
    end = text.index("  autoscaling:")
    spec.write_text(text[:start] + text[end:])
    diags = _errors(
        spec,
        ["deployment.cloud=azure", "deployment.region=westeurope", "deployment.platform=azureml"],
        tmp_path / "out",
    )
    assert [(d.code, d.path) for d in diags] == [("MLC433", "deployment.strategy.mirror_percent")]


def test_bad_access_member(tmp_path: Path) -> None:
    spec = _spec_with(tmp_path, "members: [group:risk-ds]", "members: [risk-ds]")
    [diag] = _errors(spec, [], tmp_path / "out")
    assert diag.code == "MLC434" and diag.path == "security.access[0].members[0]"


def test_cloud_facts() -> None:
    assert _cloud.is_region("aws", "eu-west-1") and not _cloud.is_region("aws", "westeurope")
    assert _cloud.is_eea_region("azure", "westeurope")
    assert not _cloud.is_eea_region("aws", "us-east-1")
    assert all(_cloud.EEA_REGIONS[c] <= _cloud.REGIONS[c] for c in _cloud.CLOUDS)
    assert all(_cloud.ADEQUACY_REGIONS[c] <= _cloud.REGIONS[c] for c in _cloud.CLOUDS)
    assert _cloud.managed_instance("aws", "500m", "1Gi") == "ml.m5.large"
    assert _cloud.managed_instance("gcp", "4", "16Gi") == "n1-standard-8"
    assert _cloud.managed_instance("azure", None, None, "nvidia-a100") == "Standard_NC24ads_A100_v4"


def test_names_and_hcl_helpers() -> None:
    assert [names.identity_output(r) for r in names.ROLES] == [
        "pipeline_identity",
        "training_identity",
        "serving_identity",
        "monitoring_identity",
    ]
    with pytest.raises(ValueError, match="unknown identity role"):
        names.identity_output("admin")
    assert hcl.quote("a${b}") == '"a$${b}"'
    assert hcl.format_hcl("a {\n  x = 1\n  yyy = [\n    1,\n  ]\n  zz = 2\n}\n") == (
        "a {\n  x = 1\n  yyy = [\n    1,\n  ]\n  zz = 2\n}\n"
    )
