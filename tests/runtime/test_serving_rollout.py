"""Automatic rollouts inside the serving runtime, against a real MLflow sqlite store.

Three registered versions: v1 (the stable model), v2 (trained on flipped labels, so that every
answer shows which version gave it) and v3, v2 wrapped to raise on rows of region `west` (a
release that really fails). Each server is a subprocess on a free 127.0.0.1 port under a
bounded load; answers are checked against the test's own fitted models and each decision
against the counts the test itself saw.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support.credit_like import PURPOSES, REGIONS, column, frame

from mlc.runtime import artifacts, audit
from mlc.runtime.context import StepContext
from mlc.runtime.serving.rollout import judge, quantile
from mlc.runtime.steps import register

NAME = "rollout-risk"
FEATURES = ["age", "income", "region", "purpose"]
TOKEN = "roll-s3cret"
START_S = 90.0
HERE = Path(__file__).resolve().parent


CONTRACT = {
    "on_failure": "stop",
    "columns": {
        "age": column("int", min=18, max=100),
        "income": column("float", min=0),
        "region": column("category", allowed=REGIONS),
        "purpose": column("category", allowed=PURPOSES),
        "default": column("int", allowed=[0, 1]),
    },
}


def _pipeline() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["region", "purpose"]),
        ]
    )
    return Pipeline([("prep", prep), ("est", LogisticRegression(max_iter=500))])


def _register(root: Path, tag: str, model: Any) -> None:
    locs = {n: str(root / f"{tag}-{n}") for n in ("model", "metrics", "verdict")}
    artifacts.save_object(locs["model"], model, "model")
    artifacts.save_json(locs["metrics"], "metrics", {"metrics": {"score": 0.8}}, "metrics")
    artifacts.save_json(locs["verdict"], "verdict", {"passed": True}, "verdict", passed=True)
    params: dict[str, Any] = {
        "model_name": NAME,
        "promotion": {"policy": "auto", "min_improvement": 0.0},
        "approvers": [],
        "contract": CONTRACT,
        "target": "default",
        "task": "classification",
        "model": {"name": "LogisticRegression", "params": {}},
        "tuning_storage": None,
    }
    ctx = StepContext(project_dir=root, run_id=f"run-{tag}")
    register.run(params, locs, {"model_version": str(root / f"{tag}-mv")}, ctx)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from mlflow import MlflowClient
    from rollout_faulty import FailsOnRegion

    root = tmp_path_factory.mktemp("rollout-store")
    train = frame(0, 300)
    v1 = _pipeline().fit(train[FEATURES], train["default"])
    v2 = _pipeline().fit(train[FEATURES], 1 - train["default"])
    v3 = FailsOnRegion(v2, "west")
    for tag, model in (("v1", v1), ("v2", v2), ("v3", v3)):
        _register(root, tag, model)
    uri = f"sqlite:///{root / '.mlc' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias(NAME, "champion", "1")
    client.set_registered_model_alias(NAME, "challenger", "2")
    return {"root": root, "uri": uri, "models": {"1": v1, "2": v2, "3": v2}, "client": client}


def _champion(store: dict[str, Any]) -> str:
    return str(store["client"].get_model_version_by_alias(NAME, "champion").version)


def _plan(
    store: dict[str, Any],
    folder: Path,
    strategy: dict[str, Any],
    candidate: str,
    weight: float,
    min_requests: int,
) -> Path:
    plan: dict[str, Any] = {
        "model_name": NAME,
        "tracking_uri": store["uri"],
        "task": "classification",
        "target": "default",
        "features": FEATURES,
        "contract": CONTRACT,
        "strategy": strategy,
        # pinned versions: each test is independent of where another one left the aliases
        "tracks": [
            {"name": "stable", "alias": None, "version": "1", "weight": 100 - weight},
            {"name": "canary", "alias": None, "version": candidate, "weight": weight},
        ],
        "limits": {"max_body_bytes": 20_000, "max_rows": 50, "timeout_s": 10.0},
        "admin_token": TOKEN,
        "seed": 3,
        "audit_dir": str(folder / "state"),
        "rollout": {"min_requests": min_requests, "tick_s": 0.1},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A serving subprocess (the faulty model's module on its PYTHONPATH)."""

    def __init__(self, plan: Path, folder: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.err = folder / "stderr.txt"
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "mlc.runtime.serving", "--plan", str(plan)),
                *("--port", str(self.port), "--log-level", "info"),
            ],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.err.open("wb"),
        )
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.stderr()}")
            try:
                if self.call("GET", "/v2/health/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop(signal.SIGKILL)
        raise AssertionError(f"server not ready in {START_S} s: {self.stderr()}")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def call(self, method: str, path: str, token: str | None = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            headers = {"authorization": f"Bearer {token}"} if token else {}
            conn.request(method, path, body=b"{}" if method == "POST" else None, headers=headers)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()

    def status(self) -> dict[str, Any]:
        code, doc = self.call("GET", "/admin/rollout", TOKEN)
        assert code == 200, doc
        return dict(doc)

    def wait_for(self, done: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            doc = self.status()
            if done(doc) or time.monotonic() > deadline:
                return doc
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Path], Server]]:
    started: list[Server] = []

    def start(plan: Path) -> Server:
        started.append(Server(plan, plan.parent))
        return started[-1]

    yield start
    for srv in started:
        assert srv.stop() == 0, srv.stderr()


