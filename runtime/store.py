"""The project's MLflow store: created and migrated crash-safely, and runs killed mid-way closed.

MLflow creates a sqlite store by running some seventy schema migrations in place, one commit
each, several of them as "copy the table to `_alembic_tmp_<name>`, drop, rename". A process
killed in between leaves a store MLflow can never open again (`table _alembic_tmp_runs already
exists`, a duplicate column, an out-of-date schema). So here:

- a missing local store (`sqlite:///…`) is built ASIDE, in a temp file in the same folder,
  migrated to MLflow's head revision, checked, then renamed into place: a kill at any moment
  leaves either no store or a complete one (plus a temp file the next set-up removes);
- an existing store left half-migrated (leftover `_alembic_tmp_*` tables, an alembic revision
  older than MLflow's head) is mended: one holding nothing (the kill hit its first set-up) is
  rebuilt aside and swapped in; one holding runs or models is copied aside, the copy repaired
  (leftover tables dropped or put back, then the remaining migrations run) and swapped in, the
  original kept beside it as `mlflow.db.pre-repair-<time>`; a copy that cannot be repaired
  leaves the original untouched and raises `StoreError` saying how to repair it by hand.
  Stores are never deleted;
- set-up and repair hold an exclusive lock (`.<db name>.lock` beside the store), so two
  processes never build the same store;
- MLflow runs that mlc started carry the host, pid and process start time of the process that
  started them (`process_tags`); a run still `RUNNING` whose process is gone was killed, and
  `close_killed_runs` marks it `FAILED` with a tag saying why.

A healthy store costs one read-only sqlite query to check (no MLflow import): `mlc run`'s
cached reruns stay fast. Stores other than local sqlite files are the server's business and are
left alone except for closing killed runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import re
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

TMP_PREFIX = "_alembic_tmp_"
"""Alembic's batch mode copies a table to `_alembic_tmp_<table>` while it alters it."""

HOST_TAG = "mlc.host"
PID_TAG = "mlc.pid"
PID_START_TAG = "mlc.pid_start"
MLC_RUN_TAG = "mlc.run_id"
REASON_TAG = "mlc.terminated_reason"

# Tables whose rows are the user's work: a store holding any is repaired, never rebuilt.
_DATA_TABLES = (
    "runs",
    "registered_models",
    "model_versions",
    "logged_models",
    "trace_info",
    "datasets",
)


class StoreError(Exception):
    """The store cannot be set up or repaired; the message names it and says what to do."""


def configured_uri(value: str | None, what: str = "tracking.uri") -> str | None:
    """A configured tracking URI or artifact location, its secret reference resolved here.

    `env:NAME` reads the environment; other references (`vault:…`) are the orchestrator's to
    resolve into the environment first (then name them `env:NAME`).

    Raises:
        StoreError: the reference cannot be resolved here.
    """
    if not value:
        return None
    scheme, sep, name = value.partition(":")
    if scheme == "env" and sep:
        found = os.environ.get(name)
        if not found:
            raise StoreError(f"{what} is {value}, and the environment variable {name} is not set")
        return found
    if scheme in ("vault", "aws-sm", "gcp-sm", "azure-kv") and sep:
        raise StoreError(
            f"{what} is the secret reference {value}, which only an orchestrator resolves: "
            "resolve it into an environment variable and write 'env:NAME'"
        )
    return value


def sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI, else None.

    >>> sqlite_file("sqlite:////tmp/x/mlflow.db").as_posix()
    '/tmp/x/mlflow.db'
    >>> sqlite_file("http://localhost:5000") is None
    True
    """
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    # sqlite:////abs/path is absolute, sqlite:///rel/path relative (SQLAlchemy's rule).
    path = (
        unquote(urlparse(tracking_uri).path)[1:]
        if "?" in tracking_uri
        else unquote(tracking_uri[len(prefix) :])
    )
    if not path or path == ":memory:":
        return None
    return Path(path).resolve()


# -- MLflow's migrations, read without importing MLflow ----------------------------------------

_REVISION = re.compile(r"^revision\s*(?::\s*\w+\s*)?=\s*['\"](\w+)['\"]", re.MULTILINE)
_DOWN = re.compile(r"^down_revision\s*(?::[^=]+)?=\s*(.+)$", re.MULTILINE)


@lru_cache(maxsize=1)
def migrations() -> tuple[str, frozenset[str]]:
    """MLflow's head schema revision and every revision it knows.

    Read from the migration scripts' `revision = …` lines (a few milliseconds) rather than
    through alembic (an import of a second); falls back to alembic when the scripts do not
    name exactly one head.
    """
    spec = importlib.util.find_spec("mlflow")
    if spec is None or not spec.submodule_search_locations:
        raise StoreError("MLflow is not installed; install mlc[ml]")
    folder = Path(next(iter(spec.submodule_search_locations))) / "store/db_migrations/versions"
    revisions: set[str] = set()
    downs: set[str] = set()
    for path in folder.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        rev = _REVISION.search(text)
        down = _DOWN.search(text)
        if rev is None:
            continue
        revisions.add(rev.group(1))
        if down is not None:
            downs.update(re.findall(r"['\"](\w+)['\"]", down.group(1)))
    heads = revisions - downs
    if len(heads) != 1:
        from mlflow.store.db import utils

        # MLflow's helpers carry no annotations: called through `Any`.
        latest: Callable[[], Any] = utils._get_latest_schema_revision
        return str(latest()), frozenset(revisions)
    return next(iter(heads)), frozenset(revisions)


# -- what a store file holds -------------------------------------------------------------------


@dataclass
class StoreState:
    """What one look at a sqlite store file found."""

    revision: str | None
    """`alembic_version`, None when the table is missing or empty."""
    leftovers: list[str] = field(default_factory=list)
    """`_alembic_tmp_*` tables an interrupted migration left."""
    tables: set[str] = field(default_factory=set)
    rows: int = 0
    """Rows of the user's work (runs, models, traces…), leftover copies included."""

    def problem(self, head: str, known: frozenset[str]) -> str | None:
        """Why this store cannot be used as it is, or None when it is complete (or newer than
        this MLflow, which is MLflow's message to give)."""
        if self.leftovers:
            return (
                f"an interrupted schema migration left table(s) {', '.join(self.leftovers)} "
                f"(revision {self.revision or 'none'})"
            )
        if self.revision is None:
            return "its schema was never completed (no alembic revision)"
        if self.revision != head and self.revision in known:
            return f"its schema is at revision {self.revision}, MLflow's head is {head}"
        return None


def inspect_store(db: Path, count: bool = True) -> StoreState:
    """Read a store's revision, leftover tables and (with `count`) amount of data, read-only."""
    with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=5)) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        revision = None
        if "alembic_version" in tables:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = str(row[0]) if row else None
        rows = 0
        for table in _DATA_TABLES if count else ():
            for name in (table, TMP_PREFIX + table):
                if name in tables:
                    rows += int(con.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0])
        leftovers = sorted(t for t in tables if t.startswith(TMP_PREFIX))
    return StoreState(revision=revision, leftovers=leftovers, tables=tables, rows=rows)


# -- set-up and repair -------------------------------------------------------------------------


def ensure(tracking_uri: str, log: Callable[[str], None] | None = None) -> bool:
    """Make the store of `tracking_uri` usable: build a missing local store aside, mend a
    half-migrated one (see the module docstring). Returns True when it built or repaired one.

    Raises:
        StoreError: the store holds data and cannot be repaired automatically.
    """
    db = sqlite_file(tracking_uri)
    if db is None or importlib.util.find_spec("mlflow") is None:
        return False  # without MLflow nothing here opens the store
    head, known = migrations()
    if db.exists() and _healthy(db, head, known):
        return False
    try:
        return _set_up(db, head, known, log)
    except OSError as exc:
        raise StoreError(f"the MLflow store {db} cannot be set up: {exc}") from None


def _set_up(db: Path, head: str, known: frozenset[str], log: Callable[[str], None] | None) -> bool:
    db.parent.mkdir(parents=True, exist_ok=True)
    with _locked(db):
        _clear_temp_files(db)
        if not db.exists():
            _build_aside(db, head)
            return True
        _settle(db)
        state = inspect_store(db)
        problem = state.problem(head, known)
        if problem is None:  # another process mended it while we waited for the lock
            return False
        if state.rows == 0:
            _build_aside(db, head)
            _say(log, f"note: the MLflow store {db} was left half-built ({problem}); rebuilt it")
            return True
        _repair_aside(db, state, head, problem)
        _say(
            log,
            f"note: the MLflow store {db} was left half-migrated ({problem}); repaired it "
            f"(the store as it was is kept as {db.name}.pre-repair-*)",
        )
        return True


