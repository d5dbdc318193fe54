"""Whole-process `mlc diff` of two versions of the example against `mlc validate` of one.

The head version raises canary traffic, lowers a gate and moves the region (a review with
high-risk changes, a policy violation and a cost delta), so the diff does its full work. Runs are
interleaved, each a fresh process (imports count, as for a user); reports medians. Usage:

    .venv/bin/python benchmarks/bench_diff.py [--runs 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "credit"
MLC = str(REPO / ".venv" / "bin" / "mlc")


def run(cmd: list[str], ok: tuple[int, ...]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True)
    elapsed = time.perf_counter() - start
    if done.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        head_dir = Path(tmp) / "credit"
        shutil.copytree(EXAMPLE, head_dir, ignore=shutil.ignore_patterns("data"))
        spec = head_dir / "mlc.yaml"
        spec.write_text(
            spec.read_text()
            .replace("steps: [10, 50, 100]", "steps: [50, 100]")
            .replace("threshold: 0.80", "threshold: 0.70")
            .replace("region: eu-west-1", "region: us-east-1")
        )
        base = str(EXAMPLE / "mlc.yaml")
        validate = [MLC, "validate", base]
        diff = [MLC, "diff", base, str(spec), "--format", "markdown"]
        run(validate, (0,))
        run(diff, (1,))
        times: dict[str, list[float]] = {"validate": [], "diff": []}
        for _ in range(args.runs):
            times["validate"].append(run(validate, (0,)))
            times["diff"].append(run(diff, (1,)))
    v, d = statistics.median(times["validate"]), statistics.median(times["diff"])
    print(f"runs: {args.runs} each, interleaved")
    print(f"| `mlc validate examples/credit/mlc.yaml` | {v:.3f} s |")
    print(f"| `mlc diff <example> <changed copy> --format markdown` | {d:.3f} s |")
    print(f"| ratio | {d / v:.2f}x (bar: <= 2x) |")


if __name__ == "__main__":
    main()
