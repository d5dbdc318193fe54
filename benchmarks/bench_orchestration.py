"""Orchestration overhead per step: mlc's local executor and Kedro vs plain scripts (whole process).

A chain of N steps, each loading a 1,000 x 10 DataFrame, adding 1 and saving it, run as:

- `plain-parquet`: a plain Python loop writing the artifacts mlc's steps write (Parquet through
  `mlc.runtime.artifacts`, the project's venv);
- `mlc`: the local executor on a generated IR with the same step code (cache keys, atomic cache
  entries with per-file hashes, run record, OpenLineage events and audit records included);
- `plain-pickle`: a plain loop pickling each DataFrame (Kedro's venv);
- `kedro`: Kedro's `SequentialRunner` on the same chain with a `PickleDataset` per artifact
  (Kedro's venv, `--kedro-python`; skipped when not given or missing);
- `mlc-before` (with `--before DIR`): the executor modules found in DIR (an older
  `targets/local/`, e.g. `git archive HEAD targets/local | tar -x -C /tmp/old`), same harness.

Every run is a fresh process started after `sync` (so no run pays for flushing the previous
one's writes); the variants run interleaved, `--runs` times each, and medians are
reported. Overhead per step is (median variant - median of its plain script) / N; the median
of the per-round differences (each round runs the variants back to back) is printed beside it.

`--in-process` adds the executor's own time per step measured inside one process: `execute()`
minus the time spent in the step functions (no start-up, no plain-script baseline).

Usage:
    .venv/bin/python benchmarks/bench_orchestration.py [--steps 100 500] [--runs 5] \
        [--kedro-python /tmp/kedro-venv/bin/python] [--before /tmp/old/targets/local] \
        [--in-process]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"

MLC = """
import sys
sys.path.insert(0, {tests!r})
import mlc.targets.local as local
if {local!r}:
    local.__path__[:] = [{local!r}]
from pathlib import Path
from support.local_chain import STEPS, chain_ir
from mlc.targets.local.executor import RunOptions, execute
r = execute(chain_ir({n}), RunOptions(project_dir=Path({project!r}), quiet=True), STEPS)
assert r.status == "succeeded" and r.executed == {n} + 1, r.error
"""

PLAIN_PARQUET = """
from pathlib import Path
import pandas as pd
from mlc.runtime import artifacts
root = Path({project!r}) / "plain"
df = pd.read_csv(Path({project!r}) / "data.csv")
artifacts.save_dataframe(str(root / "ingest"), df)
prev = str(root / "ingest")
for i in range({n}):
    df = artifacts.load_dataframe(prev) + 1.0
    loc = str(root / f"s{{i:04d}}")
    artifacts.save_dataframe(loc, df)
    prev = loc
"""

PLAIN_PICKLE = """
import pickle
from pathlib import Path
import pandas as pd
root = Path({project!r}) / "plain"
root.mkdir()
df = pd.read_csv(Path({project!r}) / "data.csv")
(root / "ingest.pkl").write_bytes(pickle.dumps(df))
prev = root / "ingest.pkl"
for i in range({n}):
    df = pickle.loads(prev.read_bytes()) + 1.0
    loc = root / f"s{{i:04d}}.pkl"
    loc.write_bytes(pickle.dumps(df))
    prev = loc
"""

KEDRO = """
import logging
from pathlib import Path
import pandas as pd
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner
from kedro_datasets.pickle import PickleDataset

root = Path({project!r}) / "kedro"

def ingest(path):
    return pd.read_csv(path)

def add(df):
    return df + 1.0

names = ["ingest"] + [f"s{{i:04d}}" for i in range({n})]
nodes = [node(lambda: ingest(Path({project!r}) / "data.csv"), None, "ingest", name="ingest")]
nodes += [node(add, names[i], names[i + 1], name=names[i + 1]) for i in range({n})]
catalog = DataCatalog({{n: PickleDataset(filepath=str(root / f"{{n}}.pkl")) for n in names}})
SequentialRunner().run(Pipeline(nodes), catalog)
assert (root / f"{{names[-1]}}.pkl").exists()
"""


INPROCESS = """
import json, sys, time
sys.path.insert(0, {tests!r})
from pathlib import Path
from support.local_chain import STEPS, chain_ir
from mlc.targets.local.executor import RunOptions, execute
inside = [0.0]
def timed(fn):
    def run(*args):
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            inside[0] += time.perf_counter() - t0
    return run
steps = {{kind: timed(fn) for kind, fn in STEPS.items()}}
ir = chain_ir({n})
t0 = time.perf_counter()
r = execute(ir, RunOptions(project_dir=Path({project!r}), quiet=True), steps)
total = time.perf_counter() - t0
assert r.status == "succeeded", r.error
print(json.dumps({{"total": total, "inside": inside[0]}}))
"""


def _inprocess(n: int, runs: int) -> None:
    """The executor's own time per step: `execute()` minus the time inside step functions."""
    from support.local_chain import make_frame

    per_step = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            make_frame(1000, 10).to_csv(Path(d) / "data.csv", index=False)
            code = INPROCESS.format(tests=str(TESTS), project=d, n=n)
            out = subprocess.run(
                [sys.executable, "-c", code], check=True, capture_output=True, text=True
            )
            doc = json.loads(out.stdout.strip().splitlines()[-1])
            per_step.append((doc["total"] - doc["inside"]) / (n + 1) * 1000)
    print(
        f"<!-- n={n} in-process executor time outside the steps: "
        f"{statistics.median(per_step):.3f} ms/step (median of {runs}; "
        f"min {min(per_step):.3f}, max {max(per_step):.3f}) -->",
        flush=True,
    )


