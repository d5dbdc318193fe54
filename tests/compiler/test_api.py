"""`mlc.compiler.api`: the library every CLI command is a thin shell over, called directly.

Each function is exercised on a real project copied into `tmp_path`; one slow test runs the
diabetes pipeline once and reads everything a run leaves behind through the library. A last
test walks the CLI's source: no command reaches into runtime steps or builds step params.
"""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlc.compiler import api
from mlc.compiler.ir import StepKind

REPO = Path(__file__).resolve().parents[2]
CREDIT = REPO / "examples" / "credit"
DIABETES = REPO / "examples" / "diabetes"
RMSE_TRIGGER = "feedback.triggers=[{kind: performance_drop, metric: rmse, drop: 5.0}]"
"""Diabetes has feedback but no triggers and no `monitoring`: with this trigger it has a
retrain_trigger step and no monitor step (the case whose params `mlc monitor` used to build)."""


def _copy(example: Path, dest: Path, *, data: bool = True) -> Path:
    ignore = [".mlc", "out", *([] if data else ["data"])]
    shutil.copytree(example, dest, ignore=shutil.ignore_patterns(*ignore))
    return dest / "mlc.yaml"


def test_compile_with_audit_records_each_written_file(tmp_path: Path) -> None:
    spec = _copy(CREDIT, tmp_path / "credit", data=False)
    out = tmp_path / "out"
    result = api.compile_spec(spec, ["ir"], out, audit=True)
    assert result.audit_problem == ""
    (record,) = api.audit_records(spec.parent / ".mlc")
    assert record["event"] == "compile"
    assert record["spec_hash"] == result.check.ir.metadata["spec_hash"]
    on_disk = {
        p.relative_to(out / "ir").as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (out / "ir").rglob("*")
        if p.is_file()
    }
    assert record["details"]["files"] == {"ir": on_disk}
    assert record["details"]["targets"] == ["ir"]
    # without `audit` nothing is appended
    api.compile_spec(spec, ["ir"], tmp_path / "again")
    assert len(api.audit_records(spec.parent / ".mlc")) == 1


def test_compile_audit_goes_to_the_local_state_dir_the_spec_names(tmp_path: Path) -> None:
    spec = _copy(CREDIT, tmp_path / "credit", data=False)
    api.compile_spec(
        spec, ["ir"], tmp_path / "out", ["+targets.local={state_dir: state}"], audit=True
    )
    assert [r["event"] for r in api.audit_records(spec.parent / "state")] == ["compile"]
    assert not (spec.parent / ".mlc").exists()


def test_plan_defaults_to_the_spec_targets_and_needs_one(tmp_path: Path) -> None:
    spec = _copy(CREDIT, tmp_path / "credit", data=False)
    declared = sorted(api.check(spec).spec.targets)
    report = api.plan(spec, out_dir=tmp_path / "out")
    assert report.targets == declared
    assert report.files and {f.action for f in report.files} == {"create"}
    with pytest.raises(api.UsageError, match="names no targets"):
        api.plan(spec, overrides=["~targets"], out_dir=tmp_path / "out")


def test_cost_prices_the_checked_spec(tmp_path: Path) -> None:
    spec = _copy(CREDIT, tmp_path / "credit", data=False)
    report = api.cost(spec, targets=["ir"])
    assert report.check.ok
    assert report.check.ir.name == "credit-risk"
    assert json.loads(json.dumps(report.to_json()))  # what `mlc cost --format json` prints


def test_diff_reports_a_changed_setting(tmp_path: Path) -> None:
    base = _copy(CREDIT, tmp_path / "base", data=False)
    head = _copy(CREDIT, tmp_path / "head", data=False)
    text = head.read_text()
    assert "    threshold: 0.2\n" in text
    head.write_text(text.replace("    threshold: 0.2\n", "    threshold: 0.3\n", 1))
    report = api.diff(str(base), str(head))
    (change,) = [c for c in report.changes if c.path == "monitoring.drift.threshold"]
    assert (change.old, change.new) == (0.2, 0.3)
    assert api.diff(str(base), str(base)).changes == []


