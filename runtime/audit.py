"""The audit log: append-only, hash-chained JSON Lines under the project's `.mlc/audit.jsonl`,
anchored outside itself.

Format 2. A line is the canonical JSON of a record's body (`v`, `seq`, `prev`, `when`, `who`,
`event`, `spec_hash`, `git_commit`, `details`) with `"hash":…` (and `"mac":…` when the log is
keyed) spliced in before its closing brace. `hash` is sha256 of the previous hash and the body's
exact bytes as stored: verification hashes the bytes on disk, never JSON parsed and dumped again
(which would absorb, say, a float's last digit). Editing, deleting, reordering any line breaks
the chain at that line; `verify()` names the first broken link.

A chain alone proves nothing about its end: cut records off, empty the file or rewrite it all
with fresh hashes and it is still a chain. So its head (record count and last hash) is kept
outside the log twice: in the checkpoint `.mlc/audit.head` (replaced atomically after every
append) and as the `mlc.audit.head` tag of the MLflow experiment each registration went to (set
by the register step right after its records, moved again at the end of a run that has MLflow
loaded; see `mlc.runtime.audit_anchor`). `verify` compares the log with both and says which one
disagrees: fewer records than a head holds is a truncation, another hash at a head's position a
rewrite, records past the checkpoint were appended behind mlc's back, and a `registration` or
`promotion` that no tracking-store head covers was not written by the register step.

Optional HMAC (`governance.audit.hmac_key` names an entry of `security.secrets`; locally the key
is that environment variable): every record then also carries `mac` = HMAC-SHA256(key, hash).
As each hash covers everything before it, a rewrite that passes needs the key. The variable's
name (never its value) is kept in the checkpoint, so every later writer keys its records too.

Appends take an exclusive `flock` on the log so that two processes never interleave or fork
the chain.

Where the log lives: the project's `.mlc/`, unless `MLC_AUDIT_URI` says otherwise — what cluster
jobs set, since a pod's own folder dies with it. A local folder (a PersistentVolumeClaim mount,
or `file://…`) then holds `audit.jsonl` and `audit.head` in place of `.mlc/`, with the same
locking. Any other fsspec URL (`s3://bucket/audit/credit-risk`) is a mirror: a process with no
local log first fetches the mirror's, appends locally as always, then uploads both files. An
object store has no append or lock, so a mirror takes one writer at a time (a CronJob with
`concurrencyPolicy: Forbid`, a recurring run with `max_concurrency: 1`); concurrent writers
share a folder instead.

Events written by mlc: `compile`, `run.start`, `step.outputs` (the digests of every file a step
wrote), `gate.verdict`, `registration`, `promotion`, `run.end`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import getpass
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AUDIT_FILE = "audit.jsonl"
HEAD_FILE = "audit.head"
FORMAT = 2
GENESIS = "0" * 64
"""`prev` of the first record."""

_TAIL = re.compile(rb',"hash":"([0-9a-f]{64})"(?:,"mac":"([0-9a-f]{64})")?\}\n\Z')


class AuditKeyMissing(OSError):
    """The log is keyed but the key's environment variable is not set.

    An `OSError`, so writers that treat an unwritable log as a warning (`mlc compile`) treat a
    log they may not write alike.
    """


def _body(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=str).encode()


def chain_hash(prev: str, body: bytes) -> str:
    """The hash of a record: sha256 over the previous hash and the body's bytes as stored."""
    return hashlib.sha256(prev.encode() + b"\n" + body).hexdigest()


def mac_of(key: bytes, record_hash: str) -> str:
    """HMAC-SHA256 of a record's hash under the log's key."""
    return hmac.new(key, record_hash.encode(), hashlib.sha256).hexdigest()


def encode_line(body: bytes, record_hash: str, mac: str | None = None) -> bytes:
    """The stored line: the body with `hash` (and `mac`) spliced in before its closing brace."""
    tail = b',"hash":"' + record_hash.encode() + b'"'
    if mac is not None:
        tail += b',"mac":"' + mac.encode() + b'"'
    return body[:-1] + tail + b"}\n"


def split_line(raw: bytes) -> tuple[bytes, str, str | None] | None:
    """(body bytes, hash, mac) of a stored line, or None when it does not end like one."""
    found = _TAIL.search(raw)
    if found is None:
        return None
    mac = found.group(2)
    return (
        raw[: found.start()] + b"}",
        found.group(1).decode(),
        mac.decode() if mac is not None else None,
    )


def key_value(name: str | None) -> bytes | None:
    """The HMAC key held by environment variable `name` (None when unnamed or unset)."""
    if not name:
        return None
    value = os.environ.get(name)
    return value.encode() if value else None


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


AUDIT_URI_ENV = "MLC_AUDIT_URI"


