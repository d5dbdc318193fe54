"""`mlc diff` over the corpus of spec pairs in tests/diff_pairs/<case>/{base,head,expected}."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mlc.compiler.diagnostics import DiagnosticError
from mlc.compiler.diff import diff_specs, render_json, render_markdown, render_text

REPO = Path(__file__).resolve().parents[2]
PAIRS = REPO / "tests" / "diff_pairs"
GOLDENS = REPO / "tests" / "goldens" / "diff"
CASES = sorted(p.name for p in PAIRS.iterdir() if (p / "expected.json").exists())
MLC = [str(REPO / ".venv" / "bin" / "mlc")]


@pytest.fixture(autouse=True)
def _at_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    # locations are shown relative to the working folder; goldens need a fixed one
    monkeypatch.chdir(REPO)


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert sum(1 for c in CASES if c.startswith("nochange-")) >= 5


@pytest.mark.parametrize("case", CASES)
def test_pair(case: str) -> None:
    folder = PAIRS / case
    expected = json.loads((folder / "expected.json").read_text())
    report = diff_specs(f"tests/diff_pairs/{case}/base.yaml", f"tests/diff_pairs/{case}/head.yaml")
    got = sorted(
        ({"path": c.path, "kind": c.kind, "risk": c.risk, "rule": c.rule} for c in report.changes),
        key=lambda e: e["path"],
    )
    assert got == expected["changes"]
    assert report.highest_risk == expected["highest_risk"]
    assert report.semantic_change is bool(expected["changes"])
    assert report.exit_code == (1 if expected["highest_risk"] == "high" else 0)
    for change in report.changes:
        if change.path.startswith("derived"):
            # computed from several keys: no single place to point at
            assert change.base_location is None and change.head_location is None
            continue
        if change.kind != "added":
            assert change.base_location is not None or not report.base_valid
        if change.kind != "removed":
            assert change.head_location is not None
            assert change.head_location.file.endswith("head.yaml")


def test_change_carries_old_new_and_both_locations() -> None:
    report = diff_specs(
        "tests/diff_pairs/traffic-raised/base.yaml", "tests/diff_pairs/traffic-raised/head.yaml"
    )
    (change,) = report.changes
    assert (change.old, change.new) == ([10, 50, 100], [50, 100])
    assert change.facet == "traffic" and change.section == "deployment"
    assert str(change.base_location).startswith("tests/diff_pairs/traffic-raised/base.yaml:")
    assert change.head_location is not None and change.head_location.line > 1


def test_invalid_base_reports_its_diagnostics_and_still_diffs() -> None:
    report = diff_specs(
        "tests/diff_pairs/base-invalid/base.yaml", "tests/diff_pairs/base-invalid/head.yaml"
    )
    assert not report.base_valid and report.head_valid
    assert report.base_diagnostics and report.base_diagnostics[0].location is not None
    assert [c.path for c in report.changes] == ["training.resources.cpu"]
    md = render_markdown(report)
    assert "base does not validate" in md and "two" in md


def test_literal_secret_is_redacted_in_every_format(tmp_path: Path) -> None:
    base = (PAIRS / "nochange-identical" / "base.yaml").read_text()
    secret = "AKIA" + "ABCDEFGHIJKLMNOP"
    head = base.replace(
        "tags: {team: risk, domain: lending}",
        f"tags: {{team: risk, domain: lending, key: {secret}}}",
    )
    (tmp_path / "base.yaml").write_text(base)
    (tmp_path / "head.yaml").write_text(head)
    report = diff_specs(str(tmp_path / "base.yaml"), str(tmp_path / "head.yaml"))
    assert any(d.code == "MLC610" for d in report.policy_violations)
    # A literal secret is refused at validation now, so the head side is invalid (exit 2).
    assert report.exit_code == 2
    for text in (render_markdown(report), render_json(report), render_text(report)):
        assert secret not in text
        assert "redacted" in text


def test_target_outputs_are_compared() -> None:
    report = diff_specs(
        "tests/diff_pairs/model-params-changed/base.yaml",
        "tests/diff_pairs/model-params-changed/head.yaml",
        targets=["ir"],
    )
    assert [(f.target, f.path, f.kind) for f in report.files] == [("ir", "ir.json", "changed")]
    assert report.files[0].summary.startswith("+")
    assert {s.step for s in report.steps} >= {"train", "tune"}
    same = diff_specs(
        "tests/diff_pairs/nochange-comments/base.yaml",
        "tests/diff_pairs/nochange-comments/head.yaml",
        targets=["ir", "github"],
    )
    assert same.files == [] and same.steps == []


def test_cost_delta_follows_replicas() -> None:
    report = diff_specs(
        "tests/diff_pairs/replicas-raised/base.yaml", "tests/diff_pairs/replicas-raised/head.yaml"
    )
    delta = report.cost_delta()
    assert delta is not None and report.base_cost is not None
    serving = report.base_cost.item("serving")
    assert serving is not None
    # one more replica: exactly one more replica's month
    assert delta["serving"] == pytest.approx(serving.monthly_usd)


def test_org_policy_file_adds_risk_rules(tmp_path: Path) -> None:
    policy = tmp_path / "org.yaml"
    policy.write_text(
        "risk_rules:\n  - {id: org-params, risk: high, paths: ['training.model.**'],"
        " message: model changes need the model-risk board}\n"
    )
    report = diff_specs(
        "tests/diff_pairs/model-params-changed/base.yaml",
        "tests/diff_pairs/model-params-changed/head.yaml",
        policy_files=[policy],
    )
    assert [(c.rule, c.risk) for c in report.changes] == [("org-params", "high")]
    policy.write_text("risk_rules:\n  - {id: broken, risk: severe, paths: [x]}\n")
    with pytest.raises(DiagnosticError) as err:
        diff_specs(
            "tests/diff_pairs/model-params-changed/base.yaml",
            "tests/diff_pairs/model-params-changed/head.yaml",
            policy_files=[policy],
        )
    assert err.value.diagnostics[0].code == "MLC621"
    assert "risk_rules[0]" in str(err.value) and "org.yaml" in str(err.value)


GOLDEN_CASES = (
    "traffic-raised",
    "nochange-reordered-keys",
    "pii-feature-added",
    "base-invalid",
    "new-data-source",
)


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_markdown_golden(case: str, update_goldens: bool) -> None:
    report = diff_specs(
        f"tests/diff_pairs/{case}/base.yaml", f"tests/diff_pairs/{case}/head.yaml", targets=["ir"]
    )
    text = render_markdown(report)
    golden = GOLDENS / f"{case}.md"
    if update_goldens or not golden.exists():
        golden.write_text(text)
    assert text == golden.read_text()
    assert text == render_markdown(
        diff_specs(
            f"tests/diff_pairs/{case}/base.yaml",
            f"tests/diff_pairs/{case}/head.yaml",
            targets=["ir"],
        )
    )


# -- git sides and the command line --------------------------------------------------------------


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.fail("git is required for mlc diff --base")
    project = tmp_path / "repo" / "ml"
    shutil.copytree(REPO / "examples" / "credit", project, ignore=shutil.ignore_patterns("data"))
    _git(project.parent, "init", "-q", "-b", "main")
    _git(project.parent, "add", ".")
    _git(project.parent, "commit", "-q", "-m", "base")
    return project


def test_git_ref_diff_with_overlays(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo.parent)
    report = diff_specs("", "ml/mlc.yaml", base_ref="main")
    assert not report.changes and report.base_label == "main:ml/mlc.yaml"
    # change only the overlay: the resolved spec changes, the main file does not
    (repo / "env" / "dev.yaml").write_text(
        "tuning:\n  trials: 9\ndeployment:\n  autoscaling: "
        "{min_replicas: 1, max_replicas: 2, "
        "target_utilization: 70}\n"
    )
    report = diff_specs("", "ml/mlc.yaml", base_ref="main")
    (change,) = report.changes
    assert change.path == "tuning.trials" and (change.old, change.new) == (6, 9)
    assert str(change.base_location).startswith("main:ml/env/dev.yaml:")
    assert str(change.head_location).startswith("ml/env/dev.yaml:")
    same = diff_specs("git-ref:main:ml/mlc.yaml", "ml/mlc.yaml")
    assert [c.path for c in same.changes] == ["tuning.trials"]


def test_git_errors_are_diagnostics(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo.parent)
    with pytest.raises(DiagnosticError) as err:
        diff_specs("", "ml/mlc.yaml", base_ref="no-such-branch")
    assert err.value.diagnostics[0].code == "MLC640"
    (repo / "new.yaml").write_text((repo / "mlc.yaml").read_text())
    with pytest.raises(DiagnosticError) as err:
        diff_specs("", "ml/new.yaml", base_ref="main")
    assert err.value.diagnostics[0].code == "MLC641"


def test_cli_exit_codes_and_formats(repo: Path) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    run = subprocess.run(
        [*MLC, "diff", "--base", "main", "mlc.yaml", "--format", "markdown"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert "No semantic change" in run.stdout
    text = (repo / "mlc.yaml").read_text().replace("steps: [10, 50, 100]", "steps: [50, 100]")
    (repo / "mlc.yaml").write_text(text)
    run = subprocess.run(
        [*MLC, "diff", "--base", "main", "mlc.yaml", "--format", "json"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 1, run.stderr
    data = json.loads(run.stdout)
    assert data["highest_risk"] == "high" and data["changes"][0]["rule"] == "traffic-share-raised"
    run = subprocess.run(
        [*MLC, "diff", "--base", "nope", "mlc.yaml"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 2 and "error[MLC640]" in run.stderr and "Traceback" not in run.stderr
    run = subprocess.run([*MLC, "diff", "mlc.yaml"], cwd=repo, capture_output=True, text=True)
    assert run.returncode == 2 and "--base" in run.stderr
