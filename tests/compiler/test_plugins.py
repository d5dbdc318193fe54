"""Target plugins: discovery through entry points, the conformance kit, broken and unknown ones.

The out-of-tree plugin `tests/plugins/mlc-target-markdown` is installed into the environment by
`scripts/setup-dev.sh` (as any third-party target would be) and must be found like a built-in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlc.compiler.diagnostics import DiagnosticError
from mlc.compiler.registry import TargetRegistry
from mlc.targets.ir import IRTarget
from mlc.targets.testing import TargetConformance

REPO = Path(__file__).resolve().parents[2]
CREDIT = REPO / "examples" / "credit" / "mlc.yaml"
MLC = Path(sys.executable).with_name("mlc")  # the console script of this environment

try:
    from mlc_target_markdown import MarkdownTarget
except ImportError:  # pragma: no cover - the plugin is part of the dev install
    pytest.fail(
        "the test plugin is not installed: run scripts/setup-dev.sh "
        "(pip install -e tests/plugins/mlc-target-markdown)",
        pytrace=False,
    )


def _mlc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MLC), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO,
        timeout=120,
    )


class TestMarkdown(TargetConformance):
    target = MarkdownTarget


class TestMarkdownOnCredit(TargetConformance):
    target = MarkdownTarget
    spec_path = CREDIT
    options = {"title": "Credit | risk", "include_operations": False}


class TestIR(TargetConformance):
    target = IRTarget


def test_plugin_is_listed_by_mlc_targets() -> None:
    proc = _mlc("targets", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["markdown"]["realises"] == ["model_card"]
    assert rows["markdown"]["description"] == MarkdownTarget.description
    assert "ir" in rows


def test_plugin_entry_point_names_its_distribution() -> None:
    entry = TargetRegistry.from_entry_points().entries["markdown"]
    assert entry.dist is not None and entry.dist.name == "mlc-target-markdown"
    assert entry.value == "mlc_target_markdown:MarkdownTarget"


def test_plugin_compiles_through_the_cli(tmp_path: Path, credit_copy: Path) -> None:
    proc = _mlc("compile", str(credit_copy), "-t", "markdown", "-o", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    summary = (tmp_path / "out" / "markdown" / "SUMMARY.md").read_text()
    assert summary.startswith("# credit-risk\n")
    assert "| train | train | pipeline |" in summary


def test_markdown_escapes_table_cells() -> None:
    from mlc_target_markdown import MarkdownOptions, render_summary

    from mlc.compiler.api import check

    ir = check(CREDIT).ir
    text = render_summary(ir, MarkdownOptions(title="a | b", include_operations=False))
    assert text.startswith("# a | b\n")
    assert "| deploy |" not in text  # operations layer left out on request
    assert "| train | train | pipeline |" in text


def _broken_dist(root: Path, error: str = "raise ImportError('needs libfoo 2.0')") -> Path:
    """A distribution whose entry point fails to import, visible through `sys.path`."""
    (root / "mlc_target_broken.py").write_text(f"{error}\n")
    info = root / "mlc_target_broken-0.3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mlc-target-broken\nVersion: 0.3.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[mlc.targets]\nbroken = mlc_target_broken:BrokenTarget\n"
    )
    return root


def test_broken_plugin_is_an_error_naming_its_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(_broken_dist(tmp_path)))
    registry = TargetRegistry.from_entry_points()
    assert "broken" in registry.names()
    with pytest.raises(DiagnosticError) as info:
        registry.get("broken")
    (diag,) = info.value.diagnostics
    assert diag.code == "MLC402"
    assert "mlc-target-broken" in diag.message
    assert "ImportError: needs libfoo 2.0" in diag.message
    assert "mlc_target_broken:BrokenTarget" in diag.hint
    # The other targets still load: one broken plugin is not an unknown target for the rest.
    assert registry.get("markdown").name == "markdown"


def test_broken_plugin_through_the_cli(tmp_path: Path) -> None:
    _broken_dist(tmp_path, "import no_such_module_for_mlc_tests")
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    }
    proc = _mlc("compile", str(CREDIT), "-t", "broken", "-o", str(tmp_path / "out"), env=env)
    assert proc.returncode == 2, proc.stderr
    assert "error[MLC402]" in proc.stderr
    assert "'mlc-target-broken'" in proc.stderr
    assert "ModuleNotFoundError" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_target_gets_did_you_mean(tmp_path: Path) -> None:
    registry = TargetRegistry.from_entry_points()
    with pytest.raises(DiagnosticError) as info:
        registry.get("markdwn")
    (diag,) = info.value.diagnostics
    assert diag.code == "MLC401"
    assert diag.hint == "did you mean 'markdown'?"
    proc = _mlc("compile", str(CREDIT), "-t", "markdwn", "-o", str(tmp_path))
    assert proc.returncode == 2
    assert "error[MLC401]: unknown target 'markdwn'" in proc.stderr
    assert "did you mean 'markdown'?" in proc.stderr


_KIT_RUN = """
from kit_bad_targets import (
    EscapingPathTarget, GoodTarget, HashOrderTarget, LaxOptionsTarget, MutatingTarget,
    UnlocatedCheckTarget,
)
from kit_heavy_target import HeavyTarget
from mlc.targets.testing import TargetConformance


class TestGood(TargetConformance):
    target = GoodTarget


class TestHashOrder(TargetConformance):
    target = HashOrderTarget


class TestMutating(TargetConformance):
    target = MutatingTarget


class TestEscaping(TargetConformance):
    target = EscapingPathTarget


class TestLax(TargetConformance):
    target = LaxOptionsTarget


class TestUnlocated(TargetConformance):
    target = UnlocatedCheckTarget


class TestHeavy(TargetConformance):
    target = HeavyTarget
"""

# Which kit tests each broken target must fail (and every other kit test must pass).
_KIT_EXPECTED = {
    "TestGood": set(),
    "TestHashOrder": {"test_emit_is_deterministic_across_processes"},
    "TestMutating": {"test_emit_does_not_mutate_ir"},
    "TestEscaping": {"test_emit_files", "test_compile_writes_manifest"},
    "TestLax": {"test_options_model_is_strict"},
    "TestUnlocated": {"test_check_returns_diagnostics"},
    "TestHeavy": {"test_module_imports_light"},
}


@pytest.mark.slow
def test_kit_catches_broken_targets(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    (tmp_path / "test_kit_run.py").write_text(_KIT_RUN)
    report = tmp_path / "report.xml"
    data = Path(__file__).resolve().parents[1] / "plugins_data"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(data), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "test_kit_run.py",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            "-o",
            "addopts=",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=900,
    )
    assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    failed: dict[str, set[str]] = {name: set() for name in _KIT_EXPECTED}
    ran: dict[str, int] = dict.fromkeys(_KIT_EXPECTED, 0)
    for case in ET.parse(report).getroot().iter("testcase"):
        cls = case.get("classname", "").rsplit(".", 1)[-1]
        ran[cls] += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed[cls].add(case.get("name", ""))
        assert case.find("skipped") is None, f"{cls}.{case.get('name')} was skipped"
    kit_tests = {n for n in dir(TargetConformance) if n.startswith("test_")}
    assert all(count == len(kit_tests) for count in ran.values()), ran
    assert failed == _KIT_EXPECTED, proc.stdout[-6000:]
