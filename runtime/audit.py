"""The audit log: append-only, hash-chained JSON Lines under the project's `.mlc/audit.jsonl`.

Every record carries the hash of the record before it (`prev`) and its own hash over its
canonical JSON, so editing, deleting or reordering any line breaks the chain at that line;
`verify()` names the first broken link. Appends take an exclusive `flock` on the log so that two
processes never interleave or fork the chain.

Events written by mlc: `compile`, `run.start`, `run.end`, `gate.verdict`, `registration`,
`promotion`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import getpass
import hashlib
import json
import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AUDIT_FILE = "audit.jsonl"
GENESIS = "0" * 64
"""`prev` of the first record."""


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=str).encode()


def record_hash(record: dict[str, Any]) -> str:
    """sha256 of a record's canonical JSON without its own `hash` field."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(_canonical(body)).hexdigest()


def who() -> str:
    """The acting user: `MLC_USER` when set (CI bots), else the login name, with the host."""
    user = os.environ.get("MLC_USER")
    if not user:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = f"uid:{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _in_git_work_tree(path: str | Path) -> bool:
    # `.git` is a folder in a clone and a file in a worktree or submodule; either marks a repo.
    here = Path(path).resolve()
    if "GIT_DIR" in os.environ:
        return True
    return any((folder / ".git").exists() for folder in (here, *here.parents))


def git_commit(path: str | Path) -> str | None:
    """The commit checked out at `path` (with `+dirty` when tracked files changed), or None.

    Outside any repository git is not started at all (two processes, ~10 ms, per run).
    """
    if not _in_git_work_tree(path):
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.strip()
    return commit + ("+dirty" if dirty.stdout.strip() else "")


def audit_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / AUDIT_FILE


def _last_hash(fh: Any) -> str:
    """Hash of the last record in an open log (reads backwards from the end)."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    if size == 0:
        return GENESIS
    block = min(size, 65536)
    while True:
        fh.seek(size - block)
        tail = fh.read(block)
        lines = tail.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or block == size:
            break
        block = min(size, block * 4)
    try:
        last: dict[str, Any] = json.loads(lines[-1])
        return str(last["hash"])
    except (ValueError, KeyError):
        # A damaged last line: chain onto the damage so verify() still reports it.
        return hashlib.sha256(lines[-1]).hexdigest()


def append(
    state_dir: str | Path,
    event: str,
    *,
    spec_hash: str | None = None,
    project_dir: str | Path | None = None,
    details: dict[str, Any] | None = None,
    commit: str | None = None,
) -> dict[str, Any]:
    """Append one event to the audit log and return the written record.

    Args:
        state_dir: the project's `.mlc/` folder.
        event: what happened (`compile`, `run.start`, `gate.verdict`, `registration`, …).
        spec_hash: the resolved spec's hash, when the event concerns a spec.
        project_dir: folder whose git commit is recorded (default: `state_dir`'s parent).
        details: small JSON facts about the event.
        commit: the git commit, when the caller already knows it (saves a `git` call).

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> append(d, "compile", spec_hash="ab")["event"]
        'compile'
        >>> verify(d).ok
        True
    """
    path = audit_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    if commit is None:
        commit = git_commit(project_dir if project_dir is not None else path.parent.parent)
    with open(path, "ab+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            prev = _last_hash(fh)
            record: dict[str, Any] = {
                "prev": prev,
                "when": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
                "who": who(),
                "event": event,
                "spec_hash": spec_hash,
                "git_commit": commit,
                "details": details or {},
            }
            record["hash"] = record_hash(record)
            fh.seek(0, os.SEEK_END)
            fh.write(_canonical(record) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return record


@dataclass(frozen=True)
class Verification:
    """Outcome of `verify`: how many records are intact, and the first broken link if any."""

    records: int
    broken_line: int | None = None
    reason: str = ""
    missing: bool = False
    """No log at all: nothing vouches for anything, so this is no pass."""

    @property
    def ok(self) -> bool:
        return self.broken_line is None and not self.missing

    def describe(self, path: str | Path) -> str:
        if self.missing:
            return (
                f"{path}: no audit log here (expected the one `mlc run` and `mlc compile` "
                "append to)"
            )
        if self.ok:
            return f"{path}: ok, {self.records} records, chain intact"
        return f"{path}:{self.broken_line}: broken link: {self.reason}"


def verify(state_dir: str | Path) -> Verification:
    """Check every record's hash and its link to the record before; report the first break.

    A missing log is not `ok` (`missing` is set): an absent file proves nothing.
    """
    path = audit_path(state_dir)
    if not path.is_file():
        return Verification(0, missing=True)
    prev = GENESIS
    count = 0
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.endswith(b"\n"):
                return Verification(count, number, "the last record is truncated")
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as exc:
                return Verification(count, number, f"not valid JSON ({exc.msg})")
            except ValueError:
                return Verification(count, number, "not valid UTF-8 JSON")
            if not isinstance(record, dict) or "hash" not in record:
                return Verification(count, number, "not an audit record")
            if record.get("prev") != prev:
                return Verification(count, number, "'prev' does not match the record before")
            if record_hash(record) != record["hash"]:
                return Verification(count, number, "content does not match its hash")
            prev = record["hash"]
            count += 1
    return Verification(count)


def read(state_dir: str | Path) -> list[dict[str, Any]]:
    """All records that parse (for display; use `verify` to trust them)."""
    path = audit_path(state_dir)
    out = []
    if path.exists():
        for raw in path.read_bytes().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(raw))
    return out
