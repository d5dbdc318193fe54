"""Orchestration overhead of `mlc run`'s executor per step vs a plain script (whole process).

A chain of N steps, each loading a 1,000 x 10 DataFrame from Parquet, adding 1 and saving it,
is run (a) by the local executor on a generated IR (cache, atomic entries, run record, lineage
events, audit records included) and (b) by a plain Python loop writing the same artifacts.
Each is a fresh process, run several times; medians are reported, and the overhead per step is
(median executor - median script) / N.

Usage: .venv/bin/python benchmarks/bench_orchestration.py [--steps 100 500] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"

EXECUTOR = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from local_chain import STEPS, chain_ir
from mlc.targets.local.executor import RunOptions, execute
r = execute(chain_ir({n}), RunOptions(project_dir=Path({project!r}), quiet=True), STEPS)
assert r.status == "succeeded", r.error
"""

SCRIPT = """
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


def _time(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(TESTS))
    from local_chain import make_frame

    print("| steps | plain script (s) | mlc executor (s) | overhead/step (ms) |")
    print("|---|---|---|---|")
    for n in args.steps:
        plain, mlc = [], []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as d:
                make_frame(1000, 10).to_csv(Path(d) / "data.csv", index=False)
                plain.append(_time(SCRIPT.format(project=d, n=n)))
            with tempfile.TemporaryDirectory() as d:
                make_frame(1000, 10).to_csv(Path(d) / "data.csv", index=False)
                mlc.append(_time(EXECUTOR.format(tests=str(TESTS), project=d, n=n)))
        p, m = statistics.median(plain), statistics.median(mlc)
        print(f"| {n} | {p:.2f} | {m:.2f} | {(m - p) / n * 1000:.2f} |", flush=True)


if __name__ == "__main__":
    main()
