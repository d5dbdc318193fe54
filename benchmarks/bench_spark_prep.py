"""Data preparation (contract, split, features) of credit-shaped rows: pandas vs spark local[2].

Each (engine, rows) case runs in a fresh process: the ingest, validate, split and features
steps of the runtime on a Parquet file of `rows` credit-shaped rows (the generator of
tests/support/credit_like.py, written in chunks), with a hash split on the row id. Reports the
wall time of the four steps, the peak RSS of the mlc (Python) process and, for spark, of the
JVM (its VmHWM, read before the session stops). Usage:

    .venv/bin/python benchmarks/bench_spark_prep.py [--rows 1000000,5000000,20000000]
        [--engines pandas,spark] [--work /tmp/mlc-bench-spark] [--driver-memory 2g]

A case that fails (pandas out of memory, say) is reported with its exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CHUNK = 1_000_000

CASE = r"""
import json, os, resource, sys, time
sys.path.insert(0, {tests!r})
from support.credit_like import column
from mlc.runtime.context import StepContext
from mlc.runtime.steps import get

engine, data, work, memory = {engine!r}, {data!r}, {work!r}, {memory!r}
spark = {{"master": "local[2]", "conf": {{"spark.driver.memory": memory,
         "spark.sql.shuffle.partitions": "8", "spark.sql.warehouse.dir": work + "/warehouse"}}}}
contract = {{
    "row_id": column("int", unique=True),
    "age": column("int", min=18, max=100),
    "income": column("float", min=0),
    "region": column("category", allowed=["north", "south", "east", "west"]),
    "purpose": column("category", allowed=["car", "home", "education"]),
    "default": column("int", allowed=[0, 1]),
}}
extra = {{"engine": "spark", "spark": spark}} if engine == "spark" else {{}}
ctx = StepContext(project_dir=work)
source = {{"name": "main", "format": "parquet", "path": data, "join_on": []}}
minimum = {{"train_rows": 30, "validation_rows": 20, "test_rows": 30, "per_class": 5,
           "per_group": 20, "enforce": "warn"}}
steps = [
    ("ingest", {{"source": source, "engine": engine,
                "versioning": {{"strategy": "none", "keep": 1}},
                **({{"spark": spark}} if engine == "spark" else {{}})}},
     {{}}, {{"dataset": work + "/raw"}}),
    ("validate", {{"contract": {{"columns": contract, "on_failure": "quarantine"}},
                  "engine": engine, "sources": ["main"], "join_on": {{}},
                  **({{"spark": spark}} if engine == "spark" else {{}})}},
     {{"main": work + "/raw"}}, {{"dataset": work + "/ok", "report": work + "/report"}}),
    ("split", {{"method": "hash", "key": "row_id", "test_size": 0.2, "validation_size": 0.0,
               "seed": 1, "stratify_by": None, "time_column": None, "minimum": minimum,
               "target": "default", "task": "classification", "gates": 0, "cv_folds": None,
               "sensitive_attributes": [], **extra}},
     {{"dataset": work + "/ok"}}, {{"train": work + "/train", "test": work + "/test"}}),
    ("features", {{"target": "default", "task": "classification", "derived": [],
                  "transforms": [
                      {{"op": "log", "columns": ["income"], "offset": 1.0}},
                      {{"op": "scale", "columns": ["age", "income"], "method": "standard"}},
                      {{"op": "one_hot", "columns": ["region", "purpose"],
                       "handle_unknown": "ignore", "max_categories": None}}],
                  "selection": {{"method": "none", "include": None, "exclude": ["row_id"],
                                "k": None}},
                  "dtypes": {{c: v["dtype"] for c, v in contract.items()}}, "pii": [], **extra}},
     {{"train": work + "/train"}}, {{"transform": work + "/transform"}}),
]
started = time.perf_counter()
times = {{}}
for kind, params, inputs, outputs in steps:
    t = time.perf_counter()
    get(kind)(params, inputs, outputs, ctx)
    times[kind] = round(time.perf_counter() - t, 2)
wall = time.perf_counter() - started
jvm = None
if engine == "spark":
    from pyspark.sql import SparkSession
    pid = SparkSession.getActiveSession()._jvm.java.lang.ProcessHandle.current().pid()
    for line in open(f"/proc/{{pid}}/status"):
        if line.startswith("VmHWM:"):
            jvm = int(line.split()[1]) / 1024
py = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"wall_s": round(wall, 1), "steps_s": times, "py_peak_mb": round(py),
                  "jvm_peak_mb": round(jvm) if jvm else None}}))
"""


def _generate(path: Path, rows: int) -> None:
    """`rows` credit-shaped rows with a row id, written chunk by chunk (bounded memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(REPO / "tests"))
    from support.credit_like import frame

    writer = None
    for start in range(0, rows, CHUNK):
        n = min(CHUNK, rows - start)
        df = frame(seed=start, rows=n)
        df.insert(0, "row_id", range(start, start + n))
        table = pa.Table.from_pandas(df, preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def run_case(engine: str, rows: int, data: Path, work: Path, memory: str) -> dict[str, Any]:
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    code = CASE.format(
        tests=str(REPO / "tests"), engine=engine, data=str(data), work=str(work), memory=memory
    )
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=work
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {proc.returncode}: {tail[:200]}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,5000000,20000000")
    parser.add_argument("--engines", default="pandas,spark")
    parser.add_argument("--work", default="/tmp/mlc-bench-spark")
    parser.add_argument("--driver-memory", default="2g")
    args = parser.parse_args()
    root = Path(args.work)
    root.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    print(
        "| rows | engine | wall (s) | ingest / validate / split / features (s) "
        "| mlc peak RSS (MB) | JVM peak RSS (MB) |"
    )
    print("|---|---|---|---|---|---|")
    for rows in (int(r) for r in args.rows.split(",")):
        data = root / f"credit-{rows}.parquet"
        if not data.exists():
            _generate(data, rows)
        for engine in args.engines.split(","):
            r = run_case(engine, rows, data, root / f"work-{engine}", args.driver_memory)
            if "error" in r:
                print(f"| {rows:,} | {engine} | failed: {r['error']} | | | |", flush=True)
                continue
            steps = " / ".join(
                str(r["steps_s"][k]) for k in ("ingest", "validate", "split", "features")
            )
            jvm = r["jvm_peak_mb"] if r["jvm_peak_mb"] is not None else "—"
            print(
                f"| {rows:,} | {engine} | {r['wall_s']} | {steps} | {r['py_peak_mb']} | {jvm} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