def _uri() -> str:
    return os.environ.get(AUDIT_URI_ENV, "").strip()


def _remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def log_dir(state_dir: str | Path) -> Path:
    """The folder holding the log: `MLC_AUDIT_URI` when it is a local folder, else
    `state_dir` (also the local copy of a remote mirror)."""
    uri = _uri()
    if uri and not _remote(uri):
        return Path(uri.removeprefix("file://"))
    return Path(state_dir)


def audit_path(state_dir: str | Path) -> Path:
    return log_dir(state_dir) / AUDIT_FILE


def head_path(state_dir: str | Path) -> Path:
    return log_dir(state_dir) / HEAD_FILE


def _mirror() -> tuple[Any, str] | None:
    uri = _uri()
    if not uri or not _remote(uri):
        return None
    import fsspec

    fs, root = fsspec.core.url_to_fs(uri)
    return fs, root.rstrip("/")


def pull(state_dir: str | Path) -> None:
    """Fetch the remote mirror's log and head when there is no local log (a fresh pod)."""
    mirror = _mirror()
    if mirror is None or audit_path(state_dir).exists():
        return
    fs, root = mirror
    try:
        for name in (AUDIT_FILE, HEAD_FILE):
            if fs.exists(f"{root}/{name}"):
                Path(state_dir).mkdir(parents=True, exist_ok=True)
                fs.get_file(f"{root}/{name}", str(Path(state_dir) / name))
    except Exception as exc:  # every object store raises its own types
        raise OSError(f"cannot read the audit mirror {_uri()}: {exc}") from exc


def push(state_dir: str | Path) -> None:
    """Upload the log and its head to the remote mirror (the head last: it vouches for the
    log)."""
    mirror = _mirror()
    if mirror is None:
        return
    fs, root = mirror
    try:
        fs.makedirs(root, exist_ok=True)
        for name in (AUDIT_FILE, HEAD_FILE):
            local = Path(state_dir) / name
            if local.exists():
                fs.put_file(str(local), f"{root}/{name}")
    except Exception as exc:
        raise OSError(f"cannot write the audit mirror {_uri()}: {exc}") from exc


def read_head(state_dir: str | Path) -> dict[str, Any] | None:
    """The checkpoint's head (`records`, `hash`, `key`, `stores`); None when there is none.

    Raises:
        ValueError: the checkpoint exists but is not one.
    """
    try:
        raw = head_path(state_dir).read_bytes()
    except FileNotFoundError:
        return None
    head = json.loads(raw)
    if (
        not isinstance(head, dict)
        or not isinstance(head.get("records"), int)
        or not isinstance(head.get("hash"), str)
    ):
        raise ValueError("not an audit head")
    return head


