"""Latency of the ONNX edge package against the registered model's MLflow pyfunc.

Set-up (once per work folder): the credit example is copied to WORK/edge and
`mlc run WORK/edge/mlc.yaml +serving=edge` trains, registers and exports the champion; the
package is read from the run's `export` step outputs and loaded with
`mlc.runtime.onnx_export.load_package`. The pyfunc is
`mlflow.pyfunc.load_model("models:/credit-risk@champion")` from the same store.

Both score the same credit-shaped rows (bench_batch.generate). In-process timing, ONNX and
pyfunc calls interleaved, after a warm-up: the median of 500 single-row calls and of 50 calls
on 1,000 rows.

    .venv/bin/python benchmarks/bench_onnx.py [--work DIR] [--single 500] [--batches 50]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_batch import EXAMPLE, KEY_ENV, MLC, MODEL_URI, generate

BATCH_ROWS = 1000
WARMUP = 20


def setup(work: Path) -> tuple[Path, Path]:
    """WORK/edge after `mlc run +serving=edge`: the project and the export package folder."""
    project = work / "edge"
    if not (project / ".mlc" / "mlflow.db").exists():
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".mlc", "out"))
        proc = subprocess.run(
            [str(MLC), "run", str(project / "mlc.yaml"), "+serving=edge"],
            capture_output=True,
            text=True,
            env={**os.environ, **KEY_ENV},
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"mlc run +serving=edge failed:\n{proc.stdout}{proc.stderr}")
    record = max((project / ".mlc" / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime)
    steps = json.loads(record.read_text())["steps"]
    package = next(s["outputs"]["package"] for s in steps if s["kind"] == "export")
    return project, Path(package)


def interleaved(
    a: Callable[[int], Any], b: Callable[[int], Any], calls: int
) -> tuple[list[float], list[float]]:
    """Milliseconds of `calls` calls of each, alternating a and b (call k gets argument k)."""
    ta, tb = [], []
    for k in range(calls):
        start = time.perf_counter()
        a(k)
        ta.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        b(k)
        tb.append((time.perf_counter() - start) * 1000)
    return ta, tb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--single", type=int, default=500)
    parser.add_argument("--batches", type=int, default=50)
    a = parser.parse_args()
    os.environ.update(KEY_ENV)
    work = (a.work or Path(tempfile.mkdtemp(prefix="bench_onnx."))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder: {work}", file=sys.stderr)
    print(f"load average at start: {os.getloadavg()}", file=sys.stderr)
    project, package = setup(work)

    import mlflow
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    from mlc.runtime.onnx_export import load_package

    uri = f"sqlite:///{project / '.mlc' / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    pyfunc = mlflow.pyfunc.load_model(MODEL_URI)
    onnx = load_package(package)
    report = json.loads((package / "export.json").read_text())

    rows = pd.read_csv(generate(work / f"rows_{BATCH_ROWS}.csv", BATCH_ROWS, seed=11))
    singles = [rows.iloc[[k]] for k in range(len(rows))]

    def onnx_one(k: int) -> None:
        onnx(singles[k % len(singles)])

    def pyfunc_one(k: int) -> None:
        pyfunc.predict(singles[k % len(singles)])

    interleaved(onnx_one, pyfunc_one, WARMUP)
    o1, p1 = interleaved(onnx_one, pyfunc_one, a.single)
    interleaved(lambda _: onnx(rows), lambda _: pyfunc.predict(rows), 3)
    ob, pb = interleaved(lambda _: onnx(rows), lambda _: pyfunc.predict(rows), a.batches)

    got = onnx(rows)
    labels = np.asarray(got["label"]).astype(str)
    agree = float(np.mean(labels == np.asarray(pyfunc.predict(rows)).astype(str)))

    m_o1, m_p1 = statistics.median(o1), statistics.median(p1)
    m_ob, m_pb = statistics.median(ob), statistics.median(pb)
    s1, sb = m_p1 / m_o1, m_pb / m_ob
    tries = ", ".join(
        f"{t['precision']} ({'passed' if t.get('passed') else 'failed'})"
        for t in report.get("attempts", [])
    )
    print(f"\npackage: {package.name}; precision {report['precision']}; attempts: {tries}")
    print(f"estimator: {report.get('estimator')}; quantised: {'quantized' in report}")
    print(f"ONNX labels agree with pyfunc predict on {agree:.1%} of the {len(rows)} rows\n")
    print("| case | ONNX median (ms) | pyfunc median (ms) | speed-up | goal |")
    print("|---|---|---|---|---|")
    g1 = "met" if s1 >= 10 else "NOT met"
    gb = "met" if sb >= 2 else "NOT met"
    print(f"| 1 row, {a.single} calls | {m_o1:.3f} | {m_p1:.3f} | {s1:.1f}x | >= 10x: {g1} |")
    print(
        f"| {BATCH_ROWS:,} rows, {a.batches} calls | {m_ob:.3f} | {m_pb:.3f} | {sb:.1f}x "
        f"| >= 2x: {gb} |"
    )


if __name__ == "__main__":
    main()
