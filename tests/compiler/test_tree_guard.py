"""The guard in conftest.py: a test run that leaves a file in the working tree fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.tree import left_behind, snapshot

TESTS = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text("mlflow.db\n.venv/\n")
    (repo / "kept.txt").write_text("kept\n")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    return repo


def test_snapshot_sees_untracked_ignored_and_changed_files(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    before = snapshot(repo)
    (repo / ".venv").mkdir()
    (repo / ".venv" / "x").write_text("tool folder, not a leak")
    assert left_behind(before, snapshot(repo)) == []
    (repo / "mlflow.db").write_bytes(b"")
    (repo / "tmpab12cd34").mkdir()
    (repo / "tmpab12cd34" / "data.csv").write_text("a\n")
    (repo / "kept.txt").write_text("changed\n")
    assert left_behind(before, snapshot(repo)) == ["!! mlflow.db", "?? tmpab12cd34/", "AM kept.txt"]


def test_a_leaking_test_run_fails(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    shutil.copy2(TESTS / "conftest.py", repo / "tests" / "conftest.py")
    (repo / "tests" / "support").mkdir()
    for name in ("__init__.py", "tree.py"):
        shutil.copy2(TESTS / "support" / name, repo / "tests" / "support" / name)
    (repo / "tests" / "test_leak.py").write_text(
        textwrap.dedent(
            """
            from pathlib import Path

            def test_writes_into_the_tree():
                (Path(__file__).resolve().parent.parent / "mlflow.db").write_bytes(b"")
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "changed the working tree" in proc.stdout
    assert "!! mlflow.db" in proc.stdout