RETRIED: list[str] = []
"""Runs killed by a signal and run again (reported at the end)."""


def _time(python: str, code: str) -> float:
    # Start every run with the disk's writeback done: otherwise a variant pays for flushing
    # the previous variant's tens of MB of Parquet while it runs.
    os.sync()
    t0 = time.perf_counter()
    done = subprocess.run(
        [python, "-c", code], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    seconds = time.perf_counter() - t0
    if done.returncode < 0 and len(RETRIED) < 3:
        # pyarrow sometimes aborts at interpreter exit on this box ("terminate called without
        # an active exception", seen in the plain script too): run it again, and say so.
        RETRIED.append(f"signal {-done.returncode}: {done.stderr.decode().strip()[-200:]}")
        return _time(python, code)
    if done.returncode != 0:
        raise SystemExit(f"{python} failed ({done.returncode}):\n{done.stderr.decode()[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kedro-python", default="", help="python of a venv with kedro")
    parser.add_argument("--before", default="", help="an older targets/local/ to compare")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="also time the executor inside one process (execute() minus the steps' own time)",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(TESTS))
    from support.local_chain import make_frame

    variants = [
        ("plain-parquet", sys.executable, PLAIN_PARQUET),
        ("mlc", sys.executable, MLC.replace("{local!r}", "''")),
    ]
    if args.before:
        variants.append(("mlc-before", sys.executable, MLC.replace("{local!r}", repr(args.before))))
    if args.kedro_python and Path(args.kedro_python).exists():
        variants += [
            ("plain-pickle", args.kedro_python, PLAIN_PICKLE),
            ("kedro", args.kedro_python, KEDRO),
        ]
    print(
        "| steps | plain parquet (s) | mlc (s) | mlc overhead/step (ms) "
        "| plain pickle (s) | Kedro (s) | Kedro overhead/step (ms) | Kedro / mlc overhead |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in args.steps:
        times: dict[str, list[float]] = {name: [] for name, _, _ in variants}
        for _ in range(args.runs):
            for name, python, code in variants:
                with tempfile.TemporaryDirectory() as d:
                    make_frame(1000, 10).to_csv(Path(d) / "data.csv", index=False)
                    try:
                        seconds = _time(python, code.format(tests=str(TESTS), project=d, n=n))
                    except SystemExit as exc:
                        raise SystemExit(f"variant {name}, {n} steps: {exc}") from None
                    times[name].append(seconds)
        med = {name: statistics.median(v) for name, v in times.items()}
        mlc_ms = (med["mlc"] - med["plain-parquet"]) / n * 1000
        if "mlc-before" in med:
            before_ms = (med["mlc-before"] - med["plain-parquet"]) / n * 1000
            print(f"<!-- n={n} mlc-before {med['mlc-before']:.2f}s: {before_ms:.2f} ms/step -->")
        row = f"| {n} | {med['plain-parquet']:.2f} | {med['mlc']:.2f} | {mlc_ms:.2f} "
        if "kedro" in med:
            kedro_ms = (med["kedro"] - med["plain-pickle"]) / n * 1000
            ratio = f"{kedro_ms / mlc_ms:.1f}x" if mlc_ms > 0 else "n/a"
            row += f"| {med['plain-pickle']:.2f} | {med['kedro']:.2f} | {kedro_ms:.2f} | {ratio} |"
        else:
            row += "| - | - | - | - |"
        print(row, flush=True)
        spread = {k: f"{min(v):.2f}-{max(v):.2f}" for k, v in times.items()}
        print(f"<!-- n={n} min-max: {spread} -->", flush=True)
        # Each round runs the variants back to back, so a slow spell of the disk or a busy
        # neighbour hits a round's pair alike: the median of per-round differences is steadier
        # than the difference of medians when the spread is wider than the effect.
        paired = {
            variant: statistics.median(
                (a - b) / n * 1000 for a, b in zip(times[variant], times[base], strict=True)
            )
            for variant, base in (
                ("mlc", "plain-parquet"),
                ("mlc-before", "plain-parquet"),
                ("kedro", "plain-pickle"),
            )
            if variant in times
        }
        text = ", ".join(f"{k} {v:.2f} ms/step" for k, v in paired.items())
        print(f"<!-- n={n} median of per-round differences: {text} -->", flush=True)
        if args.in_process:
            _inprocess(n, args.runs)


if __name__ == "__main__":
    main()
    if RETRIED:
        print(f"<!-- runs repeated after a signal: {RETRIED} -->")
