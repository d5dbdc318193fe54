"""`kill -9` at random moments of `mlc run`, then reruns: same metrics, nothing left `RUNNING`.

The figure of issue 13 item 3. A copy of `examples/credit` (small overrides so one run takes
seconds) runs once uninterrupted (the baseline); a second copy is killed `--kills` times
(SIGKILL to the run's whole process group), each time at a random moment of a fresh `mlc run`;
the first kill waits for the MLflow store's first set-up (its temp file appearing) and lands
somewhere in its migrations, the second waits for register's MLflow run to be open. After
every kill the next `mlc run` starts on what it left; after the last one a run goes to the
end. Checked at the end (and printed as JSON):

- the final run exits 0 and the registry's `champion` has the baseline's metrics and model hash;
- no MLflow run is `RUNNING`, no run record says `running`, no temp store is left;
- the store is complete (MLflow's head revision, no `_alembic_tmp_*` table).

After each kill it also records where the kill landed (the last step in the run record) and
whether the store existed.

Usage:
    .venv/bin/python benchmarks/kill_runs.py [--kills 20] [--seed 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MLC = [sys.executable, "-c", "from mlc.compiler.cli import main; main()"]
SMALL = ["tuning.trials=2", "tuning.cv_folds=2", "training.model.params.max_iter=20"]
ENV = {**os.environ, "MLC_PSEUDONYM_KEY": "bench-key", "OMP_NUM_THREADS": "1"}


def _project(root: Path, name: str) -> Path:
    dest = root / name
    shutil.copytree(
        REPO / "examples" / "credit", dest, ignore=shutil.ignore_patterns(".mlc", "out")
    )
    return dest


def _run(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MLC, "run", "mlc.yaml", *SMALL],
        cwd=project,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )


def _spawn(project: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*MLC, "run", "mlc.yaml", *SMALL],
        cwd=project,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _kill(proc: subprocess.Popen[bytes]) -> bool:
    """SIGKILL the run's process group; True when it was still running."""
    alive = proc.poll() is None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return alive


def _store_appears(state: Path) -> bool:
    return bool(list(state.glob(".mlflow.db.tmp-*"))) or (state / "mlflow.db").exists()


def _mlflow_run_open(state: Path) -> bool:
    db = state / "mlflow.db"
    if not db.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as con:
            return con.execute("SELECT 1 FROM runs WHERE status = 'RUNNING'").fetchone() is not None
    except sqlite3.Error:
        return False


def _records(state: Path) -> int:
    return len(list((state / "runs").glob("*.json")))


def _where(state: Path, records_before: int) -> str:
    """What the kill interrupted: start-up (no run record yet), or the step after the last
    step result the cache index held."""
    if _records(state) == records_before:
        return "start-up (before the run record)"
    index = state / "cache" / "index.jsonl"
    lines = index.read_text().splitlines() if index.exists() else []
    steps = [json.loads(line).get("step_id") for line in lines if line.strip()]
    return f"after step result '{steps[-1]}'" if steps else "before the first step result"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="work in DIR and keep it")
    args = parser.parse_args()

    from mlc.runtime import store
    from mlc.runtime.steps.register import champion_info

    root = args.keep or Path(tempfile.mkdtemp(prefix="mlc-kill-runs-"))
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    try:
        base = _project(root, "base")
        t0 = time.monotonic()
        first = _run(base)
        whole = time.monotonic() - t0
        if first.returncode != 0:
            sys.exit(f"baseline run failed:\n{first.stderr[-3000:]}")
        expected = champion_info("credit-risk", f"sqlite:///{base / '.mlc' / 'mlflow.db'}")

        killed = _project(root, "killed")
        state = killed / ".mlc"
        db = state / "mlflow.db"
        kills = []
        for n in range(args.kills):
            before = _records(state)
            proc = _spawn(killed)
            started = time.monotonic()
            if n < 2:
                # 0: the store's first set-up (before, MLflow migrated `mlflow.db` in place);
                # 1: while register's MLflow run is open.
                moment = _store_appears if n == 0 else _mlflow_run_open
                while not moment(state) and proc.poll() is None:
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.5))
            else:
                time.sleep(rng.uniform(0.2, whole))
            was_running = _kill(proc)
            kills.append(
                {
                    "at_s": round(time.monotonic() - started, 2),
                    "hit_a_running_run": was_running,
                    "where": _where(state, before),
                    "store_exists": db.exists(),
                    "temp_store_left": bool(list(state.glob(".mlflow.db.tmp-*"))),
                }
            )
            print(json.dumps(kills[-1]), file=sys.stderr, flush=True)

        final = _run(killed)
        got = champion_info("credit-risk", f"sqlite:///{db}")
        with contextlib.closing(sqlite3.connect(db)) as con:
            statuses = [r[0] for r in con.execute("SELECT status FROM runs")]
        records = [json.loads(p.read_text())["status"] for p in (state / "runs").glob("*.json")]
        head, known = store.migrations()
        report = {
            "kills": len(kills),
            "kills_that_hit_a_running_run": sum(k["hit_a_running_run"] for k in kills),
            "first_kill_during_store_setup": kills[0] if kills else None,
            "baseline_seconds": round(whole, 1),
            "final_exit": final.returncode,
            "same_metrics": bool(got and expected and got["metrics"] == expected["metrics"]),
            "same_model_hash": bool(
                got and expected and got["model_hash"] == expected["model_hash"]
            ),
            "champion_version": got and got["version"],
            "mlflow_runs": {s: statuses.count(s) for s in sorted(set(statuses))},
            "run_records": {s: records.count(s) for s in sorted(set(records))},
            "store_complete": store.inspect_store(db).problem(head, known) is None,
            "temp_stores_left": len(list(state.glob(".mlflow.db.tmp-*"))),
            "where_kills_landed": {
                w: [k["where"] for k in kills].count(w) for w in sorted({k["where"] for k in kills})
            },
        }
        print(json.dumps(report, indent=2))
        ok = (
            final.returncode == 0
            and report["same_metrics"]
            and report["same_model_hash"]
            and "RUNNING" not in statuses
            and "running" not in records
            and report["store_complete"]
            and not report["temp_stores_left"]
        )
        if not ok:
            print(final.stderr[-3000:], file=sys.stderr)
            sys.exit(1)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
