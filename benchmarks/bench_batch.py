"""Whole-process batch scoring: `mlc batch` against a hand-written MLflow pyfunc baseline.

Set-up (once per work folder): the credit example is copied to WORK/credit and
`mlc run WORK/credit/mlc.yaml +serving=batch` trains and registers the champion. Credit-shaped
rows (the distributions of examples/credit/data/generate.py, vectorised, seeded) are written
as CSV in chunks.

Each run is a fresh process; wall time and the process's peak RSS (`os.wait4`'s rusage) are
measured. mlc and the baseline alternate, so a change in the shared box's load hits both.

- `mlc batch SPEC +serving=batch --input CSV --output DIR` (when the CLI has no `batch`
  command, a `python -c` that drives `mlc.runtime.batch.score_file` stands in for it);
- baseline: `mlflow.pyfunc.load_model("models:/credit-risk@champion")`, `pd.read_csv` of the
  whole file, one `model.predict(df)`, the predictions written as Parquet.

    .venv/bin/python benchmarks/bench_batch.py [--rows 1000000] [--runs 3] [--work DIR]
        [--skip-5m]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "credit"
BIN = Path(sys.executable).parent
MLC = BIN / "mlc"
MODEL_URI = "models:/credit-risk@champion"
CHUNK = 250_000
KEY_ENV = {"MLC_PSEUDONYM_KEY": "bench"}

BASELINE = """
import sys, mlflow, mlflow.pyfunc, pandas as pd
uri, src, dst = sys.argv[1:4]
mlflow.set_tracking_uri(uri)
mlflow.set_registry_uri(uri)
model = mlflow.pyfunc.load_model("models:/credit-risk@champion")
df = pd.read_csv(src)
pred = model.predict(df)
pd.DataFrame({"applicant_id": df["applicant_id"], "prediction": pred}).to_parquet(dst)
"""

# Stand-in for `mlc batch` when the CLI lacks it: the batch engine on the IR's params.
SCORE_FILE = """
import json, sys
from pathlib import Path
from mlc.runtime import artifacts, batch
from mlc.runtime.context import StepContext
from mlc.runtime.steps import batch_predict as bp
from mlc.runtime.steps._data import bind_secrets
cfg = json.load(open(sys.argv[1]))
p = cfg["params"]
version, _ = bp.resolve_version(p["model_name"], "champion", None, cfg["uri"])
model = bp.load_registered(p["model_name"], version, cfg["uri"])
ctx = StepContext(project_dir=Path(cfg["project"]), state_dir=Path(cfg["project"]) / ".mlc",
                  tracking_uri=cfg["uri"], run_id="bench", step_id="batch-predict", secrets={})
bind_secrets(model, ctx)
ref = artifacts.load_dataframe(cfg["reference"]) if cfg["reference"] else None
batch.score_file(model, sys.argv[2], sys.argv[3], contract=p["contract"],
    features=p["features"], task=p["task"], id_column=p["batch"].get("id_column"),
    chunk_rows=int(p["batch"].get("chunk_rows") or bp.DEFAULT_CHUNK_ROWS),
    on_failure=p["contract"]["on_failure"], model_name=p["model_name"], model_version=version,
    reference=ref, drift=p.get("drift"), target=p.get("target"))
"""


def setup(work: Path) -> Path:
    """WORK/credit with a registered champion (reused when a store is already there)."""
    project = work / "credit"
    if (project / ".mlc" / "mlflow.db").exists():
        return project
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".mlc", "out"))
    proc = subprocess.run(
        [str(MLC), "run", str(project / "mlc.yaml"), "+serving=batch"],
        capture_output=True,
        text=True,
        env={**os.environ, **KEY_ENV},
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"mlc run failed:\n{proc.stdout}{proc.stderr}")
    return project


def generate(path: Path, rows: int, seed: int = 7) -> Path:
    """`rows` credit applications (generate.py's distributions, vectorised) as CSV."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    tmp = path.with_name(f".{path.name}.tmp")
    writer: Any = None
    try:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            ids = np.arange(100000 + start, 100000 + start + n, dtype=np.int64)
            income = np.round(rng.lognormal(10.6, 0.45, n), 2)
            debt = np.round(income * rng.uniform(0.0, 0.9, n), 2)
            months = rng.integers(0, 480, n)
            table = pa.table(
                {
                    "applicant_id": ids,
                    "email": pa.array([f"applicant{i - 100000}@example.com" for i in ids]),
                    "age": rng.integers(18, 76, n),
                    "income": income,
                    "debt": debt,
                    # 2% missing, as in the example's data
                    "months_employed": pa.array(months, mask=rng.random(n) < 0.02),
                    "late_payments": rng.poisson(0.8, n),
                    "sex": rng.choice(np.array(["female", "male"]), n),
                    "region": rng.choice(
                        np.array(["north", "south", "east", "west"]), n, p=[0.3, 0.3, 0.2, 0.2]
                    ),
                    "purpose": rng.choice(
                        np.array(["car", "home", "education", "business", "other"]), n
                    ),
                }
            )
            if writer is None:
                writer = pacsv.CSVWriter(str(tmp), table.schema)
            writer.write_table(table)
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def has_batch_command() -> bool:
    proc = subprocess.run([str(MLC), "batch", "--help"], capture_output=True, check=False)
    return proc.returncode == 0


def stand_in_config(project: Path, work: Path) -> Path:
    """Params for the `score_file` stand-in, from the compiled IR and the project's last run."""
    from mlc.compiler.api import check
    from mlc.compiler.api._batch import _last_run, batch_params

    result = check(project / "mlc.yaml", ["+serving=batch"], targets=["local"])
    params = batch_params(result.ir, "", "", None)
    reference, uri = _last_run(result.ir, project / ".mlc")
    cfg = work / "score_file.json"
    doc = {"params": params, "uri": uri, "reference": reference, "project": str(project)}
    cfg.write_text(json.dumps(doc, default=str))
    return cfg


def measure(args: list[str], as_limit: int | None = None) -> tuple[float, float, int, str]:
    """Wall seconds, peak RSS (MB), exit code and stderr tail of one fresh process."""

    def limit() -> None:
        if as_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))

    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, **KEY_ENV},
            preexec_fn=limit,
        )
        # wait4, not wait: its rusage is this child's own peak RSS, not the max of all children
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace")[-2000:]
    return elapsed, usage.ru_maxrss / 1024, proc.returncode, tail


