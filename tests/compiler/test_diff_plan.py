"""`mlc plan` against the last compiled manifest: create, change, remove, runs, cost, verdicts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mlc.compiler.api import compile_spec
from mlc.compiler.diagnostics import DiagnosticError
from mlc.compiler.plan import plan_spec

REPO = Path(__file__).resolve().parents[2]
CREDIT = REPO / "examples" / "credit"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "credit"
    shutil.copytree(CREDIT, dest, ignore=shutil.ignore_patterns("data"))
    return dest / "mlc.yaml"


def test_plan_from_nothing_then_unchanged_then_changed(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = plan_spec(project, ["ir", "github"], out)
    assert {(f.target, f.path, f.action) for f in first.files} == {
        ("ir", "ir.json", "create"),
        ("github", ".github/workflows/mlc.yml", "create"),
    }
    assert any(r.startswith("pipeline run") for r in first.runs)
    assert first.cost is not None and first.cost.monthly_usd > 0
    assert first.exit_code == 0
    verdicts = {v.rule: v.verdict for v in first.verdicts}
    assert verdicts["gdpr-regions"] == "pass" and verdicts["hipaa-audit-logging"] == "n/a"
    assert verdicts["budgets"] == "pass"

    compile_spec(project, ["ir", "github"], out)
    same = plan_spec(project, ["ir", "github"], out)
    assert {f.action for f in same.files} == {"keep"}
    assert not any(r.startswith("pipeline run") for r in same.runs)

    project.write_text(project.read_text().replace("max_depth: 4}", "max_depth: 5}"))
    changed = plan_spec(project, ["ir"], out)
    assert [(f.path, f.action) for f in changed.files] == [("ir.json", "change")]
    assert any(r.startswith("pipeline run") for r in changed.runs)

    manifest = json.loads((out / "ir" / "mlc-manifest.json").read_text())
    manifest["files"]["stale.txt"] = "0" * 64
    (out / "ir" / "mlc-manifest.json").write_text(json.dumps(manifest))
    assert ("stale.txt", "remove") in {
        (f.path, f.action) for f in plan_spec(project, ["ir"], out).files
    }


def test_plan_policy_failure_and_bad_manifest(project: Path, tmp_path: Path) -> None:
    project.write_text(project.read_text().replace("region: eu-west-1", "region: us-east-1"))
    report = plan_spec(project, ["ir"], tmp_path / "out")
    assert {v.rule: v.verdict for v in report.verdicts}["gdpr-regions"] == "fail"
    assert report.exit_code == 1
    bad = tmp_path / "bad" / "ir"
    bad.mkdir(parents=True)
    (bad / "mlc-manifest.json").write_text("{not json")
    with pytest.raises(DiagnosticError) as err:
        plan_spec(project, ["ir"], tmp_path / "bad")
    assert err.value.diagnostics[0].code == "MLC650"


def test_plan_command(project: Path, tmp_path: Path) -> None:
    mlc = str(REPO / ".venv" / "bin" / "mlc")
    run = subprocess.run(
        [mlc, "plan", str(project), "-t", "ir", "-o", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "Plan: 1 to create, 0 to change, 0 to remove" in run.stdout
    assert "Policy verdicts:" in run.stdout and "Estimated cost:" in run.stdout
    run = subprocess.run(
        [mlc, "plan", str(project), "-t", "ir", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert json.loads(run.stdout)["summary"]["create"] == 1