def write_head(state_dir: str | Path, head: dict[str, Any], *, sync: bool = True) -> None:
    """Replace the checkpoint atomically (temp file, fsync unless `sync` is off, rename):
    never half a head."""
    path = head_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{HEAD_FILE}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(json.dumps(head, sort_keys=True, indent=1).encode() + b"\n")
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked(state_dir: str | Path) -> Any:
    """The log opened for appending under its exclusive lock (what every writer holds)."""
    path = audit_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield fh
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _tail(fh: Any) -> tuple[str, int]:
    """(hash of the last record, its `seq`) of an open log; (GENESIS, 0) when empty."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    if size == 0:
        return GENESIS, 0
    block = min(size, 65536)
    while True:
        fh.seek(size - block)
        tail = fh.read(block)
        lines = tail.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or block == size:
            break
        block = min(size, block * 4)
    parts = split_line(lines[-1] + b"\n")
    if parts is not None:
        with contextlib.suppress(ValueError, TypeError):
            seq = json.loads(parts[0]).get("seq")
            if isinstance(seq, int):
                return parts[1], seq
    # A damaged last line: chain onto the damage so verify() still reports it.
    fh.seek(0)
    return hashlib.sha256(lines[-1]).hexdigest(), sum(1 for _ in fh)


def append(
    state_dir: str | Path,
    event: str,
    *,
    spec_hash: str | None = None,
    project_dir: str | Path | None = None,
    details: dict[str, Any] | None = None,
    commit: str | None = None,
    key_name: str | None = None,
    sync: bool = True,
) -> dict[str, Any]:
    """Append one event to the audit log, move the checkpoint, return the written record.

    Args:
        state_dir: the project's `.mlc/` folder.
        event: what happened (`compile`, `run.start`, `gate.verdict`, `registration`, …).
        spec_hash: the resolved spec's hash, when the event concerns a spec.
        project_dir: folder whose git commit is recorded (default: `state_dir`'s parent).
        details: small JSON facts about the event.
        commit: the git commit, when the caller already knows it (saves a `git` call).
        key_name: environment variable holding the HMAC key (the spec's
            `governance.audit.hmac_key`); once given, the checkpoint keeps the name and every
            later append keys its record.
        sync: fsync the log and the checkpoint (off for records written per step: the page
            cache outlives a killed process, and the run's last record syncs them all).

    Raises:
        AuditKeyMissing: the log is keyed and the key's variable is not set.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> append(d, "compile", spec_hash="ab")["seq"]
        1
        >>> verify(d).ok
        True
    """
    if commit is None:
        state = Path(state_dir)
        commit = git_commit(project_dir if project_dir is not None else state.parent)
    pull(state_dir)
    with locked(state_dir) as fh:
        try:
            head = read_head(state_dir) or {}
        except ValueError:
            head = {}
        name = key_name or head.get("key")
        key = key_value(name)
        if name and key is None:
            raise AuditKeyMissing(
                f"the audit log is keyed (governance.audit.hmac_key: {name}) but ${name} is "
                "not set; set it to the key to append"
            )
        prev, last = _tail(fh)
        record: dict[str, Any] = {
            "v": FORMAT,
            "seq": last + 1,
            "prev": prev,
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            "who": who(),
            "event": event,
            "spec_hash": spec_hash,
            "git_commit": commit,
            "details": details or {},
        }
        body = _body(record)
        record["hash"] = chain_hash(prev, body)
        mac = mac_of(key, record["hash"]) if key is not None else None
        fh.seek(0, os.SEEK_END)
        fh.write(encode_line(body, record["hash"], mac))
        fh.flush()
        if sync:
            os.fsync(fh.fileno())
        write_head(
            state_dir,
            {
                "v": FORMAT,
                "records": record["seq"],
                "hash": record["hash"],
                "key": name or None,
                "stores": head.get("stores") or [],
            },
            sync=sync,
        )
    push(state_dir)
    if mac is not None:
        record["mac"] = mac
    return record


@dataclass(frozen=True)
class Verification:
    """Outcome of `verify`: how many records are intact, the first broken link, and where the
    log disagrees with its heads (or, deep, with the files it vouches for)."""

    records: int
    broken_line: int | None = None
    reason: str = ""
    missing: bool = False
    """No log at all: nothing vouches for anything, so this is no pass."""
    findings: tuple[str, ...] = ()
    """Each disagreement with a head, a MAC or (deep) a file, as a sentence naming where."""
    unchecked: str = ""
    """What could not be checked (a keyed log without its key here, a tracking store that
    cannot be read): no pass either."""
    checked: tuple[str, ...] = field(default=())
    """What the log was compared with (for the report)."""

    @property
    def failed(self) -> bool:
        """Tampering or damage was found (as opposed to: could not check)."""
        return self.broken_line is not None or bool(self.findings)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.missing and not self.unchecked

    def describe(self, path: str | Path) -> str:
        if self.missing:
            return (
                f"{path}: no audit log here (expected the one `mlc run` and `mlc compile` "
                "append to)"
            )
        lines = []
        if self.broken_line is not None:
            lines.append(f"{path}:{self.broken_line}: broken link: {self.reason}")
        lines += [f"{path}: {finding}" for finding in self.findings]
        if self.unchecked:
            lines.append(f"{path}: cannot check: {self.unchecked}")
        if not lines:
            against = "".join(f"; {c}" for c in self.checked)
            lines.append(f"{path}: ok, {self.records} records, chain intact{against}")
        return "\n".join(lines)


@dataclass
class _Chain:
    hashes: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    macs: list[str | None] = field(default_factory=list)
    broken_line: int | None = None
    reason: str = ""

    def brake(self, line: int, reason: str) -> _Chain:
        self.broken_line, self.reason = line, reason
        return self


def _read_chain(path: Path, key: bytes | None) -> _Chain:
    chain = _Chain()
    prev = GENESIS
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.endswith(b"\n"):
                return chain.brake(number, "the last record is truncated")
            parts = split_line(raw)
            if parts is None:
                return chain.brake(
                    number,
                    f"not an audit record of format {FORMAT} (no trailing hash; a log written "
                    "by an older mlc: move it aside to start a new one)",
                )
            body, stored, mac = parts
            try:
                record = json.loads(body)
            except ValueError:
                return chain.brake(number, "not valid UTF-8 JSON")
            if not isinstance(record, dict) or record.get("v") != FORMAT:
                return chain.brake(number, f"not an audit record of format {FORMAT}")
            if record.get("prev") != prev:
                return chain.brake(number, "'prev' does not match the record before")
            if record.get("seq") != number:
                return chain.brake(number, f"'seq' is {record.get('seq')!r}, not {number}")
            if chain_hash(prev, body) != stored:
                return chain.brake(number, "content does not match its hash")
            if key is not None:
                if mac is not None and not hmac.compare_digest(mac, mac_of(key, stored)):
                    return chain.brake(
                        number, "its MAC does not match (written without the log's key)"
                    )
                if mac is None and any(chain.macs):
                    return chain.brake(
                        number, "no MAC, though the records before carry one (keyed log)"
                    )
            chain.hashes.append(stored)
            chain.records.append(record)
            chain.macs.append(mac)
            prev = stored
    return chain


def compare_head(label: str, head: dict[str, Any], hashes: list[str], *, exact: bool) -> str:
    """ "" when the log agrees with `head`, else what disagrees (`exact`: the head is the end)."""
    count, want = head.get("records"), head.get("hash")
    have = len(hashes)
    if not isinstance(count, int) or count < 1 or not isinstance(want, str):
        return f"{label} is not a head (records {count!r}, hash {want!r})"
    if count > have:
        return (
            f"{label} holds record {count}, the log has {have}: records were removed "
            "(truncated or emptied)"
        )
    if hashes[count - 1] != want:
        return (
            f"{label} holds hash {want[:12]}… for record {count}, the log has "
            f"{hashes[count - 1][:12]}…: the chain was rewritten"
        )
    if exact and have > count:
        return (
            f"the log has {have - count} record(s) after {label}'s head (record {count}): "
            "appended without moving the checkpoint"
        )
    return ""


ANCHORED_EVENTS = ("registration", "promotion")
"""Events the register step anchors in the tracking store as it writes them."""


def verify(
    state_dir: str | Path,
    *,
    key_name: str | None = None,
    tracking_uris: Iterable[str] = (),
    deep: bool = False,
) -> Verification:
    """Check every record's hash, link and MAC, then the log against its heads.

    Args:
        state_dir: the project's `.mlc/` folder.
        key_name: the HMAC key's environment variable as the spec configures it; when None,
            the one the checkpoint names (a keyed log needs its key to pass).
        tracking_uris: further tracking stores to look for the head in (the project's own
            store under `state_dir` and the ones the checkpoint lists are always read).
        deep: also re-hash the cache entries and registered models the log has digests of.

    A missing log is not `ok` (`missing` is set): an absent file proves nothing.
    """
    path = audit_path(state_dir)
    if not path.is_file():
        return Verification(0, missing=True)
    findings: list[str] = []
    checked: list[str] = []
    hpath = head_path(state_dir)
    try:
        head = read_head(state_dir)
    except ValueError:
        head = None
        findings.append(f"the checkpoint {hpath} is not one (damaged or replaced)")
    else:
        if head is None:
            findings.append(
                f"the checkpoint {hpath} is missing: nothing outside the log vouches for its end"
            )
    name = key_name or (head or {}).get("key")
    key = key_value(name)
    chain = _read_chain(path, key)
    unchecked: list[str] = []
    if name and key is None:
        unchecked.append(
            f"the log is keyed with ${name}, which is not set here, so its MACs were not "
            f"checked (set {name} to the key)"
        )
    elif key is not None and chain.broken_line is None:
        checked.append(f"MACs checked with ${name}")
        if chain.records and chain.macs[-1] is None:
            findings.append(
                f"record {len(chain.records)} carries no MAC though the log is keyed "
                f"(${name}): written without the key"
            )
    if chain.broken_line is None:
        if head is not None:
            problem = compare_head(f"the checkpoint {hpath}", head, chain.hashes, exact=True)
            # No checkpoint is a finding, so an ok always means it agreed: not listed.
            findings += [problem] if problem else []
        elif not chain.records:
            findings.append("the log is empty")
        from mlc.runtime import audit_anchor

        findings += audit_anchor.check_tracking(
            state_dir, head, chain.hashes, chain.records, tracking_uris, checked, unchecked
        )
    if deep:
        from mlc.runtime import audit_anchor

        findings += audit_anchor.check_deep(state_dir, chain.records, checked, unchecked)
    return Verification(
        len(chain.hashes),
        chain.broken_line,
        chain.reason,
        findings=tuple(findings),
        unchecked="; ".join(unchecked),
        checked=tuple(checked),
    )


def read(state_dir: str | Path) -> list[dict[str, Any]]:
    """All records that parse (for display; use `verify` to trust them)."""
    path = audit_path(state_dir)
    out = []
    if path.exists():
        for raw in path.read_bytes().splitlines(keepends=True):
            parts = split_line(raw if raw.endswith(b"\n") else raw + b"\n")
            with contextlib.suppress(ValueError):
                record = json.loads(parts[0] if parts else raw)
                if isinstance(record, dict) and parts is not None:
                    record["hash"] = parts[1]
                    if parts[2] is not None:
                        record["mac"] = parts[2]
                out.append(record)
    return out
