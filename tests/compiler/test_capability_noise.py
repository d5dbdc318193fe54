"""Inert settings are reported, the 'not realised' warnings read as one line, and plan and cost
count only what the selected targets emit (issue 11, items 13 and 15)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mlc.compiler.api import check
from mlc.compiler.ir import StepKind
from mlc.compiler.registry import TargetRegistry
from mlc.targets.base import Capabilities, Target

REPO = Path(__file__).resolve().parents[2]
MLC = REPO / ".venv" / "bin" / "mlc"
CREDIT = REPO / "examples" / "credit"
INERT = {
    "budgets.idle_shutdown",
    "monitoring.drift.schedule",
    "monitoring.performance.label_delay",
    "monitoring.performance.schedule",
}
"""What the credit example sets that no installed target acts on today."""


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


def _offline(text: str, mode: str) -> str:
    """The credit spec deployed in `mode` (batch, edge): no rollout strategy."""
    start, end = text.index("  strategy:\n"), text.index("  autoscaling:")
    return text[:start].replace("  mode: online\n", mode) + text[end:]


def _line_of(spec: Path, needle: str) -> int:
    lines = spec.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def test_inert_settings_are_reported_where_they_are_set(credit: Path) -> None:
    run = mlc(
        "compile",
        "mlc.yaml",
        *("-t", "local", "-t", "kserve", "-t", "monitoring", "-t", "terraform"),
        *("-o", credit / "out", "--format", "json"),
        cwd=credit,
    )
    assert run.returncode == 0, run.stderr
    diags = json.loads(run.stdout)
    inert = {d["path"]: d for d in diags if d["code"] == "MLC421"}
    assert set(inert) == INERT
    spec = credit / "mlc.yaml"
    assert inert["budgets.idle_shutdown"]["line"] == _line_of(spec, "idle_shutdown: 2h")
    assert inert["monitoring.drift.schedule"]["line"] == _line_of(spec, "schedule: '0 * * * *'")
    for d in inert.values():
        assert d["severity"] == "warning" and d["path"] in d["message"]
        assert "(kserve, local, monitoring, terraform)" in d["message"]
    # every section is realised by one of these targets: no section warning
    assert not [d for d in diags if d["code"] == "MLC420"]


def test_unset_or_false_settings_ask_for_nothing(credit: Path) -> None:
    spec = credit / "mlc.yaml"
    text = spec.read_text()
    text = text.replace("  idle_shutdown: 2h\n", "")
    text = text.replace(", label_delay: 30d, schedule: '@daily'", "")
    text = text.replace("    schedule: '0 * * * *'\n", "")
    spec.write_text(text)
    result = check(spec, targets=["local"])
    assert not [d for d in result.diagnostics if d.code == "MLC421"]
    # edge export: quantisation is part of the export step, so a target running it acts on it
    edge = _offline(text, "  mode: edge\n  edge: {quantize: dynamic}\n")
    spec.write_text(edge.replace("mitigation: threshold_optimizer", "mitigation: none"))
    assert not [d for d in check(spec, targets=["local"]).diagnostics if d.code == "MLC421"]


class _Idler(Target):
    """A plugin that shuts idle budgets down: it claims the setting, so nothing is reported."""

    name = "idler"
    capabilities = Capabilities(
        realises=frozenset({StepKind.BUDGET}),
        supports=frozenset({"budgets"}),
        settings=frozenset({"budgets.idle_shutdown"}),
    )

    def emit(self, ir, ctx):  # type: ignore[no-untyped-def]
        return {"idle.txt": "2h\n"}


def test_a_target_that_claims_a_setting_realises_it(credit: Path) -> None:
    registry = TargetRegistry.from_entry_points()
    registry.register(_Idler())
    spec = credit / "mlc.yaml"
    alone = check(spec, targets=["local"], registry=registry)
    (idle,) = [d for d in alone.diagnostics if d.path == "budgets.idle_shutdown"]
    assert idle.code == "MLC421" and "--target idler" in idle.hint
    both = check(spec, targets=["local", "idler"], registry=registry)
    assert not [d for d in both.diagnostics if d.path == "budgets.idle_shutdown"]


def test_one_summary_line_and_details_with_verbose(credit: Path) -> None:
    out = credit / "out"
    run = mlc("compile", "mlc.yaml", "-t", "local", "-o", out, cwd=credit)
    assert run.returncode == 0, run.stderr
    noted = [line for line in run.stderr.splitlines() if "not realised" in line]
    assert len(noted) == 1, run.stderr
    assert "MLC420" not in run.stderr and "MLC421" not in run.stderr
    summary = noted[0]
    assert re.search(r"\(local\): budgets, deployment, monitoring, security\b", summary)
    assert "--target kserve/monitoring/terraform" in summary and "--verbose" in summary

    verbose = mlc("compile", "mlc.yaml", "-t", "local", "-o", out, "--verbose", cwd=credit)
    assert verbose.returncode == 0, verbose.stderr
    sections = re.findall(r"warning\[MLC420\]: '(\w+)'", verbose.stderr)
    assert sorted(sections) == ["budgets", "deployment", "monitoring", "security"]
    assert "MLC419" not in verbose.stderr

    as_json = mlc("compile", "mlc.yaml", "-t", "local", "-o", out, "--format", "json", cwd=credit)
    codes = [d["code"] for d in json.loads(as_json.stdout)]
    assert codes.count("MLC420") == 4 and codes.count("MLC421") == len(INERT)

    plan = mlc("plan", "mlc.yaml", "-t", "local", "-o", out, cwd=credit)
    assert [line for line in plan.stdout.splitlines() if "not realised" in line] == [summary]


def test_no_security_section_is_not_warned_about(credit: Path) -> None:
    spec = credit / "mlc.yaml"
    text = spec.read_text()
    start, end = text.index("\nsecurity:\n"), text.index("\nbudgets:\n")
    spec.write_text(text[:start] + text[end:])
    result = check(spec, targets=["local"])
    assert result.ok, [d.render() for d in result.diagnostics]
    assert not [d for d in result.diagnostics if "security" in d.message]
    assert not [
        d for d in result.diagnostics if d.location and (d.location.line, d.location.col) == (1, 1)
    ]
    (summary,) = [d for d in result.diagnostics if d.code == "MLC419"]
    assert "security" not in summary.message and "budgets" in summary.message


def test_cost_and_plan_leave_out_what_no_selected_target_emits(credit: Path) -> None:
    run = mlc("cost", "mlc.yaml", "-t", "local", "--format", "json", cwd=credit)
    assert run.returncode == 0, run.stderr
    cost = json.loads(run.stdout)
    assert cost["targets"] == ["local"]
    assert [i["name"] for i in cost["items"]] == ["training", "tuning"]
    assert cost["monthly_usd"] == pytest.approx(sum(i["monthly_usd"] for i in cost["items"]))
    left = " ".join(cost["left_out"])
    assert "serving" in left and "storage" in left and "scheduled drift jobs" in left

    full = json.loads(
        mlc("cost", "mlc.yaml", "-t", "kserve", "--format", "json", cwd=credit).stdout
    )
    assert [i["name"] for i in full["items"]] == ["serving"]

    plan = mlc(
        "plan", "mlc.yaml", "-t", "local", "-o", credit / "out", "--format", "json", cwd=credit
    )
    report = json.loads(plan.stdout)
    assert report["cost"]["items"] == cost["items"]
    runs = report["runs"]
    assert any(r.startswith("pipeline run") for r in runs)
    assert not [r for r in runs if "drift job" in r or "performance job" in r]
    assert not [r for r in runs if r.startswith("rollout")]
    kserve = json.loads(
        mlc(
            "plan", "mlc.yaml", "-t", "kserve", "-o", credit / "o2", "--format", "json", cwd=credit
        ).stdout
    )
    assert [r for r in kserve["runs"] if r.startswith("rollout")] == ["rollout: deploy"]
    assert not [r for r in kserve["runs"] if r.startswith("pipeline run")]
    # `ir` emits none of the system: plan counts what the installed targets would emit, and
    # none of them schedules the monitoring jobs
    inspect = mlc(
        "plan", "mlc.yaml", "-t", "ir", "-o", credit / "o3", "--format", "json", cwd=credit
    )
    inspected = json.loads(inspect.stdout)
    assert not [r for r in inspected["runs"] if "drift job" in r or "performance job" in r]
    assert "monitoring" not in [i["name"] for i in inspected["cost"]["items"]]
    assert any(r.startswith("pipeline run") for r in inspected["runs"])


def test_batch_jobs_are_priced_only_when_a_selected_target_runs_them(credit: Path) -> None:
    spec = credit / "mlc.yaml"
    text = _offline(
        spec.read_text(),
        "  mode: batch\n"
        "  batch: {schedule: '@daily', input: data/applications.csv, output: out/p}\n",
    )
    spec.write_text(text)
    if not check(spec).ok:
        pytest.fail("\n".join(d.render() for d in check(spec).diagnostics))
    # without -t: every installed target, and local, kfp and k8s run batch_predict
    run = mlc("cost", "mlc.yaml", "--format", "json", cwd=credit)
    assert run.returncode == 0, run.stderr
    assert "batch" in [i["name"] for i in json.loads(run.stdout)["items"]]
    # terraform alone starts no batch job: nothing to price
    run = mlc("cost", "mlc.yaml", "-t", "terraform", "--format", "json", cwd=credit)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert "batch" not in [i["name"] for i in data["items"]]
    assert any(p.startswith("batch ('batch_predict'") for p in data["left_out"])


class _Scheduler(Target):
    """A plugin that runs the drift job on its schedule."""

    name = "scheduler"
    capabilities = Capabilities(
        realises=frozenset({StepKind.MONITOR}),
        settings=frozenset({"monitoring.drift.schedule"}),
    )

    def emit(self, ir, ctx):  # type: ignore[no-untyped-def]
        return {}


def test_a_claimed_schedule_is_priced(credit: Path) -> None:
    from mlc.compiler.cost import Emission, estimate_cost, load_pricing

    ir = check(credit / "mlc.yaml").ir
    est = estimate_cost(ir, emits=Emission.of([_Scheduler()]))
    (line,) = est.items
    hourly = 730.5  # '0 * * * *': 24 runs a day, 365.25 / 12 days a month
    small = load_pricing().clouds["aws"]["regions"]["eu-west-1"]["instances"]["t3.small"]
    assert line.name == "monitoring"
    assert line.monthly_usd == pytest.approx(hourly * 0.1 * small["on_demand"])
    assert any("scheduled performance jobs" in part for part in est.left_out)


def test_installed_targets_claim_only_known_settings() -> None:
    from mlc.compiler.passes.capabilities import TARGET_SETTINGS

    known = {s.path for s in TARGET_SETTINGS}
    for target in TargetRegistry.from_entry_points().all():
        assert target.capabilities.settings <= known, target.name
