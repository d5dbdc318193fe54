"""Whole-process `mlc compile -t terraform -t kserve -t monitoring` against `mlc validate`.

Both run the example spec as fresh processes (start-up and imports included), several times;
the median of each is reported with their ratio (the issue's bar: at most 2x).

    .venv/bin/python benchmarks/bench_infra_compile.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "credit" / "mlc.yaml"
MLC = Path(sys.executable).parent / "mlc"


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    validate, compile_ = [], []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(runs):  # interleaved, so drift in machine load hits both alike
            validate.append(timed([str(MLC), "validate", str(SPEC)]))
            compile_.append(
                timed(
                    [
                        str(MLC),
                        "compile",
                        str(SPEC),
                        "-t",
                        "terraform",
                        "-t",
                        "kserve",
                        "-t",
                        "monitoring",
                        "-o",
                        out,
                    ]
                )
            )
    v, c = statistics.median(validate), statistics.median(compile_)
    print(f"runs: {runs}")
    print(f"mlc validate                                   median {v:.3f} s")
    print(f"mlc compile -t terraform -t kserve -t monitoring median {c:.3f} s")
    print(f"ratio {c / v:.2f}x (bar: <= 2x)")


if __name__ == "__main__":
    main()