def test_monitor_params_are_the_ir_monitor_step() -> None:
    checked = api.check(CREDIT / "mlc.yaml")
    step = checked.ir.first(StepKind.MONITOR)
    assert step is not None
    params = api.monitor_params(
        checked.spec, checked.ir, checked.ir.first(StepKind.RETRAIN_TRIGGER)
    )
    # credit sets monitoring.performance: labelled rows are scored with the trigger's metric
    assert params == {**step.params, "metrics": ["roc_auc"]}
    assert params["drift"] == {
        "method": "psi",
        "threshold": 0.2,
        "features": ["income", "debt", "age", "debt_ratio"],
        "schedule": "0 * * * *",
        # the test per column type, filled in by the builder from `method`
        "numeric": "psi",
        "categorical": "chi2",
    }


def test_monitor_params_without_a_monitoring_section_are_the_builders() -> None:
    from mlc.specs.monitoring import Slos

    checked = api.check(DIABETES / "mlc.yaml", [RMSE_TRIGGER])
    assert checked.ok and checked.ir.first(StepKind.MONITOR) is None
    params = api.monitor_params(
        checked.spec, checked.ir, checked.ir.first(StepKind.RETRAIN_TRIGGER)
    )
    assert params["drift"] is None and params["performance"] is None
    # defaults from the spec model, not repeated anywhere
    assert params["slos"] == Slos().model_dump(mode="json")
    assert (params["target"], params["task"]) == ("progression", "regression")
    assert params["model_name"] == "diabetes-progression"
    assert params["metrics"] == sorted({"r2", "rmse", "mae"})


def test_state_functions_on_a_project_without_runs(tmp_path: Path) -> None:
    state = tmp_path / ".mlc"
    state.mkdir()
    assert api.runs(state) == []
    assert api.lineage(state) == []
    info = api.cache_info(state)
    assert (info.entries, info.kept_bytes, info.removed_folders) == (0, 0, [])
    verification = api.audit_verify(state)
    assert verification.outcome.missing and not verification.outcome.ok
    assert "no audit log here" in verification.describe()
    with pytest.raises(api.UsageError, match="no audit log at"):
        api.audit_records(state)


def test_monitor_refuses_a_spec_with_nothing_to_monitor_and_missing_data(tmp_path: Path) -> None:
    spec = _copy(DIABETES, tmp_path / "diabetes")
    with pytest.raises(api.MonitorError, match="no 'monitoring' or 'feedback' section"):
        api.monitor(spec, tmp_path / "current.csv")
    with pytest.raises(api.MonitorError, match=r"current data .* does not exist"):
        api.monitor(spec, tmp_path / "current.csv", [RMSE_TRIGGER])


def test_run_with_spec_errors_runs_nothing(tmp_path: Path) -> None:
    spec = _copy(CREDIT, tmp_path / "credit")
    seen: list[api.CheckResult] = []
    # a canary rollout with nothing to alert on: errors of the passes, not of the schema
    done = api.run(spec, ["~monitoring", "~feedback"], on_checked=seen.append)
    assert done.outcome is None and not done.check.ok
    assert {"MLC612", "MLC702"} <= {d.code for d in done.check.diagnostics}
    assert seen == [done.check]
    assert not (spec.parent / ".mlc" / "runs").exists()


@pytest.fixture(scope="module")
def diabetes_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, api.PipelineRun]:
    """The diabetes example with a performance trigger, run once through `api.run`."""
    spec = _copy(DIABETES, tmp_path_factory.mktemp("api") / "diabetes")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(spec.parent)
        done = api.run(spec, [RMSE_TRIGGER], quiet=True)
    return spec, done


