"""Whole-process `mlc compile --target kfp` against kfp's own DSL (define + compile).

1. The credit example: `mlc compile` vs `benchmarks/kfp_baseline_dsl.py` (the same pipeline
   written by hand with kfp's DSL).
2. Generated pipelines with N extra steps (N ingest sources, as a model per segment would give):
   mlc vs the DSL script with `--segments N`.

Each case runs several times as a fresh process; the median is reported.
Usage: python benchmarks/bench_kfp.py [--runs 5] [--sizes 100,1000,5000] [--dsl-max 1000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MLC = [str(REPO / ".venv" / "bin" / "mlc")]
CREDIT = REPO / "examples" / "credit"


def _time(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _segment_spec(folder: Path, n: int) -> Path:
    text = (CREDIT / "mlc.yaml").read_text()
    sources = "".join(
        f"    - name: seg{i}\n      format: csv\n      path: data/applications.csv\n"
        "      join_on: [applicant_id]\n"
        for i in range(n)
    )
    text = text.replace(
        "      path: data/applications.csv\n", "      path: data/applications.csv\n" + sources, 1
    )
    text = text.replace("defaults:\n  - _self_\n  - env: dev\n", "")
    spec = folder / f"seg{n}.yaml"
    spec.write_text(text)
    (folder / "data").is_symlink() or (folder / "data").symlink_to(CREDIT / "data")
    return spec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument(
        "--dsl-max",
        type=int,
        default=1000,
        help="largest size to run kfp's DSL at (it grows quadratically)",
    )
    args = parser.parse_args()
    py = str(REPO / ".venv/bin/python")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        mlc = _time(
            [*MLC, "compile", str(CREDIT / "mlc.yaml"), "-t", "kfp", "-o", str(out / "o")],
            args.runs,
        )
        dsl = _time(
            [py, str(REPO / "benchmarks/kfp_baseline_dsl.py"), str(out / "b.yaml")], args.runs
        )
        rows.append(("credit example", mlc, dsl))
        for n in (int(s) for s in args.sizes.split(",") if s):
            spec = _segment_spec(out, n)
            runs = max(1, args.runs if n <= 1000 else args.runs // 2)
            mlc = _time([*MLC, "compile", str(spec), "-t", "kfp", "-o", str(out / f"o{n}")], runs)
            dsl = (
                _time(
                    [
                        py,
                        str(REPO / "benchmarks/kfp_baseline_dsl.py"),
                        str(out / f"b{n}.yaml"),
                        "--segments",
                        str(n),
                    ],
                    max(1, runs // 2),
                )
                if n <= args.dsl_max
                else float("nan")
            )
            rows.append((f"+{n} steps", mlc, dsl))
    print("| case | mlc compile -t kfp (s) | kfp DSL define+compile (s) | DSL / mlc |")
    print("|---|---|---|---|")
    for name, m, d in rows:
        ratio = f"{d / m:.2f}x" if d == d else "not run"
        dtext = f"{d:.2f}" if d == d else "not run"
        print(f"| {name} | {m:.2f} | {dtext} | {ratio} |")


if __name__ == "__main__":
    main()
