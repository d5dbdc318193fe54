"""Pricing holes do not block a valid spec, and what cannot be priced is never called within
budget (issue 11, item 8)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mlc.compiler.cost import load_pricing

REPO = Path(__file__).resolve().parents[2]
MLC = REPO / ".venv" / "bin" / "mlc"
CREDIT = REPO / "examples" / "credit"
MISSING_REGION = "eu-south-2"
"""AWS Europe (Spain): a real region the shipped table does not price."""


def mlc(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MLC), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=180,
        check=False,
    )


@pytest.fixture
def credit(tmp_path: Path) -> Path:
    dest = tmp_path / "credit"
    shutil.copytree(CREDIT, dest, ignore=shutil.ignore_patterns("data", ".mlc", "out"))
    return dest


def _edit(spec: Path, old: str, new: str) -> None:
    text = spec.read_text()
    assert old in text, old
    spec.write_text(text.replace(old, new, 1))


def test_the_region_is_really_missing_from_the_table() -> None:
    table = load_pricing()
    assert MISSING_REGION not in table.regions("aws") and "eu-west-1" in table.regions("aws")


def test_missing_region_is_a_warning_and_its_lines_unknown(credit: Path) -> None:
    _edit(credit / "mlc.yaml", "region: eu-west-1", f"region: {MISSING_REGION}")
    valid = mlc("validate", "mlc.yaml", cwd=credit)
    assert valid.returncode == 0, valid.stderr
    run = mlc("cost", "mlc.yaml", "--format", "json", cwd=credit)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    (hole,) = [d for d in data["diagnostics"] if d["code"] == "MLC631"]
    assert hole["severity"] == "warning" and MISSING_REGION in hole["message"]
    assert hole["path"] == "deployment.region" and hole["line"] is not None
    assert data["items"] and all(i["priced"] is False for i in data["items"])
    assert all(i["monthly_usd"] is None for i in data["items"])
    assert data["monthly_usd"] is None and data["complete"] is False
    text = mlc("cost", "mlc.yaml", cwd=credit)
    assert text.returncode == 0, text.stderr
    assert "not estimated" in text.stdout and "unknown" in text.stdout
    assert " 0.00 /month" not in text.stdout


def test_partly_priced_totals_are_a_lower_bound(credit: Path) -> None:
    spec = credit / "mlc.yaml"
    # no H100 in eu-west-1: training and tuning cannot be priced, serving and storage can
    _edit(
        spec,
        "resources: {cpu: 2, memory: 4Gi}",
        "resources: {cpu: 2, memory: 4Gi, gpu: {count: 1, type: nvidia-h100}}",
    )
    _edit(spec, "  gpu_hours: 0\n", "")
    run = mlc("cost", "mlc.yaml", "-t", "kfp", "-t", "kserve", "--format", "json", cwd=credit)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["unknown_items"] == ["training", "tuning"]
    region = load_pricing().clouds["aws"]["regions"]["eu-west-1"]
    cheapest = min(
        row["on_demand"]
        for row in region["instances"].values()
        if row["vcpu"] >= 1 and row["memory_gib"] >= 2 and not row["gpu_count"]
    )
    serving = 730 * cheapest  # one replica (dev overlay) of cpu 1 / 2Gi, all month
    assert data["monthly_usd"] == pytest.approx(serving, abs=0.01)
    text = mlc("cost", "mlc.yaml", "-t", "kfp", "-t", "kserve", cwd=credit).stdout
    assert f"at least ${serving:,.2f}/month" in text
    assert "(2 lines unknown: training, tuning)" in text
    # the caps those lines fall under are not called kept
    plan = mlc(
        "plan",
        "mlc.yaml",
        "-t",
        "kfp",
        "-t",
        "kserve",
        "-o",
        credit / "out",
        "--format",
        "json",
        cwd=credit,
    )
    report = json.loads(plan.stdout)
    unchecked = {d["path"] for d in report["diagnostics"] if d["code"] == "MLC634"}
    assert {"budgets.training_usd", "budgets.tuning_usd", "budgets.total_usd_per_month"} == (
        unchecked
    )
    budgets = {v["rule"]: v for v in report["verdicts"]}["budgets"]
    assert budgets["verdict"] == "unknown" and "budgets.training_usd" in budgets["detail"]


def test_onprem_is_not_estimated_and_budgets_not_claimed(credit: Path) -> None:
    spec = credit / "mlc.yaml"
    _edit(spec, "cloud: aws", "cloud: onprem")
    run = mlc("cost", "mlc.yaml", cwd=credit)
    assert run.returncode == 0, run.stderr
    assert "not estimated (no prices for 'onprem')" in run.stdout
    assert "$0.00" not in run.stdout and " 0.00 /month" not in run.stdout
    (note,) = [line for line in run.stderr.splitlines() if "MLC634" in line]
    assert "budgets.total_usd_per_month" in note and "not estimated" in note

    plan = mlc("plan", "mlc.yaml", "-t", "ir", "-o", credit / "out", "--format", "json", cwd=credit)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    report = json.loads(plan.stdout)
    budgets = {v["rule"]: v for v in report["verdicts"]}["budgets"]
    assert budgets["verdict"] == "unknown"
    (diag,) = [d for d in report["diagnostics"] if d["code"] == "MLC634"]
    assert diag["path"] == "budgets" and diag["severity"] == "warning"
    text = mlc("plan", "mlc.yaml", "-t", "ir", "-o", credit / "out", cwd=credit).stdout
    assert "Estimated cost: not estimated" in text and "pass    budgets" not in text


def test_a_cap_exceeded_by_the_priced_lines_alone_still_fails(credit: Path) -> None:
    spec = credit / "mlc.yaml"
    _edit(
        spec,
        "resources: {cpu: 2, memory: 4Gi}",
        "resources: {cpu: 2, memory: 4Gi, gpu: {count: 1, type: nvidia-h100}}",
    )
    _edit(spec, "  gpu_hours: 0\n", "")
    _edit(spec, "total_usd_per_month: 1000", "total_usd_per_month: 5")
    run = mlc("validate", "mlc.yaml", cwd=credit)
    assert run.returncode == 2
    assert "error[MLC630]: estimated at least" in run.stderr
    assert "budgets.total_usd_per_month" in run.stderr