@pytest.mark.slow
def test_a_run_and_everything_it_leaves_behind(
    diabetes_run: tuple[Path, api.PipelineRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, done = diabetes_run
    outcome = done.outcome
    assert outcome is not None and outcome.status == "succeeded", outcome and outcome.error
    state = spec.parent / ".mlc"
    records = api.runs(state)
    assert [r["run_id"] for r in records] == [outcome.run_id]
    assert records[0]["status"] == "succeeded"

    (entry,) = api.lineage(state, "diabetes-progression")
    assert (entry["version"], entry["run_id"]) == ("1", outcome.run_id)
    assert api.lineage(state, "no-such-model") == []
    assert api.lineage(state, spec_hash=str(entry["spec_hash"])[:8]) == [entry]

    info = api.cache_info(state)
    assert info.entries > 0 and info.removed_folders == []
    kept = api.cache_gc(state, keep_runs=1, dry_run=True)
    assert (kept.dropped_entries, kept.kept_entries) == (0, info.entries)
    emptied = api.cache_gc(state, keep_runs=0, dry_run=True)
    assert emptied.dropped_entries == info.entries
    assert api.cache_info(state).entries == info.entries  # a dry run removes nothing

    verification = api.audit_verify(state, spec)
    assert verification.outcome.ok, verification.describe()
    log = api.audit_records(state)
    assert api.audit_records(state, last=1) == log[-1:]
    assert verification.outcome.records == len(log)

    # monitor: no monitoring section, so the builder's monitor step; labelled rows scored
    sample = pd.read_csv(next((spec.parent / "data").glob("*.csv"))).sample(120, random_state=4)
    current = tmp_path / "current.csv"
    sample.to_csv(current, index=False)
    result = api.monitor(spec, current, [RMSE_TRIGGER], now=str(records[0]["started"]))
    # manual promotion: no champion, so the newest version whose gate passed
    assert result.model == api.ScoredModel(
        name="diabetes-progression",
        version="1",
        passed=True,
        run_id=outcome.run_id,
        alias=None,
        why="the newest version whose gate passed (there is no champion)",
    )
    assert result.folder == state / "monitor"
    assert json.loads((result.folder / "signal" / "report.json").read_text()) == result.report
    assert result.report["drift"] == []
    perf = result.report["performance"]
    assert perf["rows"] == len(sample) and sorted(perf["values"]) == ["mae", "r2", "rmse"]
    _rmse_matches_the_model(spec, records[0], sample, perf["values"]["rmse"])
    assert [c["kind"] for c in result.decision["checks"]] == ["performance_drop"]
    assert result.retrain == any(c["fired"] for c in result.decision["checks"])

    with pytest.raises(api.MonitorError, match="'9' is neither a version") as info_9:
        api.monitor(spec, current, [RMSE_TRIGGER], model_version="9")
    assert info_9.value.model is None


def _rmse_matches_the_model(
    spec: Path, record: dict[str, Any], sample: pd.DataFrame, reported: float
) -> None:
    """The reported rmse, recomputed with sklearn on the run's candidate model."""
    from sklearn.metrics import mean_squared_error

    from mlc.runtime.context import StepContext
    from mlc.runtime.steps._data import load_model

    ir = api.check(spec, [RMSE_TRIGGER]).ir
    register = ir.first(StepKind.REGISTER)
    assert register is not None
    art = ir.artifact(register.inputs["model"])
    (step,) = [s for s in record["steps"] if s["step_id"] == art.producer]
    ctx = StepContext(project_dir=spec.parent, state_dir=spec.parent / ".mlc")
    model = load_model({"model": step["outputs"][art.name]}, "model", "test", ctx)
    x, y = sample.drop(columns=["progression"]), sample["progression"]
    assert reported == pytest.approx(mean_squared_error(y, model.predict(x)) ** 0.5, rel=1e-9)


def test_no_cli_module_reaches_into_runtime_steps_or_builds_step_params() -> None:
    """The CLI parses, calls `mlc.compiler.api`, prints: it imports no runtime step module,
    nothing of the local executor's internals, and never writes into a step's params."""
    cli = REPO / "compiler" / "cli"
    forbidden = ("mlc.runtime.steps", "mlc.targets.local.executor", "mlc.targets.local.gc")
    problems: list[str] = []
    for path in sorted(cli.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            where = f"{path.name}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                names = []
            problems += [f"{where}: imports {n}" for n in names if n.startswith(forbidden)]
            # a step's params read or written: `x.params`, `something_params[...] = ...`
            if isinstance(node, ast.Attribute) and node.attr == "params":
                problems.append(f"{where}: reads step params")
            if isinstance(node, ast.Name) and node.id.endswith("_params"):
                problems.append(f"{where}: builds step params ({node.id})")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "StepContext":
                problems.append(f"{where}: runs a step")
    assert problems == []
