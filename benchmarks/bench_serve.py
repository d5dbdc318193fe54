"""HTTP serving throughput: `mlc serve` against a bare FastAPI app, MLflow and MLServer.

Set-up (once per work folder): the credit example is copied to WORK/credit and
`mlc run WORK/credit/mlc.yaml +serving=edge tuning.trials=2 governance.fairness.mitigation=none`
registers a champion and exports an ONNX package (recorded in `.mlc/lineage/exports.jsonl`).

Then one server at a time, pinned to CPU 1 (`taskset -c 1`, `OMP_NUM_THREADS=1`, one worker),
loaded by `wrk` pinned to CPU 0 with one-row POSTs in each server's own protocol: a warm-up,
then 1 and 16 connections for `--duration` seconds each, `--latency` percentiles read off
wrk's report. Each server's first answer is checked against the in-process pyfunc.

- bare: FastAPI + uvicorn calling `mlflow.pyfunc.load_model(...).predict` (`/invocations`);
- `mlc serve WORK/credit --no-onnx` (the registered model; guards, metrics, log on; one-row
  requests through the compiled row path, runtime/rowpath.py), also over V2 infer;
- `mlc serve WORK/credit --no-onnx --no-row-path` (the same through the batch path);
- `mlc serve WORK/credit --no-row-path` (every request through the ONNX package);
- `mlflow models serve --env-manager local` from a peer venv (`--peer-mlflow`);
- MLServer with mlserver-mlflow from a peer venv (`--peer-mlserver`), V2 infer.

The peers' venvs have no mlc; the model's skops file names mlc's transforms, so each peer is
tried as installed and, when that fails on `No module named 'mlc'`, again with only mlc's
source on PYTHONPATH (a folder holding an `mlc` link to the repository), reported as such.

In-process (`--inproc`, same pinning): the median of 500 one-row calls of the pyfunc's
`predict`, the registered model's own `predict_proba`, its compiled row path, the ONNX
`load_package` scorer, and of mlc serve's own track scorers; and the largest difference
between the row path and the batch path over every row of the example's data.

    .venv/bin/python benchmarks/bench_serve.py [--work DIR] [--duration 15]
        [--peer-mlflow /tmp/peer-mlflow] [--peer-mlserver /tmp/peer-mlserver]
        [--only bare,mlc,mlc-onnx]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "credit"
PY = Path(sys.executable)
MLC = PY.parent / "mlc"
MODEL = "credit-risk"
MODEL_URI = f"models:/{MODEL}@champion"
KEY_ENV = {"MLC_PSEUDONYM_KEY": "bench"}
RUN_OVERRIDES = ["+serving=edge", "tuning.trials=2", "governance.fairness.mitigation=none"]
SERVER_CPU, WRK_CPU = "1", "0"
CALLS = 500
WARMUP_CALLS = 20

# One credit application (no null: every protocol carries it the same way).
ROW: dict[str, Any] = {
    "applicant_id": 100123,
    "email": "applicant123@example.com",
    "age": 41,
    "income": 42000.0,
    "debt": 9100.5,
    "months_employed": 60.0,
    "late_payments": 1,
    "sex": "female",
    "region": "north",
    "purpose": "car",
}
V2_TYPES = {int: "INT64", float: "FP64", str: "BYTES"}

BARE_APP = """
import os
import mlflow, mlflow.pyfunc, pandas as pd
from fastapi import FastAPI, Request

mlflow.set_tracking_uri(os.environ["BENCH_URI"])
mlflow.set_registry_uri(os.environ["BENCH_URI"])
model = mlflow.pyfunc.load_model("models:/credit-risk@champion")
app = FastAPI()


@app.post("/invocations")
async def invocations(request: Request):
    split = (await request.json())["dataframe_split"]
    frame = pd.DataFrame(split["data"], columns=split["columns"])
    return {"predictions": pd.Series(model.predict(frame)).tolist()}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup(work: Path) -> tuple[Path, str, Path]:
    """WORK/credit after `mlc run`: the project, its tracking URI and the export package."""
    project = work / "credit"
    exports = project / ".mlc" / "lineage" / "exports.jsonl"
    if not exports.exists():
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".mlc", "out"))
        proc = subprocess.run(
            [str(MLC), "run", str(project / "mlc.yaml"), *RUN_OVERRIDES],
            capture_output=True,
            text=True,
            env={**os.environ, **KEY_ENV},
            check=False,
        )
        if proc.returncode != 0 or not exports.exists():
            raise SystemExit(f"mlc run failed:\n{proc.stdout}{proc.stderr}")
    records = [json.loads(line) for line in exports.read_text().splitlines() if line.strip()]
    package = Path(records[-1]["package"])
    if not (package / "model.onnx").is_file():
        raise SystemExit(f"the newest export ({package}) wrote no model.onnx: parity failed")
    return project, f"sqlite:///{project / '.mlc' / 'mlflow.db'}", package


