"""The audit log: hash chain, append under concurrency, `mlc audit verify` on a flipped byte."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from mlc.runtime import audit

REPO = Path(__file__).resolve().parents[2]
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
    record.pop("hash")
    record["details"]["i"] = 99
    body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    # A forger recomputes the line's own hash: the next line's link breaks.
    forged = audit.encode_line(body, audit.chain_hash(record["prev"], body))
    path.write_bytes(lines[0] + forged + b"".join(lines[2:]))
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
    assert bad.returncode == 5
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


def test_hash_covers_the_stored_bytes_and_the_checkpoint_follows(tmp_path: Path) -> None:
    _fill(tmp_path, 2)
    raw = audit.audit_path(tmp_path).read_bytes().splitlines(keepends=True)[-1]
    record = json.loads(raw)
    body = raw[: raw.index(b',"hash":')] + b"}"
    # Independent of mlc: sha256 over the previous hash, a newline and the body's bytes.
    expected = hashlib.sha256(record["prev"].encode() + b"\n" + body).hexdigest()
    assert record["hash"] == expected and record["seq"] == 2
    assert audit.read_head(tmp_path) == {
        "v": 2,
        "records": 2,
        "hash": expected,
        "key": None,
        "stores": [],
    }
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_missing_checkpoint_fails_verification(tmp_path: Path) -> None:
    _fill(tmp_path, 2)
    audit.head_path(tmp_path).unlink()
    result = audit.verify(tmp_path)
    assert result.failed and "checkpoint" in result.findings[0] and "missing" in result.findings[0]


def test_keyed_log_macs_every_record_and_needs_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLC_TEST_AUDIT_KEY", "s3cret")
    audit.append(tmp_path, "run.start", commit="c", key_name="MLC_TEST_AUDIT_KEY")
    # Later writers that do not know the spec key their records too (the checkpoint names it).
    second = audit.append(tmp_path, "compile", commit="c")
    expected = hmac.new(b"s3cret", second["hash"].encode(), hashlib.sha256).hexdigest()
    assert second["mac"] == expected
    assert audit.verify(tmp_path).ok
    assert "s3cret" not in audit.head_path(tmp_path).read_text()

    monkeypatch.delenv("MLC_TEST_AUDIT_KEY")
    unchecked = audit.verify(tmp_path)
    assert not unchecked.ok and not unchecked.failed and "MLC_TEST_AUDIT_KEY" in unchecked.unchecked
    with pytest.raises(audit.AuditKeyMissing, match=r"\$MLC_TEST_AUDIT_KEY is not set"):
        audit.append(tmp_path, "compile", commit="c")

    monkeypatch.setenv("MLC_TEST_AUDIT_KEY", "another")
    wrong = audit.verify(tmp_path)
    assert wrong.broken_line == 1 and "MAC" in wrong.reason


def test_cli_audit_verify_deep_and_exit_codes_in_help() -> None:
    shown = subprocess.run(
        [*MLC, "audit", "verify", "--help"], capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0
    text = " ".join(shown.stdout.split())
    assert "--deep" in text and "5 it does not verify" in text and "2 no project" in text


def test_a_registration_no_tracking_store_anchors_is_no_pass(tmp_path: Path) -> None:
    _fill(tmp_path, 1)
    audit.append(tmp_path, "registration", details={"model": "m", "version": "1"}, commit="c")
    result = audit.verify(tmp_path)
    assert result.failed
    assert (
        "record 2 (registration) lies past every tracking-store head (none found)"
        in (result.findings[0])
    )
