"""How every command finds its project (issue 11 item 9) and takes overrides (item 16).

Run as real processes: the exit codes and the messages are what a user sees. Projects are
copies of the credit example under `tmp_path`; their audit and lineage records are written
through the runtime's own writers, so no `mlc run` is needed to check where commands look.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mlc.runtime import audit, lineage

REPO = Path(__file__).resolve().parents[2]
MLC = REPO / ".venv" / "bin" / "mlc"
CREDIT = REPO / "examples" / "credit"

STATE_COMMANDS = [
    ["runs"],
    ["lineage"],
    ["cache", "info"],
    ["cache", "gc"],
    ["audit", "verify"],
    ["audit", "show"],
]


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
def nowhere(tmp_path: Path) -> Path:
    """A folder with no project at or above it (pytest's tmp folders hold none)."""
    folder = tmp_path / "not-a-project" / "below"
    folder.mkdir(parents=True)
    for above in (folder, *folder.parents):
        assert not (above / "mlc.yaml").exists() and not (above / ".mlc").exists(), above
    return folder


@pytest.fixture
def credit(tmp_path: Path) -> Path:
    project = tmp_path / "credit"
    shutil.copytree(CREDIT, project, ignore=shutil.ignore_patterns(".mlc", "out"))
    return project


def _record(state: Path) -> None:
    """Two audit records and one model lineage record, as `mlc run` would leave them."""
    audit.append(state, "run.start", details={"run_id": "r1"}, commit="c")
    audit.append(state, "run.end", details={"run_id": "r1"}, commit="c")
    lineage.record_model(
        state,
        model_name="credit-risk",
        version="1",
        run_id="r1",
        data_hash="d" * 64,
        spec_hash="s" * 64,
        code_version="mlc test",
        model_hash="m" * 64,
    )


@pytest.mark.parametrize("command", STATE_COMMANDS, ids=" ".join)
def test_no_project_is_an_error_naming_where_it_looked(command: list[str], nowhere: Path) -> None:
    proc = mlc(*command, cwd=nowhere)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"no mlc project at or above '{nowhere}'" in proc.stderr
    assert "mlc.yaml or .mlc/" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (nowhere / ".mlc").exists()


@pytest.mark.parametrize("command", STATE_COMMANDS, ids=" ".join)
def test_a_path_that_does_not_exist_is_an_error(command: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    args = [*command, "-p", missing] if command == ["lineage"] else [*command, missing]
    proc = mlc(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"'{missing}' does not exist" in proc.stderr
    assert "chain intact" not in proc.stdout


def test_audit_verify_without_a_log_is_no_pass(credit: Path) -> None:
    proc = mlc("audit", "verify", cwd=credit)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{credit / '.mlc' / 'audit.jsonl'}: no audit log" in proc.stderr
    assert "ok" not in proc.stdout


def test_commands_walk_up_from_a_subfolder_to_the_project(credit: Path) -> None:
    _record(credit / ".mlc")
    below = credit / "data"
    verify = mlc("audit", "verify", cwd=below)
    assert verify.returncode == 0, verify.stderr
    assert (
        verify.stdout.strip() == f"{credit / '.mlc' / 'audit.jsonl'}: ok, 2 records, chain intact"
    )
    shown = mlc("audit", "show", "--last", "1", cwd=below)
    assert shown.returncode == 0 and " run.end " in shown.stdout
    lines = mlc("lineage", cwd=below)
    assert lines.returncode == 0, lines.stderr
    assert lines.stdout.startswith("credit-risk v1  data dddddddddddd")
    runs = mlc("runs", cwd=below)
    assert runs.returncode == 0 and runs.stdout.strip() == f"no runs under {credit / '.mlc'}"
    info = mlc("cache", "info", "--json", cwd=below)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["cache"] == str(credit / ".mlc" / "cache")


def test_the_spec_file_and_the_folder_name_the_same_project(credit: Path, tmp_path: Path) -> None:
    _record(credit / ".mlc")
    expected = f"{credit / '.mlc' / 'audit.jsonl'}: ok, 2 records, chain intact\n"
    for given in (credit, credit / "mlc.yaml", credit / "env"):
        proc = mlc("audit", "verify", given, cwd=tmp_path)
        assert (proc.returncode, proc.stdout) == (0, expected), (given, proc.stderr)


def test_a_spec_state_dir_is_where_commands_look(credit: Path, tmp_path: Path) -> None:
    spec = credit / "mlc.yaml"
    spec.write_text(
        spec.read_text().replace(
            "targets:\n  ir: {}", "targets:\n  ir: {}\n  local: {state_dir: st}"
        )
    )
    _record(credit / "st")
    proc = mlc("audit", "verify", spec, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{credit / 'st' / 'audit.jsonl'}: ok, 2 records")


def test_lineage_takes_the_project_then_the_model(credit: Path, tmp_path: Path) -> None:
    _record(credit / ".mlc")
    both = mlc("lineage", credit, "credit-risk", cwd=tmp_path)
    assert both.returncode == 0 and both.stdout.startswith("credit-risk v1"), both.stderr
    other = mlc("lineage", credit, "other-model", cwd=tmp_path)
    assert (
        other.returncode == 0
        and other.stdout.strip() == "no lineage records for model 'other-model'"
    )
    # one argument: the model when no such path exists, as `mlc lineage credit-risk` always was
    model_only = mlc("lineage", "credit-risk", cwd=credit)
    assert model_only.returncode == 0 and model_only.stdout.startswith("credit-risk v1")
    flag = mlc("lineage", "credit-risk", "-p", credit / "mlc.yaml", cwd=tmp_path)
    assert flag.returncode == 0 and flag.stdout.startswith("credit-risk v1"), flag.stderr


def test_spec_commands_find_the_spec_from_a_folder_or_the_working_folder(credit: Path) -> None:
    below = credit / "data"
    plain = mlc("validate", cwd=below)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith("../mlc.yaml: ok")
    folder = mlc("validate", credit, cwd=credit.parent)
    assert folder.returncode == 0 and folder.stdout.startswith("credit/mlc.yaml: ok"), folder.stderr
    # an override in first place is an override, not a spec path
    override = mlc("validate", "training.model.params.max_iter=7", cwd=credit)
    assert override.returncode == 0, override.stderr
    typo = mlc("validate", "+nonsense.key=1", cwd=below)
    assert typo.returncode == 2 and "<override>" in typo.stderr


def test_a_spec_command_outside_any_project_says_so(nowhere: Path) -> None:
    proc = mlc("validate", cwd=nowhere)
    assert proc.returncode == 2
    assert f"no mlc project at or above '{nowhere}'" in proc.stderr


def _head(credit: Path) -> Path:
    head = credit / "head.yaml"
    shutil.copyfile(credit / "mlc.yaml", head)
    return head


def test_diff_takes_positional_overrides_like_set(credit: Path) -> None:
    head = _head(credit)
    plain = mlc("diff", "mlc.yaml", head.name, "--format", "json", cwd=credit)
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["policy_violations"] == []
    # the credit example costs about $20/month: a $1 cap is a budget policy violation
    positional = mlc(
        "diff",
        "mlc.yaml",
        head.name,
        "budgets.total_usd_per_month=1",
        "--format",
        "json",
        cwd=credit,
    )
    flag = mlc(
        "diff",
        "mlc.yaml",
        head.name,
        "--set",
        "budgets.total_usd_per_month=1",
        "--format",
        "json",
        cwd=credit,
    )
    assert positional.returncode == flag.returncode == 1, positional.stderr
    assert positional.stdout == flag.stdout
    assert "MLC630" in positional.stdout


def test_plan_takes_positional_overrides(credit: Path) -> None:
    ok = mlc("plan", "mlc.yaml", "-t", "ir", "-o", credit / "out", cwd=credit)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    capped = mlc(
        "plan",
        "mlc.yaml",
        "budgets.total_usd_per_month=1",
        "-t",
        "ir",
        "-o",
        credit / "out",
        cwd=credit,
    )
    assert capped.returncode == 1, capped.stdout + capped.stderr
    assert "<override>:1:1: error[MLC630]" in capped.stdout + capped.stderr


def test_plan_without_target_plans_the_targets_the_spec_names(credit: Path) -> None:
    spec = credit / "mlc.yaml"
    one = mlc("plan", "--format", "json", "-o", credit / "out", cwd=credit)
    assert one.returncode == 0, one.stdout + one.stderr
    assert json.loads(one.stdout)["targets"] == ["ir"]
    spec.write_text(spec.read_text().replace("targets:\n  ir: {}", "targets:\n  ir: {}\n  kfp: {}"))
    two = mlc("plan", spec, "--format", "json", "-o", credit / "out", cwd=credit.parent)
    assert two.returncode == 0, two.stdout + two.stderr
    report = json.loads(two.stdout)
    assert report["targets"] == ["ir", "kfp"]
    planned = {f["target"] for f in report["files"]}
    assert planned == {"ir", "kfp"}


def test_plan_without_target_or_targets_section_says_what_to_do(credit: Path) -> None:
    spec = credit / "mlc.yaml"
    spec.write_text(spec.read_text().replace("targets:\n  ir: {}\n", ""))
    proc = mlc("plan", cwd=credit)
    assert proc.returncode == 2
    assert "names no targets" in proc.stderr and "--target" in proc.stderr


def test_run_exit_codes_are_in_help_and_readme_and_real(credit: Path) -> None:
    help_text = " ".join(mlc("run", "--help", cwd=credit).stdout.split())
    assert "3 a gate failed" in help_text and "4 a step failed" in help_text
    monitor_help = " ".join(mlc("monitor", "--help", cwd=credit).stdout.split())
    assert "10 retraining recommended" in monitor_help
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "`3` a gate failed" in readme and "`4` a step failed" in readme
    # a step that fails (the pseudonymisation key is not set) is exit 4, as documented
    env = {k: v for k, v in os.environ.items() if k != "MLC_PSEUDONYM_KEY"}
    proc = subprocess.run(
        [str(MLC), "run", "-q", "tuning.trials=2"],
        cwd=credit,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "error: step 'features'" in proc.stderr