def checked(args: list[str], as_limit: int | None = None) -> tuple[float, float]:
    wall, rss, rc, tail = measure(args, as_limit)
    if rc != 0:
        raise SystemExit(f"{' '.join(args)} failed ({rc}):\n{tail}")
    return wall, rss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=5_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--skip-5m", action="store_true")
    parser.add_argument("--baseline-as-gb", type=float, default=8.0)
    a = parser.parse_args()
    work = (a.work or Path(tempfile.mkdtemp(prefix="bench_batch."))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder: {work}", file=sys.stderr)
    print(f"load average at start: {os.getloadavg()}", file=sys.stderr)
    project = setup(work)
    uri = f"sqlite:///{project / '.mlc' / 'mlflow.db'}"
    spec = str(project / "mlc.yaml")
    cli = has_batch_command()
    cfg = None if cli else stand_in_config(project, work)
    py = str(sys.executable)

    def mlc_cmd(src: Path, out: Path) -> list[str]:
        if cli:
            return [str(MLC), "batch", spec, "+serving=batch", "-i", str(src), "-o", str(out)]
        return [py, "-c", SCORE_FILE, str(cfg), str(src), str(out)]

    def base_cmd(src: Path, out: Path) -> list[str]:
        return [py, "-c", BASELINE, uri, str(src), str(out)]

    src = generate(work / f"rows_{a.rows}.csv", a.rows)
    mb = src.stat().st_size / 2**20
    print(f"input {src.name}: {a.rows} rows, {mb:.0f} MB", file=sys.stderr)
    mlc_t: list[float] = []
    mlc_rss: list[float] = []
    base_t: list[float] = []
    base_rss: list[float] = []
    for i in range(a.runs):
        w, r = checked(mlc_cmd(src, work / f"mlc_out_{i}"))
        mlc_t.append(w)
        mlc_rss.append(r)
        w, r = checked(base_cmd(src, work / f"base_out_{i}.parquet"))
        base_t.append(w)
        base_rss.append(r)
        print(
            f"run {i + 1}: mlc {mlc_t[-1]:.2f} s {mlc_rss[-1]:.0f} MB; "
            f"baseline {base_t[-1]:.2f} s {base_rss[-1]:.0f} MB",
            file=sys.stderr,
        )
    mt, bt = statistics.median(mlc_t), statistics.median(base_t)
    m_rps, b_rps = a.rows / mt, a.rows / bt
    label = "`mlc batch`" if cli else "`runtime.batch.score_file` (python -c)"
    print(f"\nruns: {a.runs}, rows: {a.rows:,}, input {mb:.0f} MB CSV\n")
    print("| process | median wall (s) | rows/s | peak RSS (MB, max of runs) |")
    print("|---|---|---|---|")
    print(f"| {label} | {mt:.2f} | {m_rps:,.0f} | {max(mlc_rss):.0f} |")
    print(f"| pyfunc baseline | {bt:.2f} | {b_rps:,.0f} | {max(base_rss):.0f} |")
    ratio = m_rps / b_rps
    verdict = "met" if ratio >= 0.9 else "NOT met"
    print(f"| ratio mlc / baseline rows/s | {ratio:.2f}x | goal >= 0.9x: {verdict} | |")
    runs_m = [round(t, 2) for t in mlc_t]
    runs_b = [round(t, 2) for t in base_t]
    print(f"\nall runs (s): mlc {runs_m}, baseline {runs_b}")
    if a.skip_5m:
        return
    big = generate(work / f"rows_{a.big_rows}.csv", a.big_rows)
    gb = big.stat().st_size / 2**30
    w, r = checked(mlc_cmd(big, work / "mlc_out_big"))
    limit = int(a.baseline_as_gb * 2**30)
    bw, br, brc, btail = measure(base_cmd(big, work / "base_out_big.parquet"), limit)
    print(f"\n{a.big_rows:,} rows ({gb:.2f} GB CSV), 1 run each\n")
    print("| process | wall (s) | rows/s | peak RSS (MB) | goal |")
    print("|---|---|---|---|---|")
    ok = "met" if r <= 1536 else "NOT met"
    print(f"| {label} | {w:.2f} | {a.big_rows / w:,.0f} | {r:.0f} | <= 1,536 MB: {ok} |")
    if brc == 0:
        print(
            f"| pyfunc baseline (RLIMIT_AS {a.baseline_as_gb:g} GB) | {bw:.2f} | "
            f"{a.big_rows / bw:,.0f} | {br:.0f} | (none) |"
        )
    else:
        last = btail.strip().splitlines()[-1] if btail.strip() else f"exit {brc}"
        print(
            f"| pyfunc baseline (RLIMIT_AS {a.baseline_as_gb:g} GB) | failed after {bw:.1f} s "
            f"| | {br:.0f} at failure | {last[:120]} |"
        )


if __name__ == "__main__":
    main()
