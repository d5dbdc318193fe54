"""`--target github`: the workflow validates against GitHub's schema and does the review steps."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from support.tools import require_tool

from mlc.compiler.api import check, compile_spec
from mlc.compiler.diff.outputs import emit_in_memory

REPO = Path(__file__).resolve().parents[2]
CREDIT = REPO / "examples" / "credit" / "mlc.yaml"
WORKFLOW = ".github/workflows/mlc.yml"


def _schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    tool = require_tool("check-jsonschema")
    return subprocess.run(
        [tool, "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
    )


def test_workflow_validates_against_github_schema(tmp_path: Path) -> None:
    compile_spec(CREDIT, ["github"], tmp_path)
    path = tmp_path / "github" / WORKFLOW
    run = _schema_check(path)
    assert run.returncode == 0, run.stdout + run.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    compile_spec(CREDIT, ["github"], tmp_path)
    data = yaml.safe_load((tmp_path / "github" / WORKFLOW).read_text())
    del data["jobs"]["mlc"]["runs-on"]
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(data))
    assert _schema_check(broken).returncode != 0


def test_workflow_steps() -> None:
    ir = check(CREDIT).ir
    files = emit_in_memory(
        ir,
        "github",
        {"spec": "examples/credit/mlc.yaml", "targets": ["ir", "github"]},
        str(CREDIT.parent),
    )
    assert list(files) == [WORKFLOW]
    data = yaml.safe_load(files[WORKFLOW])
    runs = [s.get("run", "") for s in data["jobs"]["mlc"]["steps"]]
    uses = [s.get("uses", "") for s in data["jobs"]["mlc"]["steps"]]
    assert "mlc validate 'examples/credit/mlc.yaml' --format github" in runs
    diff = next(r for r in runs if "mlc diff" in r)
    assert '--base "origin/${{ github.base_ref }}"' in diff and "--format markdown" in diff
    assert any("gh pr comment" in r and "mlc-diff.md" in r for r in runs)
    assert any(r.startswith("mlc compile") and "--target 'ir' --target 'github'" in r for r in runs)
    assert "actions/upload-artifact@v4" in uses and "actions/checkout@v4" in uses
    assert data["permissions"]["pull-requests"] == "write"
    assert data["jobs"]["mlc"]["steps"][0]["with"]["fetch-depth"] == 0


def test_workflow_is_deterministic_and_configurable(tmp_path: Path) -> None:
    ir = check(CREDIT).ir
    a = emit_in_memory(ir, "github", {}, ".")
    assert a == emit_in_memory(ir, "github", {}, ".")
    text = a[WORKFLOW].decode()
    assert "mlc compile 'mlc.yaml' --target 'ir'" in text  # configured targets, minus github
    quiet = yaml.safe_load(
        emit_in_memory(ir, "github", {"fail_on_high_risk": False, "targets": []}, ".")[WORKFLOW]
    )
    names = [s["name"] for s in quiet["jobs"]["mlc"]["steps"]]
    assert not any("Fail on" in n or "Upload" in n for n in names)
    spec = tmp_path / "mlc.yaml"
    spec.write_text(
        CREDIT.read_text().replace(
            "targets:\n  ir: {}", "targets:\n  ir: {}\n  github: {pythn: '3.12'}"
        )
    )
    (tmp_path / "env").mkdir()
    for f in (CREDIT.parent / "env").iterdir():
        (tmp_path / "env" / f.name).write_text(f.read_text())
    mlc = str(REPO / ".venv" / "bin" / "mlc")
    run = subprocess.run(
        [mlc, "compile", str(spec), "-t", "github", "-o", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "pythn" in run.stderr and "Traceback" not in run.stderr