# -- request bodies ------------------------------------------------------------------------
def split_body() -> dict[str, Any]:
    return {"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values())]}}


def v2_body() -> dict[str, Any]:
    return {
        "parameters": {"content_type": "pd"},
        "inputs": [
            {"name": k, "shape": [1], "datatype": V2_TYPES[type(v)], "data": [v]}
            for k, v in ROW.items()
        ],
    }


def lua(path: Path, body: dict[str, Any]) -> Path:
    text = json.dumps(body, separators=(",", ":"))
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(text)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return path


# -- wrk -----------------------------------------------------------------------------------
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if m is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, Any]:
    cmd = [
        "taskset", "-c", WRK_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
        "--latency", "--timeout", "10s", "-s", str(script), url,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60)
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    pct = {p: _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M)}
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:.*", text)
    total = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    return {
        "rps": rps,
        "p50": pct["50"],
        "p99": pct["99"],
        "requests": total,
        "non2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(0) if errors else "",
        "cmd": " ".join(cmd),
    }


# -- servers -------------------------------------------------------------------------------
def post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def wait_ready(proc: subprocess.Popen[bytes], url: str, body: dict[str, Any]) -> Any:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        try:
            code, doc = post(url, body)
            if code == 200:
                return doc
            return None if code < 500 else doc
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(0.5)
    return None


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def measure(
    name: str,
    cmd: list[str],
    env: dict[str, str],
    url: str,
    body: dict[str, Any],
    work: Path,
    seconds: int,
    check: Callable[[Any], str],
) -> dict[str, Any]:
    """Start `cmd` pinned, check its first answer, warm up, wrk at 1 and 16 connections."""
    log = work / f"{name}.log"
    full = ["taskset", "-c", SERVER_CPU, *cmd]
    result: dict[str, Any] = {"name": name, "cmd": " ".join(full)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            full,
            env={**os.environ, **KEY_ENV, "OMP_NUM_THREADS": "1", **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=work,
            start_new_session=True,
        )
    try:
        started = time.monotonic()
        doc = wait_ready(proc, url, body)
        result["startup_s"] = round(time.monotonic() - started, 1)
        if doc is None:
            tail = log.read_text(errors="replace").strip().splitlines()[-15:]
            result["error"] = "\n".join(tail)
            return result
        result["answer"] = doc
        result["check"] = check(doc)
        script = lua(work / f"{name}.lua", body)
        wrk(url, script, 4, 3)
        result["c1"] = wrk(url, script, 1, seconds)
        result["c16"] = wrk(url, script, 16, seconds)
        if proc.poll() is not None:
            result["error"] = f"the server exited during the run ({proc.returncode})"
    finally:
        stop(proc)
    return result


# -- in-process ------------------------------------------------------------------------------
def _median_ms(fn: Callable[[], Any]) -> float:
    for _ in range(WARMUP_CALLS):
        fn()
    times = []
    for _ in range(CALLS):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def inproc(project: Path, uri: str, package: Path) -> dict[str, Any]:
    """Median ms of one-row calls: pyfunc predict, ONNX scorer, mlc serve's track scorers."""
    import mlflow
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    from mlc.compiler import api
    from mlc.runtime.context import StepContext
    from mlc.runtime.onnx_export import load_package
    from mlc.runtime.rowpath import compile_row
    from mlc.runtime.serving.guards import Guard
    from mlc.runtime.serving.models import _bind_prestep_keys, load_tracks
    from mlc.runtime.steps._data import bind_secrets, cast_to_contract
    from mlc.runtime.steps.batch_predict import load_registered

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    frame = pd.DataFrame([ROW])
    pyfunc = mlflow.pyfunc.load_model(MODEL_URI)
    onnx = load_package(str(package))
    _bind_prestep_keys(package, dict(KEY_ENV))
    res: dict[str, Any] = {
        "pyfunc_predict": _median_ms(lambda: pyfunc.predict(frame)),
        "onnx_load_package": _median_ms(lambda: onnx(frame)),
        "pyfunc_label": pd.Series(pyfunc.predict(frame)).tolist()[0],
        "onnx_label": str(onnx(frame)["label"][0]),
    }
    for use_onnx in (False, True):
        plan = api.serve_plan(project / "mlc.yaml", onnx=use_onnx).plan
        track = next(iter(load_tracks(plan).values()))
        columns = plan["contract"]["columns"]
        cast = cast_to_contract(frame, {f: columns[f] for f in track.features})
        key = "track_score_onnx" if use_onnx else "track_score_sklearn"
        res[key] = _median_ms(partial(track.score, cast))
        res[key + "_label"] = track.score(cast).values()[0]
        if not use_onnx:
            res["row_path"] = track.row_path
            guard = Guard(columns, track.features)
            assert track.row_fn is not None, track.row_path
            one_row = partial(_track_row, track.row_fn, guard, {k: [v] for k, v in ROW.items()})
            res["track_row"] = _median_ms(one_row)
            res["track_row_label"] = one_row().values()[0]
    model = load_registered(MODEL, _champion(uri), uri)
    bind_secrets(model, StepContext(secrets=dict(KEY_ENV)))
    features = list(frame.columns)
    compiled = compile_row(model, features, "classification")
    typed = dict(ROW)
    res["model_predict_proba"] = _median_ms(lambda: model.predict_proba(frame))
    res["compiled_row"] = _median_ms(lambda: compiled(typed))
    data = pd.read_csv(project / "data" / "applications.csv")
    data = data[features]
    batch = np.asarray(model.predict_proba(data), dtype=float)
    rows = data.astype(object).where(data.notna(), None).to_dict("records")
    each = np.asarray([compiled(r) for r in rows], dtype=float)
    res["row_vs_batch_max_abs"] = float(np.abs(each - batch).max())
    res["row_vs_batch_rows"] = len(rows)
    return res


def _track_row(row_fn: Callable[[Any], Any], guard: Any, data: dict[str, list[Any]]) -> Any:
    """What `mlc serve` does with a one-row request's checked values: type them, score."""
    got = row_fn(guard.row(data))
    assert got is not None
    return got


def _champion(uri: str) -> str:
    from mlc.runtime.steps.batch_predict import resolve_version

    return resolve_version(MODEL, "champion", None, uri)[0]


# -- main ------------------------------------------------------------------------------------
def peer_pythonpath(work: Path) -> str:
    """A folder holding only `mlc`, a link to this repository's source."""
    folder = work / "mlc-src"
    folder.mkdir(exist_ok=True)
    link = folder / "mlc"
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    return str(folder)


SHORT = {
    "bare": "bare-fastapi",
    "mlc": "mlc-serve-no-onnx",
    "mlc-v2": "mlc-serve-no-onnx-v2",
    "mlc-batch": "mlc-serve-batch-path",
    "mlc-onnx": "mlc-serve-onnx",
    "mlflow": "mlflow-models-serve",
    "mlserver": "mlserver",
}
"""Short names for `--only`; each names exactly one server (peers also run their `'` form)."""


def _servers(text: str) -> list[str]:
    return [SHORT.get(w.strip(), w.strip()) for w in text.split(",") if w.strip()]


def _chosen(name: str, only: list[str]) -> bool:
    # "mlc-serve-onnx" must not also start mlc-serve-onnx-v2; the peers' PYTHONPATH variants
    # (name + tag) run with their peer.
    full = {
        "bare-fastapi",
        "mlc-serve-no-onnx",
        "mlc-serve-no-onnx-v2",
        "mlc-serve-batch-path",
        "mlc-serve-onnx",
    }
    return any(name == o or (o not in full and name.startswith(o)) for o in only)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--peer-mlflow", type=Path, default=Path("/tmp/peer-mlflow"))
    parser.add_argument("--peer-mlserver", type=Path, default=Path("/tmp/peer-mlserver"))
    parser.add_argument(
        "--only",
        type=_servers,
        default=None,
        help="comma-separated servers to run: "
        + ", ".join(f"{k} ({v})" for k, v in SHORT.items())
        + "; a full name runs that server, any other word the servers it starts",
    )
    parser.add_argument("--inproc", action="store_true", help=argparse.SUPPRESS)
    a = parser.parse_args()
    work = (a.work or Path(tempfile.mkdtemp(prefix="bench_serve."))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update(KEY_ENV)
    project, uri, package = setup(work)
    if a.inproc:
        print(json.dumps(inproc(project, uri, package)))
        return
    print(f"work folder: {work}; package {package.name}", file=sys.stderr)
    print(f"nproc {os.cpu_count()}; load average at start {os.getloadavg()}", file=sys.stderr)

    proc = subprocess.run(
        ["taskset", "-c", SERVER_CPU, str(PY), __file__, "--work", str(work), "--inproc"],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=True,
    )
    local = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(local, indent=1), file=sys.stderr)
    want = local["pyfunc_label"]

    def labels(doc: Any) -> str:
        if isinstance(doc, dict) and "outputs" in doc:
            # mlc names its outputs; MLServer's mlflow runtime answers one unnamed `output-1`
            named = [o["data"] for o in doc["outputs"] if o["name"] == "label"]
            got = named[0] if named else doc["outputs"][0]["data"]
        elif isinstance(doc, dict):
            got = doc.get("predictions")
        else:
            return f"unexpected answer: {doc!r}"[:200]
        first = got[0]["0"] if isinstance(got[0], dict) else got[0]
        return "same label as pyfunc" if str(first) == str(want) else f"label {first} != {want}"

    (work / "bare_app.py").write_text(BARE_APP)
    model_dir = work / "model"
    if not model_dir.exists():
        import mlflow

        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        mlflow.artifacts.download_artifacts(MODEL_URI, dst_path=str(model_dir))
    src = peer_pythonpath(work)
    results: list[dict[str, Any]] = []

    def run(name: str, build: Callable[[int], tuple[list[str], dict[str, str], str, Any]]) -> Any:
        if a.only and not _chosen(name, a.only):
            return None
        port = free_port()
        cmd, env, url, body = build(port)
        print(f"-- {name}: {' '.join(cmd)}", file=sys.stderr)
        r = measure(name, cmd, env, url, body, work, a.duration, labels)
        print(json.dumps({k: v for k, v in r.items() if k != "answer"}, indent=1), file=sys.stderr)
        results.append(r)
        return r

    mlc_cmd = [str(MLC), "serve", str(project / "mlc.yaml"), "--port"]
    run(
        "bare-fastapi",
        lambda p: (
            [str(PY), "-m", "uvicorn", "bare_app:app", "--host", "127.0.0.1", "--port", str(p),
             "--workers", "1", "--no-access-log", "--log-level", "warning"],
            {"BENCH_URI": uri},
            f"http://127.0.0.1:{p}/invocations",
            split_body(),
        ),
    )  # fmt: skip
    run(
        "mlc-serve-no-onnx",
        lambda p: ([*mlc_cmd, str(p), "--no-onnx"], {}, f"http://127.0.0.1:{p}/invocations",
                   split_body()),
    )  # fmt: skip
    run(
        "mlc-serve-no-onnx-v2",
        lambda p: ([*mlc_cmd, str(p), "--no-onnx"], {},
                   f"http://127.0.0.1:{p}/v2/models/{MODEL}/infer", v2_body()),
    )  # fmt: skip
    run(
        "mlc-serve-batch-path",
        lambda p: ([*mlc_cmd, str(p), "--no-onnx", "--no-row-path"], {},
                   f"http://127.0.0.1:{p}/invocations", split_body()),
    )  # fmt: skip
    run(
        "mlc-serve-onnx",
        lambda p: ([*mlc_cmd, str(p), "--no-row-path"], {}, f"http://127.0.0.1:{p}/invocations",
                   split_body()),
    )  # fmt: skip

    mlflow_bin = a.peer_mlflow / "bin" / "mlflow"
    path = os.environ.get("PATH", "")
    for extra in ({}, {"PYTHONPATH": src}):
        tag = "" if not extra else "+mlc-on-pythonpath"

        def mlflow_serve(p: int, e: dict[str, str] = extra) -> Any:
            return (
                [str(mlflow_bin), "models", "serve", "-m", MODEL_URI, "--env-manager", "local",
                 "-h", "127.0.0.1", "-p", str(p), "-w", "1"],
                # it execs `uvicorn` by name: the peer venv's bin must lead PATH
                {"MLFLOW_TRACKING_URI": uri, "PATH": f"{mlflow_bin.parent}:{path}", **e},
                f"http://127.0.0.1:{p}/invocations",
                split_body(),
            )  # fmt: skip

        r = run("mlflow-models-serve" + tag, mlflow_serve)
        if r is None or "error" not in r:
            break

    mls = a.peer_mlserver / "bin" / "mlserver"
    for extra in ({}, {"PYTHONPATH": src}):
        tag = "" if not extra else "+mlc-on-pythonpath"

        def mlserver(p: int, e: dict[str, str] = extra, tag: str = tag) -> Any:
            folder = work / f"mlserver{tag}"
            folder.mkdir(exist_ok=True)
            settings = {
                "host": "127.0.0.1",
                "http_port": p,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "parallel_workers": 0,
            }
            (folder / "settings.json").write_text(json.dumps(settings))
            model_settings = {
                "name": MODEL,
                "implementation": "mlserver_mlflow.MLflowRuntime",
                "parameters": {"uri": str(model_dir)},
            }
            (folder / "model-settings.json").write_text(json.dumps(model_settings))
            return (
                [str(mls), "start", str(folder)],
                {"PATH": f"{mls.parent}:{path}", **e},
                f"http://127.0.0.1:{p}/v2/models/{MODEL}/infer",
                v2_body(),
            )

        r = run("mlserver" + tag, mlserver)
        if r is None or "error" not in r:
            break

    (work / "results.json").write_text(json.dumps({"inproc": local, "servers": results}, indent=1))
    report(local, results)


def report(local: dict[str, Any], results: list[dict[str, Any]]) -> None:
    print("\n| server | c1 req/s | c1 p50 / p99 (ms) | c16 req/s | c16 p50 / p99 (ms) | answer |")
    print("|---|---|---|---|---|---|")
    by = {}
    for r in results:
        if "error" in r:
            cause = r["error"].splitlines()[-1][:120] if r["error"] else "no answer"
            print(f"| {r['name']} | failed: {cause} | | | | |")
            continue
        by[r["name"]] = r
        c1, c16 = r["c1"], r["c16"]
        print(
            f"| {r['name']} | {c1['rps']:.1f} | {c1['p50']:.2f} / {c1['p99']:.2f} "
            f"| {c16['rps']:.1f} | {c16['p50']:.2f} / {c16['p99']:.2f} | {r['check']}"
            + (f"; non-2xx {c1['non2xx'] + c16['non2xx']}" if c1["non2xx"] + c16["non2xx"] else "")
            + " |"
        )
    print(
        f"\nin-process one row, median of {CALLS}: pyfunc predict "
        f"{local['pyfunc_predict']:.3f} ms, ONNX load_package {local['onnx_load_package']:.3f} ms, "
        f"mlc track (sklearn) {local['track_score_sklearn']:.3f} ms, "
        f"mlc track (onnx) {local['track_score_onnx']:.3f} ms; registered model predict_proba "
        f"{local['model_predict_proba']:.3f} ms, its compiled row path "
        f"{local['compiled_row']:.4f} ms, mlc track row path (guard typing included) "
        f"{local['track_row']:.4f} ms ({local['row_path']}); row path vs batch path over "
        f"{local['row_vs_batch_rows']} rows: max |diff| {local['row_vs_batch_max_abs']:.3g}"
    )
    bare = by.get("bare-fastapi")
    if bare is None:
        return
    for name in by:
        if name == "bare-fastapi":
            continue
        r = by[name]
        print(
            f"{name} / bare at c16: {r['c16']['rps'] / bare['c16']['rps']:.2f}x, "
            f"at c1: {r['c1']['rps'] / bare['c1']['rps']:.2f}x"
        )
    mlc_py = by.get("mlc-serve-no-onnx")
    for peer in [n for n in by if n.startswith(("mlflow", "mlserver"))]:
        if mlc_py is not None:
            ratio = mlc_py["c16"]["rps"] / by[peer]["c16"]["rps"]
            print(f"mlc-serve-no-onnx / {peer} at c16: {ratio:.2f}x")


if __name__ == "__main__":
    main()