def _body(row: dict[str, Any]) -> bytes:
    types = {"age": "INT64", "income": "FP64", "region": "BYTES", "purpose": "BYTES"}
    return json.dumps(
        {
            "inputs": [
                {"name": c, "shape": [1], "datatype": types[c], "data": [row[c]]} for c in FEATURES
            ]
        }
    ).encode()


class Load:
    """Threads posting one-row V2 requests over keep-alive connections until stopped (or
    `per_thread` each); every answer is kept: (row index, status, version, label)."""

    def __init__(
        self,
        port: int,
        rows: pd.DataFrame,
        threads: int,
        per_thread: int,
        path: str = f"/v2/models/{NAME}/infer",
    ) -> None:
        self.port, self.per_thread, self.path = port, per_thread, path
        records = rows[FEATURES].to_dict("records")
        self.bodies = [_body(r) for r in records]
        self.answers: list[tuple[int, int, str, Any]] = []
        self.broken: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        path = self.path
        headers = {"content-type": "application/json"}
        got: list[tuple[int, int, str, Any]] = []
        sent = 0
        while not self._stop.is_set() and sent < self.per_thread:
            index = (offset * 7919 + sent) % len(self.bodies)
            try:
                conn.request("POST", path, body=self.bodies[index], headers=headers)
                resp = conn.getresponse()
                doc = json.loads(resp.read())
            except (OSError, http.client.HTTPException, ValueError) as exc:
                with self._lock:
                    self.broken.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
                continue
            finally:
                sent += 1
            label = None
            if resp.status == 200:
                label = (doc["outputs"][0]["data"][0], doc["outputs"][1]["data"])
            got.append((index, resp.status, resp.getheader("x-mlc-model-version") or "", label))
        conn.close()
        with self._lock:
            self.answers += got

    def stop(self) -> None:
        self._stop.set()
        self.join()

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=120)


def _check_answers(load: Load, rows: pd.DataFrame, models: dict[str, Any]) -> None:
    """Every 200 holds what the answering version's own model predicts for the row."""
    frame = rows[FEATURES].reset_index(drop=True)
    for version, model in models.items():
        mine = [(i, got) for i, code, v, got in load.answers if code == 200 and v == version]
        if mine:
            idx = [i for i, _ in mine]
            assert [got[0] for _, got in mine] == model.predict(frame.iloc[idx]).tolist()
            proba = np.array([got[1] for _, got in mine])
            np.testing.assert_allclose(proba, model.predict_proba(frame.iloc[idx]), rtol=1e-9)


def _events(folder: Path) -> list[dict[str, Any]]:
    return [r for r in audit.read(folder / "state") if r["event"].startswith("rollout.")]


# -- the judgement, on its own -------------------------------------------------------------------


