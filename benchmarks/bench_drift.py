"""Drift on 1M x 20 numeric rows: mlc against a stored profile vs Evidently vs raw numpy/scipy.

Set-up (once per work folder, not timed): a reference of ROWS x 20 numeric columns (normal,
lognormal and discrete columns, seeded) and a current sample of the same size with half the
columns shifted, both as Parquet; the reference profile `profile.json` is built from the
reference with `mlc.runtime.profile` (what `register` stores with the model version).

Each run is a fresh process (interpreter start, imports, reading the Parquet, the statistics,
writing the scores as JSON); wall time and the process's own peak RSS (`os.wait4`'s rusage)
are measured. The three contenders alternate, so a change in the box's load hits all of them:

- mlc: `runtime.drift.profile_drift` of the current data against `profile.json` (PSI over the
  profile's 10 quantile bins per column — the default numeric test); it never reads the
  reference data.
- raw numpy/scipy: the same PSI written by hand — reads reference and current, takes the
  reference's deciles (`np.quantile`), bins both with `searchsorted` + `bincount` (scipy's
  `ks_2samp` / `wasserstein_distance` with `--method ks|wasserstein`).
- raw numpy, stored bins (PSI only): the least code that can do the job from the same profile —
  `json.load` of the profile, `searchsorted` + `bincount` of the current data; the floor for
  mlc's profile path.
- Evidently 0.7: `Report([DataDriftPreset(method="psi")]).run(current, reference)`, in a virtual
  environment of its own (`--evidently-python`; `--setup-evidently` creates it under
  benchmarks/.venvs/evidently, ignored by git, with the pandas mlc pins: Evidently 0.7 does not
  import under pandas 3).

The first run's scores of mlc and raw numpy are compared (they must agree to 1e-12: same bins,
same statistic).

    .venv/bin/python benchmarks/bench_drift.py [--rows 1000000] [--runs 3] [--work DIR]
        [--evidently-python PATH | --setup-evidently] [--method psi]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = 20
EVIDENTLY_VENV = ROOT / "benchmarks" / ".venvs" / "evidently"

MLC = """
import json, sys, pandas as pd
from mlc.runtime import drift, profile
prof_path, cur_path, out, method = sys.argv[1:5]
doc = profile.read(prof_path)
cur = pd.read_parquet(cur_path)
rows = drift.profile_drift(doc, cur, list(cur.columns), method, 0.2)
json.dump({r["feature"]: r["score"] for r in rows}, open(out, "w"))
"""

RAW = """
import json, sys, numpy as np, pandas as pd
ref_path, cur_path, out, method = sys.argv[1:5]
ref = pd.read_parquet(ref_path)
cur = pd.read_parquet(cur_path)
eps, levels = 1e-4, np.linspace(0, 1, 11)[1:-1]
scores = {}
for name in cur.columns:
    r = ref[name].to_numpy(dtype=float); r = r[~np.isnan(r)]
    c = cur[name].to_numpy(dtype=float); c = c[~np.isnan(c)]
    if method == "psi":
        edges = np.unique(np.quantile(r, levels))
        n = len(edges) + 1
        p = np.bincount(np.searchsorted(edges, r, side="right"), minlength=n) / len(r) + eps
        q = np.bincount(np.searchsorted(edges, c, side="right"), minlength=n) / len(c) + eps
        scores[name] = float(np.sum((q - p) * np.log(q / p)))
    elif method == "ks":
        from scipy import stats
        scores[name] = float(stats.ks_2samp(r, c).statistic)
    else:
        from scipy import stats
        scores[name] = float(stats.wasserstein_distance(r, c) / np.std(r))
json.dump(scores, open(out, "w"))
"""

RAW_BINS = """
import json, sys, numpy as np, pandas as pd
prof_path, cur_path, out, method = sys.argv[1:5]
doc = json.load(open(prof_path))
cur = pd.read_parquet(cur_path)
eps, scores = 1e-4, {}
for name in cur.columns:
    entry = doc["features"][name]
    c = cur[name].to_numpy(dtype=float); c = c[~np.isnan(c)]
    edges = np.asarray(entry["edges"])
    p = np.asarray(entry["counts"]) / entry["n"] + eps
    q = np.bincount(np.searchsorted(edges, c, side="right"), minlength=len(p)) / len(c) + eps
    scores[name] = float(np.sum((q - p) * np.log(q / p)))
