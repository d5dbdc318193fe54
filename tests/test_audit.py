"""The audit log: hash chain, append under concurrency, `mlc audit verify` on a flipped byte."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from mlc.runtime import audit

REPO = Path(__file__).resolve().parent.parent
MLC = [sys.executable, "-c", "from mlc.compiler.cli import main; main()"]


def _fill(state: Path, n: int = 5) -> None:
    for i in range(n):
        audit.append(state, "run.start", spec_hash=f"{i:064x}", details={"i": i})


def test_records_chain_and_carry_who_when_commit(tmp_path: Path) -> None:
    _fill(tmp_path)
    records = audit.read(tmp_path)
    assert [r["details"]["i"] for r in records] == list(range(5))
    assert records[0]["prev"] == audit.GENESIS
    for before, after in itertools.pairwise(records):
        assert after["prev"] == before["hash"]
    assert all(r["who"] and r["when"].endswith("+00:00") for r in records)
    assert audit.verify(tmp_path).ok and audit.verify(tmp_path).records == 5


def test_git_commit_recorded_inside_a_repo(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("x")
    subprocess.run(["git", "-C", str(tmp_path), "add", "f"], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(tmp_path),
            "-c",
            "user.email=a@b",
            "-c",
            "user.name=a",
            "commit",
            "-qm",
            "x",
        ],
        check=True,
    )
    rec = audit.append(tmp_path / ".mlc", "compile")
    assert rec["git_commit"] and len(rec["git_commit"].split("+")[0]) == 40
    assert (
        audit.append(tmp_path / "elsewhere" / ".mlc", "compile", project_dir="/")["git_commit"]
        is None
    )


def test_flipped_byte_edit_and_deletion_are_each_found(tmp_path: Path) -> None:
    _fill(tmp_path)
    path = audit.audit_path(tmp_path)
    good = path.read_bytes()
    lines = good.splitlines(keepends=True)

    data = bytearray(good)
    offset = len(lines[0]) + len(lines[1]) + lines[2].index(b'"run.start"') + 2
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    result = audit.verify(tmp_path)
    assert not result.ok and result.broken_line == 3 and result.records == 2

    record = json.loads(lines[1])
    record["details"]["i"] = 99
    record["hash"] = audit.record_hash(record)  # a forger recomputes the line's own hash
    path.write_bytes(lines[0] + json.dumps(record).encode() + b"\n" + b"".join(lines[2:]))
    result = audit.verify(tmp_path)
    assert result.broken_line == 3 and "prev" in result.reason

    path.write_bytes(b"".join(lines[:1] + lines[2:]))
    assert audit.verify(tmp_path).broken_line == 2


def _append_many(state: str) -> None:
    for i in range(20):
        audit.append(state, "run.end", details={"i": i}, commit="c")


def test_concurrent_appends_keep_one_chain(tmp_path: Path) -> None:
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_append_many, [str(tmp_path)] * 4))
    result = audit.verify(tmp_path)
    assert result.ok and result.records == 80


def test_cli_audit_verify_passes_then_detects_a_flipped_byte(tmp_path: Path) -> None:
    _fill(tmp_path / ".mlc", 3)
    ok = subprocess.run(
        [*MLC, "audit", "verify", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0 and "ok, 3 records" in ok.stdout
    path = audit.audit_path(tmp_path / ".mlc")
    data = bytearray(path.read_bytes())
    data[-20] ^= 0x04
    path.write_bytes(bytes(data))
    bad = subprocess.run(
        [*MLC, "audit", "verify", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1
    assert f"{path}:3: broken link" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_git_is_not_started_outside_a_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[object] = []

    def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        started.append(args)
        return subprocess.CompletedProcess(args, 128, "", "fatal: not a git repository")

    monkeypatch.delenv("GIT_DIR", raising=False)
    monkeypatch.setattr(audit.subprocess, "run", run)
    assert audit.git_commit(tmp_path) is None and started == []
    # A worktree or submodule has a `.git` file, not a folder: that is a repository too.
    (tmp_path / ".git").write_text("gitdir: /nowhere\n")
    assert audit.git_commit(tmp_path) is None and len(started) == 1