def test_quantiles_and_the_judgement_follow_the_buckets() -> None:
    bounds = (0.01, 0.1, 1.0)
    # 90 requests in (0, 10 ms], 10 in (10, 100 ms]: p50 inside the first bucket, p99 the second
    counts = [90, 10, 0, 0]
    assert quantile(0.5, counts, bounds) == pytest.approx(0.01 * 50 / 90)
    assert quantile(0.99, counts, bounds) == pytest.approx(0.01 + 0.09 * 9 / 10)
    assert quantile(0.5, [0, 0, 0, 0], bounds) is None
    assert quantile(0.99, [0, 0, 0, 5], bounds) == 1.0  # +Inf answers the highest bound
    conds = [{"metric": "error_rate", "op": ">", "threshold": 0.1}]
    assert judge(conds, 29, 0, [29] + [0] * 11, 30)[0] == "inconclusive"
    verdict, evidence = judge(conds, 40, 5, [40] + [0] * 11, 30)
    assert verdict == "fail" and evidence["conditions"][0]["value"] == pytest.approx(5 / 40)
    assert judge(conds, 40, 4, [40] + [0] * 11, 30)[0] == "pass"  # 0.1 is not > 0.1
    drift = [{"metric": "drift_score", "op": ">", "threshold": 0.2}]
    assert judge(drift, 400, 0, [400] + [0] * 11, 30)[0] == "inconclusive"


def test_a_strategy_the_controller_cannot_act_on_is_refused() -> None:
    from mlc.runtime.context import StepError
    from mlc.runtime.serving.rollout import check_strategy

    cases = [
        ({"kind": "canary", "steps": [50, 20, 100]}, "strategy.steps [50, 20, 100]"),
        ({"kind": "canary", "steps": [10, 50]}, "ending at 100"),
        ({"kind": "canary", "bake_time": -1}, "strategy.bake_time"),
        (
            {"kind": "blue_green", "rollback": [{"metric": "cpu", "op": ">", "threshold": 1}]},
            "strategy.rollback[0].metric 'cpu' is unknown",
        ),
        (
            {"kind": "canary", "rollback": [{"metric": "error_rate", "op": "!=", "threshold": 1}]},
            "strategy.rollback[0] needs op",
        ),
    ]
    for strategy, words in cases:
        with pytest.raises(StepError, match=re.escape(words)):
            check_strategy(strategy)
    check_strategy({"kind": "canary", "steps": [10, 50, 100], "bake_time": 60, "rollback": []})


# -- automatic rollouts --------------------------------------------------------------------------


def test_automatic_advance_and_promotion_under_load(
    store: dict[str, Any], tmp_path: Path, serve: Callable[[Path], Server]
) -> None:
    strategy = {
        "kind": "canary",
        "steps": [50, 100],
        "bake_time": 2,
        "rollback": [
            {"metric": "error_rate", "op": ">", "threshold": 0.05},
            {"metric": "latency_p99_ms", "op": ">", "threshold": 5000},
        ],
    }
    srv = serve(_plan(store, tmp_path / "promote", strategy, "2", 50, 30))
    rows = frame(11, 200)
    load = Load(srv.port, rows, threads=2, per_thread=100_000)
    try:
        doc = srv.wait_for(lambda d: d["state"] == "promoted", timeout=40)
    finally:
        load.stop()
    assert doc["state"] == "promoted", (doc, srv.stderr())
    assert doc["weights"] == {"canary": 100.0, "stable": 0.0}
    assert _champion(store) == "2"
    assert not load.broken and all(code == 200 for _, code, _, _ in load.answers)
    _check_answers(load, rows, store["models"])
    events = _events(tmp_path / "promote")
    assert [e["event"] for e in events if e["event"] != "rollout.inconclusive"] == [
        "rollout.advance",
        "rollout.promote",
    ]
    seen_v2 = sum(1 for _, _, v, _ in load.answers if v == "2")
    for event in events[-2:]:
        ev = event["details"]["evidence"]
        assert event["details"]["by"] == "auto"
        assert 30 <= ev["requests"] <= seen_v2 and ev["errors"] == 0
        assert ev["candidate"] == {"track": "canary", "version": "2"}
        error_rate, p99 = ev["conditions"]
        assert error_rate["value"] == 0.0 and error_rate["holds"] is False
        assert 0 < p99["value"] <= 10_000 and p99["threshold"] == 5000
    advance, promote = events[-2]["details"], events[-1]["details"]
    assert advance["weights_before"] == {"canary": 50.0, "stable": 50.0}
    assert advance["weights_after"] == {"canary": 100.0, "stable": 0.0}
    assert promote["evidence"]["alias_from"] == "1" and promote["evidence"]["alias_to"] == "2"
    assert audit.verify(tmp_path / "promote" / "state").ok