def prepare(tracking_uri: str, log: Callable[[str], None] | None = None) -> bool:
    """At the start of a run: mend an existing broken store or remove what a killed set-up left;
    a store that does not exist yet is left to the step that first writes to it."""
    db = sqlite_file(tracking_uri)
    if db is None:
        return False
    if db.exists():
        return ensure(tracking_uri, log)
    if any(db.parent.glob(f".{db.name}.tmp-*")):
        with _locked(db):
            _clear_temp_files(db)
    return False


def _healthy(db: Path, head: str, known: frozenset[str]) -> bool:
    try:
        return inspect_store(db, count=False).problem(head, known) is None
    except sqlite3.OperationalError as exc:
        # Another writer holds it: in use, so set up; MLflow reports the lock if it stays.
        return "locked" in str(exc)
    except sqlite3.DatabaseError:
        return False  # looked at again under the lock, read-write (see `_settle`)


def _settle(db: Path) -> None:
    """Open the store read-write once, so sqlite rolls back the transaction a killed process
    left in its journal before anything reads or replaces the file."""
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as con:
            con.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"the MLflow store {db} cannot be opened as a sqlite database: {exc}; move it "
            "away (mlc builds a new one) or pass --tracking-uri with another store"
        ) from None


def _say(log: Callable[[str], None] | None, text: str) -> None:
    if log is not None:
        log(text)