json.dump(scores, open(out, "w"))
"""

EVIDENTLY = """
import json, sys, pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
ref_path, cur_path, out, method = sys.argv[1:5]
ref = pd.read_parquet(ref_path)
cur = pd.read_parquet(cur_path)
snapshot = Report([DataDriftPreset(method=method)]).run(cur, ref)
doc = snapshot.dict()
json.dump({"metrics": len(doc.get("metrics", []))}, open(out, "w"))
"""


def make_data(work: Path, rows: int) -> tuple[Path, Path, Path]:
    """Reference and current Parquet files and the reference profile (cached in `work`)."""
    import numpy as np
    import pandas as pd

    from mlc.runtime import profile

    ref_path, cur_path, prof_path = (
        work / f"reference-{rows}.parquet",
        work / f"current-{rows}.parquet",
        work / f"profile-{rows}.json",
    )
    if ref_path.exists() and cur_path.exists() and prof_path.exists():
        return ref_path, cur_path, prof_path
    rng = np.random.default_rng(20261202)

    def frame(shift: float) -> pd.DataFrame:
        cols: dict[str, Any] = {}
        for j in range(COLUMNS):
            moved = shift if j % 2 else 0.0
            if j % 4 == 0:
                cols[f"f{j:02d}"] = rng.normal(10 * j + moved, 1 + j / 10, rows)
            elif j % 4 == 1:
                cols[f"f{j:02d}"] = rng.lognormal(moved / 4, 0.5, rows)
            elif j % 4 == 2:
                cols[f"f{j:02d}"] = rng.integers(0, 12, rows).astype(float)
            else:
                cols[f"f{j:02d}"] = rng.uniform(moved, 100 + moved, rows)
        return pd.DataFrame(cols)

    ref = frame(0.0)
    ref.to_parquet(ref_path)
    frame(2.0).to_parquet(cur_path)
    prof_path.write_text(profile.dumps(profile.build(ref)))
    return ref_path, cur_path, prof_path


def measure(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MiB) of one fresh process; raises when it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # wait4, not wait: its rusage is this child's own peak RSS, not the max of all children
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    tail = proc.stdout.read().decode(errors="replace")[-2000:] if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{args[:3]} failed:\n{tail}")
    return elapsed, usage.ru_maxrss / 1024, tail


def setup_evidently() -> Path:
    """A virtual environment with Evidently 0.7 and the pandas mlc pins."""
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
    pins = {
        line.split("==")[0]: line.strip()
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "evidently==0.7.*", pins["pandas"]],
        check=True,
    )
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--method", default="psi", choices=["psi", "ks", "wasserstein"])
    parser.add_argument("--evidently-python", type=Path, default=None)
    parser.add_argument("--setup-evidently", action="store_true")
    opts = parser.parse_args()
    work = opts.work or Path(tempfile.gettempdir()) / "mlc-bench-drift"
    work.mkdir(parents=True, exist_ok=True)
    evidently = opts.evidently_python
    if opts.setup_evidently:
        evidently = setup_evidently()
    elif evidently is None and (EVIDENTLY_VENV / "bin" / "python").exists():
        evidently = EVIDENTLY_VENV / "bin" / "python"
    ref_path, cur_path, prof_path = make_data(work, opts.rows)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    scripts = {"mlc (profile)": (MLC, sys.executable, prof_path)}
    scripts["raw numpy/scipy"] = (RAW, sys.executable, ref_path)
    if opts.method == "psi":
        scripts["raw numpy, stored bins"] = (RAW_BINS, sys.executable, prof_path)
    if evidently is not None:
        scripts["Evidently 0.7 DataDriftPreset"] = (EVIDENTLY, str(evidently), ref_path)
    times: dict[str, list[float]] = {k: [] for k in scripts}
    rss: dict[str, list[float]] = {k: [] for k in scripts}
    outs: dict[str, Path] = {}
    for run in range(opts.runs):
        for name, (code, python, reference) in scripts.items():
            out = work / f"out-{len(outs)}-{run}.json"
            outs.setdefault(name, out)
            args = [python, "-c", code, str(reference), str(cur_path), str(out), opts.method]
            wall, peak, _ = measure(args, env)
            times[name].append(wall)
            rss[name].append(peak)
            print(f"run {run + 1} {name}: {wall:.2f} s, {peak:.0f} MiB", file=sys.stderr)
    mlc_scores = json.loads(outs["mlc (profile)"].read_text())
    raw_scores = json.loads(outs["raw numpy/scipy"].read_text())
    worst = max(abs(mlc_scores[k] - raw_scores[k]) for k in raw_scores)
    if "raw numpy, stored bins" in outs:
        bins_scores = json.loads(outs["raw numpy, stored bins"].read_text())
        worst = max(worst, *(abs(mlc_scores[k] - bins_scores[k]) for k in bins_scores))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"\nMachine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}. "
        f"{opts.rows:,} x {COLUMNS} numeric rows, method {opts.method}, "
        f"median of {opts.runs} whole-process runs.\n"
    )
    print("| contender | median wall (s) | runs (s) | peak RSS (MiB, max) | vs mlc |")
    print("|---|---|---|---|---|")
    for name in scripts:
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        ratio = med[name] / med["mlc (profile)"]
        print(f"| {name} | {med[name]:.2f} | {runs} | {max(rss[name]):.0f} | {ratio:.2f}x |")
    print(f"\nlargest |mlc - raw| score difference: {worst:.3g}")


if __name__ == "__main__":
    main()
