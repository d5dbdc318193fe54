"""Front-end scaling: load + validate + build the IR of specs with 100, 1,000 and 5,000 steps.

A spec with N data sources joined on a key gives N ingest steps (plus the fixed pipeline), so
the step count grows with N. The time per step should stay roughly flat (near-linear growth).
Usage:

    .venv/bin/python benchmarks/bench_ir_build.py [--sizes 100 1000 5000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from mlc.compiler.ir import build_ir
from mlc.compiler.load import load_spec
from mlc.compiler.validate import validate_spec

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "credit"


def make_spec(folder: Path, sources: int) -> Path:
    """Write the credit example with `sources` CSV sources joined on `applicant_id`."""
    spec: dict[str, Any] = yaml.safe_load((EXAMPLE / "mlc.yaml").read_text())
    spec.pop("defaults", None)
    first = spec["data"]["sources"][0]
    spec["data"]["sources"] = [first] + [
        {
            "name": f"extra_{i:05d}",
            "format": "csv",
            "path": first["path"],
            "join_on": ["applicant_id"],
        }
        for i in range(1, sources)
    ]
    path = folder / f"mlc-{sources}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def front_end(path: Path) -> int:
    loaded = load_spec(path)
    ir = build_ir(validate_spec(loaded))
    return len(ir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    front_end(EXAMPLE / "mlc.yaml")  # warm imports and pydantic's validators
    print(f"# load + validate + build_ir ({args.runs} runs each, median)\n")
    print("| sources | steps | spec KiB | median s | min s | ms per step |")
    print("|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = make_spec(Path(tmp), size)
            steps = front_end(path)
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                front_end(path)
                times.append(time.perf_counter() - start)
            median = statistics.median(times)
            print(
                f"| {size} | {steps} | {path.stat().st_size // 1024} | {median:.3f} | "
                f"{min(times):.3f} | {1000 * median / steps:.3f} |"
            )


if __name__ == "__main__":
    main()
