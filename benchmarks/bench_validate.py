"""Whole-process start-up of `mlc validate`, beside the interpreter's own baselines.

Runs each command as a fresh process (so imports count, as they do for a user), several times,
and reports the median and the spread. Usage:

    .venv/bin/python benchmarks/bench_validate.py [--runs 15] [--spec examples/credit/mlc.yaml]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def time_command(cmd: list[str], runs: int) -> list[float]:
    """Wall-clock seconds of `runs` fresh processes (after one unmeasured warm-up run)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, check=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--spec", default="examples/credit/mlc.yaml")
    args = parser.parse_args()
    python = sys.executable
    mlc = str(Path(python).with_name("mlc"))
    commands = {
        "python -c pass": [python, "-c", "pass"],
        'python -c "import pydantic"': [python, "-c", "import pydantic"],
        f"mlc validate {args.spec}": [mlc, "validate", args.spec],
    }
    print(
        f"# mlc validate start-up ({args.runs} runs each, {platform.python_version()}, "
        f"{os.cpu_count()} CPUs)\n"
    )
    print("| command | median s | min s | max s |")
    print("|---|---:|---:|---:|")
    for label, cmd in commands.items():
        times = time_command(cmd, args.runs)
        print(
            f"| `{label}` | {statistics.median(times):.3f} | {min(times):.3f} | {max(times):.3f} |"
        )


if __name__ == "__main__":
    main()