def test_automatic_rollback_on_an_injected_error_rate(
    store: dict[str, Any], tmp_path: Path, serve: Callable[[Path], Server]
) -> None:
    champion = _champion(store)
    strategy = {
        "kind": "canary",
        "steps": [50, 100],
        "bake_time": 1.5,
        "rollback": [{"metric": "error_rate", "op": ">", "threshold": 0.1}],
    }
    srv = serve(_plan(store, tmp_path / "rollback", strategy, "3", 50, 30))
    rows = frame(12, 200)
    load = Load(srv.port, rows, threads=2, per_thread=100_000)
    try:
        doc = srv.wait_for(lambda d: d["state"] == "rolled_back", timeout=40)
    finally:
        load.stop()
    assert doc["state"] == "rolled_back", (doc, srv.stderr())
    assert doc["weights"] == {"canary": 0.0, "stable": 100.0}
    assert _champion(store) == champion
    # the 500s are exactly v3's answers to rows of region west
    west = set(np.flatnonzero(rows["region"].to_numpy() == "west"))
    for index, code, version, _ in load.answers:
        failed = version == "3" and index in west
        assert code == (500 if failed else 200), (index, code, version)
    v3 = [(i, code) for i, code, v, _ in load.answers if v == "3"]
    assert any(code == 500 for _, code in v3)
    _check_answers(load, rows, {"1": store["models"]["1"], "3": store["models"]["3"]})
    last = doc["last_decision"]
    assert last["decision"] == "rollback" and last["by"] == "auto"
    ev = last["evidence"]
    assert ev["requests"] >= 30 and ev["requests"] <= len(v3)
    assert ev["conditions"][0]["value"] == pytest.approx(ev["errors"] / ev["requests"])
    assert ev["conditions"][0]["value"] > 0.1 and ev["conditions"][0]["holds"]
    assert [e["event"] for e in _events(tmp_path / "rollback")][-1] == "rollout.rollback"
    # after the rollback the stable version answers everything
    after = Load(srv.port, rows, threads=1, per_thread=40)
    after.join()
    assert {(code, v) for _, code, v, _ in after.answers} == {(200, "1")}


