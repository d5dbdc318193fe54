"""Cost estimates checked against hand-computed cases, and the budget pass."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mlc.compiler.api import check
from mlc.compiler.cost import estimate_cost, load_pricing
from mlc.compiler.cost.estimate import cron_runs_per_month
from mlc.compiler.diagnostics import DiagnosticError, Severity

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "tests" / "diff_pairs" / "nochange-identical" / "base.yaml"
TEST_PRICES = REPO / "tests" / "cost_data" / "pricing.json"
RUNS = 365.25 / 12 / 7  # the example retrains weekly ('0 3 * * 1')


def spec_with(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    text = BASE.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "mlc.yaml"
    path.write_text(text)
    return path


def test_shipped_table_states_date_and_source() -> None:
    table = load_pricing()
    assert table.date == "2026-11-26" and "pricing" in table.source.lower()
    assert {"aws", "gcp", "azure"} <= set(table.clouds)
    for cloud in table.clouds:
        for region in table.regions(cloud):
            for inst in table.instances(cloud, region):
                assert inst.vcpu > 0 and inst.memory_gib > 0 and 0 < inst.spot <= inst.on_demand


def test_hand_computed_example() -> None:
    ir = check(BASE).ir
    est = estimate_cost(ir, load_pricing(TEST_PRICES))
    items = {i.name: i for i in est.items}
    assert est.runs_per_month == pytest.approx(RUNS)
    # training: 15 min on 'medium' (2 vCPU / 4 GiB is the cheapest fit for cpu 2, 4Gi)
    assert items["training"].instance == "medium"
    assert items["training"].per_run_usd == pytest.approx(0.25 * 0.05)
    # tuning: 12 trials x 0.25 h / 2 workers = 1.5 h, capped by the 10 min timeout, 2 workers
    assert items["tuning"].per_run_usd == pytest.approx(10 / 60 * 2 * 0.05)
    # serving: cpu 1 / 2Gi fits 'small'; 1 replica all month
    assert items["serving"].instance == "small"
    assert items["serving"].monthly_usd == pytest.approx(730 * 0.02)
    # monitoring: hourly drift + daily performance jobs, 6 minutes each, on 'small'
    days = 365.25 / 12
    assert items["monitoring"].monthly_usd == pytest.approx((24 * days + days) * 0.1 * 0.02)
    assert items["storage"].monthly_usd == pytest.approx(50 * 0.02)
    total = (0.25 * 0.05 + 10 / 60 * 2 * 0.05) * RUNS + 730 * 0.02 + 25 * days * 0.1 * 0.02 + 1.0
    assert est.monthly_usd == pytest.approx(total)


def test_spot_prices_training_only(tmp_path: Path) -> None:
    ir = check(BASE).ir
    est = estimate_cost(ir, load_pricing(TEST_PRICES), spot=True)
    training, serving = est.item("training"), est.item("serving")
    assert training is not None and serving is not None
    assert training.per_run_usd == pytest.approx(0.25 * 0.02)
    assert serving.monthly_usd == pytest.approx(730 * 0.02)


def test_gpu_training_and_scale_to_zero(tmp_path: Path) -> None:
    spec = spec_with(
        tmp_path,
        (
            "resources: {cpu: 2, memory: 4Gi}",
            "resources: {cpu: 2, memory: 4Gi, gpu: {count: 1, type: nvidia-tesla-t4}}",
        ),
        (
            "autoscaling: {min_replicas: 1, max_replicas: 4, target_utilization: 70}",
            "autoscaling: {min_replicas: 0, max_replicas: 4, scale_to_zero: true}",
        ),
        ("  gpu_hours: 0\n", ""),
    )
    est = estimate_cost(check(spec).ir, load_pricing(TEST_PRICES))
    training, serving = est.item("training"), est.item("serving")
    assert training is not None and serving is not None
    assert training.instance == "gpu1" and training.per_run_usd == pytest.approx(0.25 * 1.0)
    assert serving.monthly_usd == pytest.approx(0.2 * 730 * 0.02)
    assert est.gpu_hours_per_month == pytest.approx((0.25 + 10 / 60 * 2) * RUNS)


def test_cron_counts() -> None:
    days = 365.25 / 12
    assert cron_runs_per_month("@hourly") == pytest.approx(24 * days)
    assert cron_runs_per_month("*/15 * * * *") == pytest.approx(4 * 24 * days)
    assert cron_runs_per_month("0 9-17 * * 1-5") == pytest.approx(9 * 5 * days / 7)
    assert cron_runs_per_month("0 0 1 * *") == pytest.approx(1)
    assert cron_runs_per_month("0 0 1 1 *") == pytest.approx(1 / 12)


def test_missing_instance_type_names_type_and_table(tmp_path: Path) -> None:
    spec = spec_with(
        tmp_path,
        (
            "resources: {cpu: 2, memory: 4Gi}",
            "resources: {cpu: 2, memory: 4Gi, gpu: {count: 1, type: nvidia-h100}}",
        ),
    )
    result = check(spec)
    found = [d for d in result.diagnostics if d.code == "MLC631"]
    assert found and "nvidia-h100" in found[0].message and "pricing.json" in found[0].message
    assert found[0].location is not None and found[0].location.file.endswith("mlc.yaml")
    # a hole in the table is not an error of the spec: the line's cost is unknown, not $0
    assert found[0].severity is Severity.WARNING
    training = estimate_cost(result.ir).item("training")
    assert training is not None and not training.priced and training.instance is None


def test_missing_region_is_located(tmp_path: Path) -> None:
    spec = spec_with(tmp_path, ("region: eu-west-1", "region: eu-south-2"))
    result = check(spec)
    found = [d for d in result.diagnostics if d.code == "MLC631"]
    assert found and "eu-south-2" in found[0].message and found[0].path == "deployment.region"


def test_budget_over_cap_names_line_item(tmp_path: Path) -> None:
    spec = spec_with(
        tmp_path, ("min_replicas: 1, max_replicas: 4", "min_replicas: 80, max_replicas: 80")
    )
    result = check(spec)
    over = [d for d in result.diagnostics if d.code == "MLC630"]
    assert {d.path for d in over} == {
        "budgets.serving_usd_per_month",
        "budgets.total_usd_per_month",
    }
    assert all("serving" in d.message and d.severity is Severity.ERROR for d in over)
    assert over[0].location is not None
    warn = spec_with(
        tmp_path,
        ("min_replicas: 1, max_replicas: 4", "min_replicas: 80, max_replicas: 80"),
        ("  enforce: error", "  enforce: warn"),
    )
    result = check(warn)
    assert result.ok
    assert {d.severity for d in result.diagnostics if d.code == "MLC630"} == {Severity.WARNING}


def test_gpu_hours_budget(tmp_path: Path) -> None:
    spec = spec_with(
        tmp_path,
        (
            "resources: {cpu: 2, memory: 4Gi}",
            "resources: {cpu: 2, memory: 4Gi, gpu: {count: 1, type: nvidia-tesla-t4}}",
        ),
    )
    over = [d for d in check(spec).diagnostics if d.code == "MLC630"]
    assert [d.path for d in over] == ["budgets.gpu_hours"]


def test_bad_pricing_table(tmp_path: Path) -> None:
    bad = tmp_path / "p.json"
    bad.write_text(
        json.dumps(
            {"pricing_version": "x", "date": "d", "source": "s", "assumptions": {}, "clouds": {}}
        )
    )
    with pytest.raises(DiagnosticError) as err:
        load_pricing(bad)
    assert err.value.diagnostics[0].code == "MLC633" and "assumptions" in str(err.value)


def test_cost_command(tmp_path: Path) -> None:
    mlc = str(REPO / ".venv" / "bin" / "mlc")
    run = subprocess.run(
        [mlc, "cost", str(BASE), "--format", "json", "--pricing", str(TEST_PRICES)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    # no installed target schedules the drift and performance jobs: they are not priced
    assert [i["name"] for i in data["items"]] == ["training", "tuning", "serving", "storage"]
    assert [p.split(" (")[0] for p in data["left_out"]] == [
        "scheduled drift jobs",
        "scheduled performance jobs",
    ]
    assert data["items"][2]["monthly_usd"] == 14.6 and data["complete"] is True
    run = subprocess.run([mlc, "cost", str(BASE)], capture_output=True, text=True)
    assert run.returncode == 0 and "serving" in run.stdout and "total" in run.stdout
