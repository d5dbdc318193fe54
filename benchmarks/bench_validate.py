"""Whole-process start-up of `mlc validate`, beside the interpreter's own baselines.

Runs each command as a fresh process (so imports count, as they do for a user), interleaving
the commands run by run so that a busy machine slows them all alike, and reports the median,
the minimum and the CPU time. Usage:

    .venv/bin/python benchmarks/bench_validate.py [--runs 15] [--spec examples/credit/mlc.yaml]
        [--variant before=/path/to/other/tree ...]

A variant runs the same `mlc validate` with `PYTHONPATH` set to a folder holding another copy of
the `mlc` namespace (`DIR/mlc/compiler`, …), to compare a change with its baseline.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SPEC_MODELS_ONLY = """
import yaml
from mlc.specs import Spec
with open({spec!r}) as fh:
    data = yaml.load(fh, Loader=yaml.CSafeLoader)
data.pop("defaults", None)
Spec.model_validate(data)
"""


def _env(pythonpath: str | None) -> dict[str, str]:
    # Users run with cached bytecode; any value of PYTHONDONTWRITEBYTECODE (even "0") turns the
    # cache off and makes every run compile changed modules from source.
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")
    }
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--spec", default="examples/credit/mlc.yaml")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=DIR")
    args = parser.parse_args()
    python = sys.executable
    mlc = str(Path(python).with_name("mlc"))
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "python -c pass": ([python, "-c", "pass"], _env(None)),
        'python -c "import pydantic"': ([python, "-c", "import pydantic"], _env(None)),
        'python -c "import typer"': ([python, "-c", "import typer"], _env(None)),
        # The floor of the stack the spec language is built on: read the YAML and validate it
        # with the pydantic spec models, nothing else (no CLI, overlays, IR, passes, targets).
        "spec models only (yaml + Spec.model_validate)": (
            [python, "-c", SPEC_MODELS_ONLY.format(spec=args.spec)],
            _env(None),
        ),
        f"mlc validate {args.spec}": ([mlc, "validate", args.spec], _env(None)),
    }
    for variant in args.variant:
        name, _, folder = variant.partition("=")
        commands[f"mlc validate {args.spec} ({name})"] = (
            [mlc, "validate", args.spec],
            _env(folder),
        )
    for cmd, env in commands.values():  # warm-up: write bytecode, fill the page cache
        subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, check=True)
    walls: dict[str, list[float]] = {label: [] for label in commands}
    cpus: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(args.runs):
        for label, (cmd, env) in commands.items():
            wall, cpu = run_once(cmd, env)
            walls[label].append(wall)
            cpus[label].append(cpu)
    load = os.getloadavg()[0]
    print(
        f"# mlc validate start-up ({args.runs} runs each, interleaved; Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, load average {load:.1f})\n"
    )
    print("| command | median wall s | min wall s | median CPU s |")
    print("|---|---:|---:|---:|")
    for label in commands:
        print(
            f"| `{label}` | {statistics.median(walls[label]):.3f} | {min(walls[label]):.3f} | "
            f"{statistics.median(cpus[label]):.3f} |"
        )


if __name__ == "__main__":
    main()