def test_no_traffic_is_inconclusive_and_the_cli(
    store: dict[str, Any],
    tmp_path: Path,
    serve: Callable[[Path], Server],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from mlc.compiler.cli import load_commands

    strategy = {
        "kind": "canary",
        "steps": [20, 100],
        "bake_time": 0.5,
        "rollback": [{"metric": "error_rate", "op": ">", "threshold": 0.1}],
    }
    folder = tmp_path / "quiet"
    srv = serve(_plan(store, folder, strategy, "2", 20, 30))
    doc = srv.wait_for(lambda d: d["extensions"] >= 3, timeout=20)
    assert doc["state"] == "baking" and doc["weights"] == {"canary": 20.0, "stable": 80.0}
    assert doc["step"] == 0 and doc["last_decision"]["decision"] == "inconclusive"
    assert doc["last_decision"]["evidence"]["requests"] == 0
    events = _events(folder)
    assert len(events) >= 3 and {e["event"] for e in events} == {"rollout.inconclusive"}
    assert all(e["details"]["evidence"]["min_requests"] == 30 for e in events)

    app = load_commands(("mlc.compiler.cli.rollout",))
    runner = CliRunner()
    monkeypatch.setenv("MLC_SERVE_ADMIN_TOKEN", TOKEN)
    got = runner.invoke(app, ["rollout", "status", "--url", srv.url])
    assert got.exit_code == 0, got.output
    assert "baking, step 1/2" in got.output and "canary 20%" in got.output
    assert "0 candidate request(s)" in got.output and "inconclusive" in got.output
    got = runner.invoke(app, ["rollout", "status", "--url", srv.url, "--json"])
    assert json.loads(got.output)["weights"] == {"canary": 20.0, "stable": 80.0}

    monkeypatch.setenv("MLC_SERVE_ADMIN_TOKEN", "wrong")
    got = runner.invoke(app, ["rollout", "advance", "--url", srv.url])
    assert got.exit_code == 2 and "refused the admin token (401)" in got.output
    monkeypatch.delenv("MLC_SERVE_ADMIN_TOKEN")
    got = runner.invoke(app, ["rollout", "status", "--url", srv.url])
    assert got.exit_code == 2 and "set MLC_SERVE_ADMIN_TOKEN" in got.output
    monkeypatch.setenv("MLC_SERVE_ADMIN_TOKEN", TOKEN)
    got = runner.invoke(app, ["rollout", "status", "--url", f"http://127.0.0.1:{_free_port()}"])
    assert got.exit_code == 2 and "cannot reach the server" in got.output
    other = tmp_path / "other" / "mlc.yaml"
    other.parent.mkdir()
    other.write_text("apiVersion: mlc/v1\nname: other-model\n")
    got = runner.invoke(app, ["rollout", "advance", str(other), "--url", srv.url])
    assert got.exit_code == 2 and f"serves model '{NAME}'" in got.output
    assert "is 'other-model'" in got.output
    assert srv.status()["weights"] == {"canary": 20.0, "stable": 80.0}  # nothing moved

    got = runner.invoke(app, ["rollout", "advance", "--url", srv.url])
    assert got.exit_code == 0, got.output
    assert "advance: canary 20%, stable 80% -> canary 100%, stable 0%" in got.output
    got = runner.invoke(app, ["rollout", "rollback", "--url", srv.url])
    assert got.exit_code == 0, got.output
    assert srv.status()["weights"] == {"canary": 0.0, "stable": 100.0}
    got = runner.invoke(app, ["rollout", "promote", "--url", srv.url])
    assert got.exit_code == 2 and "the rollout is rolled back" in got.output
    manual = [e["details"] for e in _events(folder) if e["event"] != "rollout.inconclusive"]
    assert [(m["decision"], m["by"]) for m in manual] == [
        ("advance", "admin"),
        ("rollback", "admin"),
    ]


def test_blue_green_switches_after_the_preview_bakes(
    store: dict[str, Any], tmp_path: Path, serve: Callable[[Path], Server]
) -> None:
    strategy = {
        "kind": "blue_green",
        "bake_time": 1,
        "switch": "auto",
        "rollback": [{"metric": "latency_p50_ms", "op": ">", "threshold": 5000}],
    }
    folder = tmp_path / "bluegreen"
    srv = serve(_plan(store, folder, strategy, "2", 0, 20))
    assert srv.status()["step"] == -1
    rows = frame(14, 100)
    # the preview takes no routed traffic: it is judged on calls naming its version
    load = Load(srv.port, rows, 1, 100_000, path=f"/v2/models/{NAME}/versions/2/infer")
    try:
        doc = srv.wait_for(lambda d: d["state"] == "promoted", timeout=30)
    finally:
        load.stop()
    assert doc["state"] == "promoted", (doc, srv.stderr())
    assert doc["weights"] == {"canary": 100.0, "stable": 0.0}
    assert _champion(store) == "2"
    assert all(code == 200 and v == "2" for _, code, v, _ in load.answers)
    _check_answers(load, rows, store["models"])
    promote = doc["last_decision"]
    assert promote["decision"] == "promote" and promote["weights_before"]["canary"] == 0.0
    p50 = promote["evidence"]["conditions"][0]
    assert p50["metric"] == "latency_p50_ms" and 0 < p50["value"] < 5000
    assert promote["evidence"]["requests"] >= 20


@pytest.mark.slow
def test_ten_thousand_requests_through_advance_promotion_and_rollback(
    store: dict[str, Any], tmp_path: Path, serve: Callable[[Path], Server]
) -> None:
    strategy = {
        "kind": "canary",
        "steps": [10, 50, 100],
        "bake_time": 1,
        "rollback": [{"metric": "error_rate", "op": ">", "threshold": 0.01}],
    }
    folder = tmp_path / "load"
    srv = serve(_plan(store, folder, strategy, "2", 10, 50))
    rows = frame(13, 300)
    load = Load(srv.port, rows, threads=4, per_thread=2_500)
    try:
        doc = srv.wait_for(lambda d: d["state"] == "promoted", timeout=120)
        assert doc["state"] == "promoted", (doc, srv.stderr())
        assert _champion(store) == "2"
        code, answer = srv.call("POST", "/admin/rollout/rollback", TOKEN)
        assert code == 200, answer
        # every decision, the rollback included, was taken while requests kept coming
        assert load.running(), "the load ended before the rollback: raise per_thread"
    finally:
        load.join()
    assert len(load.answers) == 10_000 and not load.broken
    assert all(code == 200 for _, code, _, _ in load.answers)
    _check_answers(load, rows, store["models"])
    assert _champion(store) == "1"
    kinds = [e["event"] for e in _events(folder) if e["event"] != "rollout.inconclusive"]
    assert kinds == ["rollout.advance", "rollout.advance", "rollout.promote", "rollout.rollback"]