@contextlib.contextmanager
def _locked(db: Path) -> Iterator[None]:
    """The store's set-up lock: an `flock`, released by the kernel even on `kill -9`."""
    with open(db.parent / f".{db.name}.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _clear_temp_files(db: Path) -> None:
    """Temp stores of killed set-ups (their owners held the lock we now hold, so are gone)."""
    for path in db.parent.glob(f".{db.name}.tmp-*"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _temp_path(db: Path) -> Path:
    return db.parent / f".{db.name}.tmp-{os.getpid()}-{time.monotonic_ns()}"


def _migrate(path: Path, fresh: bool) -> None:
    """Run MLflow's migrations on the sqlite file `path` (the whole set-up when `fresh`)."""
    import logging

    import sqlalchemy
    from mlflow.store.db import utils

    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.WARNING)  # MLflow logs its table set-up at INFO
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    try:
        # MLflow's helpers carry no annotations: called through `Any`.
        migrate: Callable[[Any], Any] = utils._initialize_tables if fresh else utils._upgrade_db
        migrate(engine)
    finally:
        engine.dispose()
        logger.setLevel(level)


def _publish(tmp: Path, db: Path, head: str) -> None:
    """Check the temp store is complete, then rename it over `db` (atomic) and make it last."""
    state = inspect_store(tmp)
    if state.revision != head or state.leftovers:
        raise StoreError(f"building the MLflow store {db} aside gave revision {state.revision}")
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    # A journal beside the old file would be replayed into the new one.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(db.with_name(db.name + "-journal"))
    os.replace(tmp, db)
    dir_fd = os.open(db.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _build_aside(db: Path, head: str) -> None:
    tmp = _temp_path(db)
    try:
        _migrate(tmp, fresh=True)
        _publish(tmp, db, head)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _repair_aside(db: Path, state: StoreState, head: str, problem: str) -> None:
    """Repair a copy of a store holding data, then swap it in, keeping the original."""
    tmp = _temp_path(db)
    try:
        with (
            contextlib.closing(sqlite3.connect(db)) as src,
            contextlib.closing(sqlite3.connect(tmp)) as dst,
        ):
            src.backup(dst)
            for name in state.leftovers:
                original = name[len(TMP_PREFIX) :]
                if original in state.tables:
                    # Killed before the copy replaced the table: the original is intact.
                    dst.execute(f'DROP TABLE "{name}"')
                else:
                    # Killed between dropping the table and renaming the altered copy.
                    dst.execute(f'ALTER TABLE "{name}" RENAME TO "{original}"')
            dst.commit()
        try:
            _migrate(tmp, fresh=False)
            # The original bytes stay, under another name: the store is swapped, not rewritten.
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            keep = db.parent / f"{db.name}.pre-repair-{stamp}"
            with contextlib.suppress(FileExistsError):
                os.link(db, keep)
            _publish(tmp, db, head)
        except StoreError:
            raise
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise StoreError(
                f"the MLflow store {db} was left half-migrated ({problem}) and holds "
                f"{state.rows} row(s) of runs and models, so it is not rebuilt; repairing a "
                f"copy failed: {first}. The store is unchanged: back it up, then run "
                f"'mlflow db upgrade sqlite:///{db}'"
            ) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


# -- runs left RUNNING by killed processes -----------------------------------------------------


def _start_time(pid: int) -> str:
    """The kernel's start time of `pid` (clock ticks since boot), "" where unknown: with the
    pid it names one process, so a recycled pid is not taken for the run's."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # Field 2 (the command) may hold spaces and parentheses; fields after its last ")" do not.
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def process_tags() -> dict[str, str]:
    """Tags naming this process, for an MLflow run it starts."""
    pid = os.getpid()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PID_START_TAG: _start_time(pid)}


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not start or _start_time(pid) in ("", start)


def killed_reason(
    tags: dict[str, str],
    *,
    current_run: str | None = None,
    ended: Callable[[str], bool] | None = None,
) -> str | None:
    """Why a `RUNNING` MLflow run is known to be dead, or None when it may be alive.

    Args:
        tags: the run's tags.
        current_run: the mlc run id of the caller's own run (never closed).
        ended: mlc run id -> True when the run journal knows that run has ended.
    """
    run_id = tags.get(MLC_RUN_TAG)
    if run_id is not None and run_id == current_run:
        return None
    if run_id is not None and ended is not None and ended(run_id):
        return f"mlc run {run_id} ended without finishing this MLflow run (the process was killed)"
    host, pid = tags.get(HOST_TAG), tags.get(PID_TAG, "")
    if (
        host == socket.gethostname()
        and pid.isdigit()
        and int(pid) != os.getpid()
        and not _alive(int(pid), tags.get(PID_START_TAG, ""))
    ):
        return f"process {pid} on {host} that ran it is gone (killed)"
    return None


def _running_from_sqlite(db: Path) -> dict[str, dict[str, str]]:
    with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=30)) as con:
        rows = con.execute(
            "SELECT r.run_uuid, t.key, t.value FROM runs r LEFT JOIN tags t "
            "ON t.run_uuid = r.run_uuid AND t.key IN (?, ?, ?, ?) WHERE r.status = 'RUNNING'",
            (HOST_TAG, PID_TAG, PID_START_TAG, MLC_RUN_TAG),
        ).fetchall()
    out: dict[str, dict[str, str]] = {}
    for run_uuid, key, value in rows:
        tags = out.setdefault(str(run_uuid), {})
        if key is not None:
            tags[str(key)] = str(value)
    return out


def close_killed_runs(
    tracking_uri: str,
    *,
    current_run: str | None = None,
    ended: Callable[[str], bool] | None = None,
    client: Any = None,
    experiment_ids: list[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[str]:
    """Mark `FAILED` the MLflow runs left `RUNNING` by processes that are gone; return their ids.

    A local sqlite store is read directly (MLflow is imported only when there is something to
    close). Any other store needs `client` (an `MlflowClient`) and the `experiment_ids` to look
    in; without them it is left alone.
    """
    db = sqlite_file(tracking_uri)
    running: dict[str, dict[str, str]]
    if db is not None:
        if not db.exists():
            return []
        try:
            running = _running_from_sqlite(db)
        except sqlite3.Error:
            return []
    elif client is not None and experiment_ids:
        running = {
            r.info.run_id: dict(r.data.tags)
            for r in client.search_runs(experiment_ids, "attributes.status = 'RUNNING'")
        }
    else:
        return []
    dead = {
        run: reason
        for run, tags in sorted(running.items())
        if (reason := killed_reason(tags, current_run=current_run, ended=ended)) is not None
    }
    if not dead:
        return []
    if client is None:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    for run, reason in dead.items():
        client.set_tag(run, REASON_TAG, reason[:500])
        client.set_terminated(run, "FAILED")
    _say(
        log,
        f"note: marked {len(dead)} MLflow run(s) left RUNNING by a killed process as FAILED "
        f"({', '.join(dead)})",
    )
    return list(dead)
