"""A `kill -9` at any moment leaves a usable MLflow store and no run `RUNNING` (issue 13 item 3).

Real processes and the real MLflow sqlite store: the half-migrated stores here are made by
MLflow's own set-up (`_initialize_tables`: the initial tables, then its alembic migrations)
killed with SIGKILL at a chosen SQL statement, the way a user's `kill -9` left them.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlc.runtime import store
from mlc.runtime.steps.register import champion_info
from mlc.targets.local.journal import close_interrupted, has_ended

REPO = Path(__file__).resolve().parents[2]
MLC = [sys.executable, "-c", "from mlc.compiler.cli import main; main()"]
SMALL = ["tuning.trials=2", "tuning.cv_folds=2", "training.model.params.max_iter=20"]
ENV = {**os.environ, "MLC_PSEUDONYM_KEY": "test-key", "OMP_NUM_THREADS": "1"}

# MLflow's in-place set-up, SIGKILLed just before the first statement that starts with argv[2].
_KILLED_SETUP = r"""
import os, signal, sys
import sqlalchemy
from mlflow.store.db import utils
from mlflow.store.tracking.dbmodels.initial_models import Base

db, trigger, with_rows = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
engine = sqlalchemy.create_engine(f"sqlite:///{db}")

@sqlalchemy.event.listens_for(engine, "before_cursor_execute")
def _kill(conn, cursor, statement, *args):
    if " ".join(statement.split()).startswith(trigger):
        os.kill(os.getpid(), signal.SIGKILL)

Base.metadata.create_all(engine)
if with_rows:
    with engine.begin() as con:
        con.exec_driver_sql(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage) "
            "VALUES (1, 'kept', '/tmp/kept', 'active')"
        )
        con.exec_driver_sql(
            "INSERT INTO runs (run_uuid, name, source_type, user_id, status, start_time, "
            "lifecycle_stage, artifact_uri, experiment_id) VALUES ("
            "'0123456789abcdef0123456789abcdef', 'kept-run', 'LOCAL', 'someone', 'FINISHED', "
            "1, 'active', '/tmp/kept/r', 1)"
        )
utils._upgrade_db(engine)
"""

# Opens the store as mlc's register does, starts a run naming this process, then waits.
_RUN_AND_WAIT = r"""
import sys, time
from mlflow import MlflowClient
from mlc.runtime import store

uri, name = sys.argv[1], sys.argv[2]
store.ensure(uri)
client = MlflowClient(tracking_uri=uri)
exp = client.get_experiment_by_name("waiting")
exp_id = exp.experiment_id if exp else client.create_experiment("waiting")
run = client.create_run(exp_id, tags={**store.process_tags(), "mlc.run_id": name})
print(run.info.run_id, flush=True)
time.sleep(300)
"""


# register, SIGKILLed once the version exists but before any alias moved.
_REGISTER_KILLED = r"""
import json, os, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
import mlflow
from test_register import PARAMS, _inputs, _run

def _die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

mlflow.MlflowClient.set_registered_model_alias = _die
tmp = Path(sys.argv[1])
locs = _inputs(tmp, 1, True, 0.8)
print(json.dumps(locs), flush=True)
_run(tmp, locs, "killed", params={"model": None, "tuning_storage": None, **PARAMS})
"""


def _uri(db: Path) -> str:
    return f"sqlite:///{db}"


def _killed_setup(db: Path, trigger: str, with_rows: bool = False) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_SETUP, str(db), trigger, "1" if with_rows else "0"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def _mlflow_opens(db: Path) -> subprocess.CompletedProcess[str]:
    """MLflow's own client on the store, in a fresh process (as the next `mlc run` would)."""
    code = (
        "import sys; from mlflow import MlflowClient; "
        "c = MlflowClient(tracking_uri=sys.argv[1]); print(len(c.search_experiments()))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, _uri(db)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _complete(db: Path) -> bool:
    head, known = store.migrations()
    return store.inspect_store(db).problem(head, known) is None


def _statuses(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as con:
        return dict(con.execute("SELECT run_uuid, status FROM runs").fetchall())


def test_store_killed_mid_migration_with_nothing_in_it_is_rebuilt(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    _killed_setup(db, "DROP TABLE tags")  # the altered copy made, the original not yet dropped
    state = store.inspect_store(db)
    assert state.leftovers == ["_alembic_tmp_tags"] and state.rows == 0
    broken = tmp_path / "copy.db"
    shutil.copy(db, broken)
    # What users hit before: MLflow itself can never open such a store again.
    assert _mlflow_opens(broken).returncode != 0

    notes: list[str] = []
    assert store.ensure(_uri(db), notes.append) is True
    assert _complete(db) and "rebuilt" in notes[0] and "_alembic_tmp_tags" in notes[0]
    opened = _mlflow_opens(db)
    assert opened.returncode == 0, opened.stderr[-2000:]
    assert store.ensure(_uri(db)) is False  # complete now: nothing more to do
    assert not list(tmp_path.glob(".mlflow.db.tmp-*"))


def test_store_with_runs_killed_mid_migration_is_repaired_and_kept(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    # Killed as the altered copy of `runs` was about to replace it (sqlite rolls the DROP
    # back with the copy's rows; the copy's table stays).
    _killed_setup(db, "ALTER TABLE _alembic_tmp_runs RENAME TO runs", with_rows=True)
    state = store.inspect_store(db)
    assert state.leftovers == ["_alembic_tmp_runs"] and state.rows >= 1
    broken = tmp_path / "copy.db"
    shutil.copy(db, broken)
    assert _mlflow_opens(broken).returncode != 0
    original = db.read_bytes()

    notes: list[str] = []
    assert store.ensure(_uri(db), notes.append) is True
    assert _complete(db) and "repaired" in notes[0]
    kept = list(tmp_path.glob("mlflow.db.pre-repair-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == original  # nothing of the user's lost

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=_uri(db))
    run = client.get_run("0123456789abcdef0123456789abcdef")
    assert run.info.run_name == "kept-run" and run.info.status == "FINISHED"
    assert client.get_experiment_by_name("kept") is not None


def test_store_with_data_that_cannot_be_repaired_is_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    store.ensure(_uri(db))
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=_uri(db))
    client.create_run(client.create_experiment("precious"))
    with sqlite3.connect(db) as con:
        # The last migration ran but its revision was never recorded: re-running it fails
        # (its table exists), the way a kill between the two leaves a store.
        con.execute("UPDATE alembic_version SET version_num = ?", (_before_head(),))
    before = db.read_bytes()

    with pytest.raises(store.StoreError) as err:
        store.ensure(_uri(db))
    message = str(err.value)
    assert str(db) in message and "not rebuilt" in message and "mlflow db upgrade" in message
    assert db.read_bytes() == before
    assert not list(tmp_path.glob(".mlflow.db.tmp-*"))


def _before_head() -> str:
    """The revision MLflow's last migration starts from."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    script = ScriptDirectory.from_config(_get_alembic_config(db_url=""))
    down = script.get_revision(store.migrations()[0]).down_revision
    assert isinstance(down, str)
    return down


def test_set_up_killed_at_random_moments_leaves_no_store_or_a_complete_one(
    tmp_path: Path,
) -> None:
    db = tmp_path / "mlflow.db"
    rng = random.Random(7)
    code = "import sys; from mlc.runtime import store; store.ensure(sys.argv[1])"
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", code, _uri(db)])
        try:
            deadline = time.monotonic() + 120
            # Wait for the set-up to begin (the temp store appears), then kill it somewhere
            # in the migrations or just after.
            while not list(tmp_path.glob(".mlflow.db.tmp-*")) and proc.poll() is None:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 1.2))
        finally:
            proc.kill()
            proc.wait()
        assert not db.exists() or _complete(db)
        if db.exists():
            db.unlink()
    assert store.ensure(_uri(db)) is True and _complete(db)
    assert not list(tmp_path.glob(".mlflow.db.tmp-*"))  # the killed set-ups' files are gone


def test_registration_cut_short_by_a_kill_is_finished_by_the_next_run(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _REGISTER_KILLED, str(tmp_path), str(REPO / "tests" / "runtime")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    locs = json.loads(proc.stdout.splitlines()[0])
    from mlflow import MlflowClient
    from test_register import PARAMS, _run

    from mlc.runtime import audit

    uri = f"sqlite:///{tmp_path / '.mlc' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    (version,) = client.search_model_versions("name = 'toy'")
    assert version.tags["mlc.registration"] == "pending" and not version.aliases

    params = {"model": None, "tuning_storage": None, **PARAMS}
    again = _run(tmp_path, locs, "again", params=params)
    # Before: "identical to registered version 1", no alias ever set, no audit record.
    assert again["version"] == "1" and again["new"] is True
    assert again["aliases"] == ["challenger", "champion"]
    assert str(client.get_model_version_by_alias("toy", "champion").version) == "1"
    assert client.get_model_version("toy", "1").tags["mlc.registration"] == "complete"
    events = [(r["event"], r["details"].get("version")) for r in audit.read(tmp_path / ".mlc")]
    assert ("registration", "1") in events and ("promotion", "1") in events
    assert len(client.search_model_versions("name = 'toy'")) == 1
    third = _run(tmp_path, locs, "third", params=params)
    assert third["new"] is False and third["aliases"] == ["challenger", "champion"]


def test_runs_of_killed_processes_are_marked_failed_and_live_ones_kept(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    uri = _uri(db)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RUN_AND_WAIT, uri, name], stdout=subprocess.PIPE, text=True
        )
        for name in ("killed", "alive")
    ]
    try:
        assert procs[0].stdout is not None and procs[1].stdout is not None
        killed_run = procs[0].stdout.readline().strip()
        alive_run = procs[1].stdout.readline().strip()
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
        assert _statuses(db) == {killed_run: "RUNNING", alive_run: "RUNNING"}

        notes: list[str] = []
        assert store.close_killed_runs(uri, log=notes.append) == [killed_run]
        assert _statuses(db) == {killed_run: "FAILED", alive_run: "RUNNING"}
        assert killed_run in notes[0]
        from mlflow import MlflowClient

        reason = MlflowClient(tracking_uri=uri).get_run(killed_run).data.tags[store.REASON_TAG]
        assert f"process {procs[0].pid}" in reason and "gone" in reason
        assert store.close_killed_runs(uri) == []  # once
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_a_recycled_pid_is_not_taken_for_the_run_s_process() -> None:
    here = socket.gethostname()
    parent = str(os.getppid())
    start = store.process_tags()[store.PID_START_TAG]
    assert start  # Linux: /proc gives the start time
    alive = {store.HOST_TAG: here, store.PID_TAG: parent, store.PID_START_TAG: ""}
    assert store.killed_reason(alive) is None
    recycled = {**alive, store.PID_START_TAG: "1"}  # the pid now names another process
    assert store.killed_reason(recycled) is not None
    elsewhere = {**recycled, store.HOST_TAG: here + "-other"}
    assert store.killed_reason(elsewhere) is None  # another machine's: not ours to judge
    ended = {"mlc.run_id": "r1"}
    assert store.killed_reason(ended, ended=lambda run: run == "r1") is not None
    assert store.killed_reason(ended, current_run="r1", ended=lambda run: True) is None


def test_killed_run_records_are_rewritten_as_interrupted(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for run_id, status, pid in (
        ("r-killed", "running", dead.pid),
        ("r-done", "succeeded", dead.pid),
        ("r-now", "running", os.getpid()),
    ):
        body = {"run_id": run_id, "status": status, "pid": pid, "error": None}
        (runs / f"{run_id}.json").write_text(json.dumps(body))
    assert close_interrupted(tmp_path, "r-now") == ["r-killed"]
    killed = json.loads((runs / "r-killed.json").read_text())
    assert killed["status"] == "interrupted" and "interrupted" in killed["error"]
    assert json.loads((runs / "r-now.json").read_text())["status"] == "running"
    ended = has_ended(tmp_path, "r-now")
    assert ended("r-killed") and ended("r-done") and not ended("r-now") and not ended("nope")


def _mlc(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MLC, *args], cwd=project, env=ENV, capture_output=True, text=True, timeout=900
    )


def _spawn(project: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*MLC, "run", "mlc.yaml", *SMALL],
        cwd=project,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # so the kill takes the run's worker processes too
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_kill_9_at_random_moments_then_rerun_gives_the_uninterrupted_run(tmp_path: Path) -> None:
    def project(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(
            REPO / "examples" / "credit", dest, ignore=shutil.ignore_patterns(".mlc", "out")
        )
        return dest

    base = project("base")
    t0 = time.monotonic()
    first = _mlc(base, "run", "mlc.yaml", *SMALL)
    whole = time.monotonic() - t0
    assert first.returncode == 0, first.stderr[-3000:]
    expected = champion_info("credit-risk", f"sqlite:///{base / '.mlc' / 'mlflow.db'}")
    assert expected is not None

    killed = project("killed")
    state = killed / ".mlc"
    db = state / "mlflow.db"
    rng = random.Random(13)

    def running_in_mlflow() -> bool:
        try:
            return "RUNNING" in _statuses(db).values()
        except sqlite3.Error:
            return False

    # Kill 1 lands in the store's first set-up (before, MLflow migrated `mlflow.db` in place),
    # kill 2 while register's MLflow run is open, kill 3 anywhere in a run.
    moments = [
        lambda: bool(list(state.glob(".mlflow.db.tmp-*"))) or db.exists(),
        running_in_mlflow,
        None,
    ]
    for moment in moments:
        proc = _spawn(killed)
        try:
            if moment is None:
                time.sleep(rng.uniform(0.5, whole))
                continue
            deadline = time.monotonic() + 600
            while not moment() and proc.poll() is None:
                assert time.monotonic() < deadline
                time.sleep(0.005)
            assert proc.poll() is None, "the run ended before the moment to kill it"
            time.sleep(rng.uniform(0.0, 0.5))
        finally:
            _kill(proc)

    final = _mlc(killed, "run", "mlc.yaml", *SMALL)
    assert final.returncode == 0, final.stderr[-3000:]
    got = champion_info("credit-risk", f"sqlite:///{db}")
    assert got is not None
    assert got["metrics"] == expected["metrics"] and got["model_hash"] == expected["model_hash"]
    statuses = _statuses(db)
    assert "RUNNING" not in statuses.values() and "FAILED" in statuses.values()
    with sqlite3.connect(db) as con:
        reasons = con.execute("SELECT value FROM tags WHERE key = ?", (store.REASON_TAG,))
        assert any("killed" in r[0] for r in reasons)
    records = json.loads(_mlc(killed, "runs", "--json").stdout)
    assert records[0]["status"] == "succeeded"
    assert "running" not in {r["status"] for r in records}
    on_disk = [json.loads(p.read_text())["status"] for p in (state / "runs").glob("*.json")]
    assert "running" not in on_disk
    assert not list(state.glob(".mlflow.db.tmp-*"))
