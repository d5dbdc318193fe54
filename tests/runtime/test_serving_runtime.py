"""The serving runtime (`python -m mlc.runtime.serving`) against a real MLflow sqlite store.

Two registered versions of a credit-like pipeline (v1 `champion`, v2 `challenger`, trained on
flipped labels so that the two disagree); each server is a subprocess on a free 127.0.0.1 port.
Every answer is checked against the test's own fitted models.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support.credit_like import PURPOSES, REGIONS, column, frame

from mlc.runtime import artifacts, metrics_contract
from mlc.runtime.context import StepContext
from mlc.runtime.serving import read_log
from mlc.runtime.serving.guards import Guard, Rejection
from mlc.runtime.serving.predlog import PredictionLog
from mlc.runtime.serving.routing import Router
from mlc.runtime.steps import register

NAME = "credit-risk"
FEATURES = ["age", "income", "region", "purpose"]
KEY_REF = "env:MLC_TEST_SERVE_KEY"
KEY = "serve-test-key"
START_S = 90.0


CONTRACT = {
    "on_failure": "stop",
    "columns": {
        "applicant_id": column("int", unique=True),
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

    from mlc.runtime.steps._transforms import LogTransform, Pseudonymiser

    pseudo = Pseudonymiser(key_ref=KEY_REF, buckets=64)
    pseudo.bind_key(KEY)
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age"]),
            ("log", Pipeline([("log", LogTransform()), ("scale", StandardScaler())]), ["income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"]),
            ("pseudo", Pipeline([("hash", pseudo), ("scale", StandardScaler())]), ["purpose"]),
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
    ctx = StepContext(project_dir=root, run_id=f"run-{tag}", secrets={"MLC_TEST_SERVE_KEY": KEY})
    register.run(params, locs, {"model_version": str(root / f"{tag}-mv")}, ctx)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("serve-store")
    train = frame(0, 300)
    v1 = _pipeline().fit(train[FEATURES], train["default"])
    v2 = _pipeline().fit(train[FEATURES], 1 - train["default"])
    _register(root, "v1", v1)
    _register(root, "v2", v2)
    uri = f"sqlite:///{root / '.mlc' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias(NAME, "champion", "1")
    client.set_registered_model_alias(NAME, "challenger", "2")
    return {"root": root, "uri": uri, "models": {"1": v1, "2": v2}}


def _plan(store: dict[str, Any], folder: Path, **over: Any) -> Path:
    plan: dict[str, Any] = {
        "model_name": NAME,
        "tracking_uri": store["uri"],
        "task": "classification",
        "target": "default",
        "features": FEATURES,
        "contract": CONTRACT,
        "strategy": {"kind": "canary"},
        "tracks": [
            {"name": "stable", "alias": "champion", "version": None, "weight": 80, "onnx": None},
            {"name": "canary", "alias": "challenger", "version": None, "weight": 20, "onnx": None},
        ],
        "shadow": None,
        "sticky_header": "x-mlc-key",
        "log": None,
        "limits": {"max_body_bytes": 20_000, "max_rows": 50, "timeout_s": 10.0},
        "secrets": {"MLC_TEST_SERVE_KEY": KEY},
        "admin_token": None,
        "seed": 7,
    }
    plan.update(over)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLC_TEST_SERVE_KEY"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Server:
    """A serving subprocess and a keep-alive connection to it."""

    def __init__(self, plan: Path, folder: Path) -> None:
        self.port = _free_port()
        self.err = folder / "stderr.txt"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlc.runtime.serving",
                "--plan",
                str(plan),
                "--port",
                str(self.port),
            ],
            cwd=folder,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=self.err.open("wb"),
        )
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.stderr()}")
            try:
                if self.get("/v2/health/ready")[0] == 200:
                    return
            except OSError:
                self.conn.close()
            time.sleep(0.1)
        self.stop(signal.SIGKILL)
        raise AssertionError(f"server not ready in {START_S} s: {self.stderr()}")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        raw = body if isinstance(body, bytes) else None if body is None else json.dumps(body)
        try:
            self.conn.request(method, path, body=raw, headers=headers or {})
            resp = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn.request(method, path, body=raw, headers=headers or {})
            resp = self.conn.getresponse()
        data = resp.read()
        kind = resp.getheader("content-type", "")
        doc = json.loads(data) if "json" in kind else data.decode()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, doc

    def get(self, path: str) -> tuple[int, dict[str, str], Any]:
        return self.request("GET", path)

    def post(self, path: str, body: Any, **headers: str) -> tuple[int, dict[str, str], Any]:
        return self.request("POST", path, body, {"content-type": "application/json", **headers})

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.conn.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(store: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("serve-main")
    srv = Server(_plan(store, folder, admin_token="s3cret"), folder)
    yield srv
    assert srv.stop() == 0, srv.stderr()


def _rows(seed: int, n: int) -> pd.DataFrame:
    return frame(seed, n)[FEATURES]


def _v2_body(rows: pd.DataFrame, **kw: Any) -> dict[str, Any]:
    types = {"age": "INT64", "income": "FP64", "region": "BYTES", "purpose": "BYTES"}
    return {
        "inputs": [
            {"name": c, "shape": [len(rows)], "datatype": types[c], "data": rows[c].tolist()}
            for c in FEATURES
        ],
        **kw,
    }


def _metrics(srv: Server) -> dict[str, float]:
    status, headers, text = srv.get("/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


# -- start-up -----------------------------------------------------------------------------------


def test_a_track_that_fails_to_load_stops_the_start(store: dict[str, Any], tmp_path: Path) -> None:
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"alias": "nope"}, ["track 'canary'", "alias 'nope'", "no alias 'nope'"]),
        ({"alias": None, "version": "99"}, ["track 'canary'", "version 99", "no version 99"]),
    ]
    for i, (change, words) in enumerate(cases):
        tracks = [
            {"name": "stable", "alias": "champion", "version": None, "weight": 80, "onnx": None},
            {"name": "canary", "alias": "challenger", "version": None, "weight": 20, "onnx": None}
            | change,
        ]
        plan = _plan(store, tmp_path / f"bad{i}", tracks=tracks)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "mlc.runtime.serving",
                "--plan",
                str(plan),
                "--port",
                str(_free_port()),
            ],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        for word in words:
            assert word in proc.stderr, proc.stderr
    # Without the pseudonymisation key the warm-up predict fails: named, before listening.
    plan = _plan(store, tmp_path / "nokey", secrets={})
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlc.runtime.serving",
            "--plan",
            str(plan),
            "--port",
            str(_free_port()),
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "track 'stable'" in proc.stderr and "MLC_TEST_SERVE_KEY" in proc.stderr, proc.stderr


# -- protocols ------------------------------------------------------------------------------------


def test_health_and_v2_metadata(server: Server) -> None:
    assert server.get("/v2/health/live")[0] == 200
    assert server.get("/v2/health/ready")[2] == {"ready": True}
    status, _, meta = server.get(f"/v2/models/{NAME}")
    assert status == 200
    assert meta["name"] == NAME and meta["platform"] == "mlc" and meta["versions"] == ["1", "2"]
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
        ("age", "INT64", [-1, 1]),
        ("income", "FP64", [-1, 1]),
        ("region", "BYTES", [-1, 1]),
        ("purpose", "BYTES", [-1, 1]),
    ]
    assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]
    assert server.get(f"/v2/models/{NAME}/versions/2")[2]["versions"] == ["2"]
    assert server.get(f"/v2/models/{NAME}/ready")[2] == {"name": NAME, "ready": True}
    assert server.get(f"/v2/models/{NAME}/versions/1/ready")[0] == 200
    assert server.get("/v2/models/other")[0] == 404
    assert server.get(f"/v2/models/{NAME}/versions/7")[0] == 404


def test_every_protocol_answers_what_the_model_predicts(
    server: Server, store: dict[str, Any]
) -> None:
    rows = _rows(11, 12)
    models = store["models"]

    def expect(version: str) -> tuple[list[Any], np.ndarray]:
        model = models[version]
        return model.predict(rows).tolist(), model.predict_proba(rows)

    for version in ("1", "2"):
        status, headers, doc = server.post(
            f"/v2/models/{NAME}/versions/{version}/infer", _v2_body(rows, id="req-1")
        )
        assert status == 200, doc
        assert headers["x-mlc-model-version"] == version == doc["model_version"]
        assert doc["model_name"] == NAME and doc["id"] == "req-1"
        label, proba = doc["outputs"]
        labels, expected = expect(version)
        assert label["name"] == "label" and label["data"] == labels and label["shape"] == [12]
        assert proba["name"] == "probabilities" and proba["shape"] == [12, 2]
        np.testing.assert_allclose(np.reshape(proba["data"], (12, 2)), expected, atol=1e-12)

    # [n, 1] shapes with nested data, and the unversioned route (either track may answer).
    body = _v2_body(rows)
    for tensor in body["inputs"]:
        tensor["shape"] = [12, 1]
        tensor["data"] = [[v] for v in tensor["data"]]
    status, headers, doc = server.post(f"/v2/models/{NAME}/infer", body)
    assert status == 200, doc
    labels, expected = expect(headers["x-mlc-model-version"])
    assert headers["x-mlc-track"] in ("stable", "canary")
    np.testing.assert_allclose(np.reshape(doc["outputs"][1]["data"], (12, 2)), expected)

    records = rows.to_dict("records")
    split = {"columns": FEATURES, "data": rows.to_numpy().tolist()}
    calls = [
        (f"/v1/models/{NAME}:predict", {"instances": records}),
        (f"/v1/models/{NAME}:predict", {"instances": split["data"]}),
        ("/invocations", {"dataframe_split": split}),
        ("/invocations", {"dataframe_records": records}),
        ("/invocations", {"inputs": {c: rows[c].tolist() for c in FEATURES}}),
    ]
    for path, payload in calls:
        status, headers, doc = server.post(path, payload)
        assert status == 200, (path, doc)
        labels, expected = expect(headers["x-mlc-model-version"])
        assert doc["predictions"] == labels, path
        np.testing.assert_allclose(doc["probabilities"], expected, atol=1e-12)


def test_one_row_requests_take_the_compiled_path_and_answer_as_the_batch_path(
    server: Server, store: dict[str, Any]
) -> None:
    rows = _rows(13, 40)
    for version in ("1", "2"):
        model = store["models"][version]
        labels, expected = model.predict(rows).tolist(), model.predict_proba(rows)
        for i in range(len(rows)):
            one = rows.iloc[[i]]
            status, _, doc = server.post(
                f"/v2/models/{NAME}/versions/{version}/infer", _v2_body(one)
            )
            assert status == 200, doc
            assert doc["outputs"][0]["data"] == [labels[i]]
            np.testing.assert_allclose(doc["outputs"][1]["data"], expected[i], rtol=0, atol=1e-9)
    # the server says so when a track has no compiled row path; these pipelines have one
    assert "take the batch path" not in server.stderr()


def test_each_track_says_whether_one_row_requests_are_compiled(
    store: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from mlc.runtime.serving import plan as plans
    from mlc.runtime.serving.models import load_tracks

    doc = json.loads(_plan(store, tmp_path).read_text())
    paths = {t.row_path for t in load_tracks(plans.check(doc)).values()}
    # the pipelines' transforms are replayed; their LogisticRegression is called as is
    assert paths == {"compiled (calls LogisticRegression as is)"}
    with caplog.at_level("WARNING", logger="mlc.serve"):
        tracks = load_tracks(plans.check({**doc, "row_path": False}))
    assert {t.row_path for t in tracks.values()} == {"turned off (--no-row-path)"}
    assert all(t.row_fn is None for t in tracks.values())
    assert "track 'stable' (v1): one-row requests take the batch path" in caplog.text


def test_v2_bodies_match_the_open_inference_protocol_schema(
    server: Server, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from support import oip

    oip_types = oip.types(tmp_path_factory.mktemp("oip"))
    rows = _rows(14, 3)
    request = _v2_body(rows, id="schema-1", parameters={"content_type": "pd"})
    oip_types.InferenceRequest.model_validate(request)  # what the tests send is V2 too
    status, _, doc = server.post(f"/v2/models/{NAME}/versions/1/infer", request)
    assert status == 200, doc
    answer = oip_types.InferenceResponse.model_validate(doc)
    assert answer.model_name == NAME and answer.id == "schema-1"
    assert [o.name for o in answer.outputs] == ["label", "probabilities"]
    assert [o.shape for o in answer.outputs] == [[3], [3, 2]]
    status, _, meta = server.get(f"/v2/models/{NAME}")
    assert status == 200
    model = oip_types.MetadataModelResponse.model_validate(meta)
    assert {t.name for t in model.inputs or []} == set(FEATURES)
    status, _, info = server.get("/v2")
    assert status == 200
    oip_types.MetadataServerResponse.model_validate(info)
    # errors: the protocol's error bodies
    status, _, bad = server.post(f"/v2/models/{NAME}/infer", {"inputs": "nope"})
    assert 400 <= status < 500
    oip_types.InferenceErrorResponse.model_validate(bad)
    status, _, gone = server.get("/v2/models/no-such-model")
    assert status == 404
    oip_types.MetadataModelErrorResponse.model_validate(gone)


# -- guards ---------------------------------------------------------------------------------------


def _bad(rows: pd.DataFrame, column: str, row: int, value: Any) -> dict[str, Any]:
    body = _v2_body(rows)
    tensor = next(t for t in body["inputs"] if t["name"] == column)
    tensor["data"][row] = value
    return body


def test_guards_refuse_bad_input_naming_input_row_and_rule(server: Server) -> None:
    rows = _rows(12, 5)
    infer = f"/v2/models/{NAME}/versions/1/infer"
    missing = _v2_body(rows)
    missing["inputs"] = [t for t in missing["inputs"] if t["name"] != "income"]
    wrong_type = _v2_body(rows)
    wrong_type["inputs"][0]["datatype"] = "BYTES"
    cases: list[tuple[Any, int, list[str]]] = [
        (b"{not json", 400, ["not JSON"]),
        (missing, 422, ["income", "missing"]),
        (_bad(rows, "age", 1, "old"), 422, ["'age' row 1", "dtype"]),
        (_bad(rows, "age", 2, 12), 422, ["'age' row 2", "min 18", "rule min"]),
        (_bad(rows, "age", 0, 130), 422, ["'age' row 0", "max 100"]),
        (_bad(rows, "age", 3, 30.5), 422, ["'age' row 3", "dtype int"]),
        (_bad(rows, "region", 4, "mars"), 422, ["'region' row 4", "not in allowed", "allowed"]),
        (_bad(rows, "income", 3, None), 422, ["'income' row 3", "nullable"]),
        (_bad(rows, "income", 1, -5.0), 422, ["'income' row 1", "min 0"]),
        (wrong_type, 422, ["'age'", "datatype BYTES", "dtype"]),
        (
            {"inputs": [{"name": "age", "shape": [3], "datatype": "INT64", "data": [1]}]},
            400,
            ["shape"],
        ),
        (_v2_body(_rows(13, 51)), 413, ["51 rows", "50"]),
        (_v2_body(_rows(13, 40)) | {"pad": "x" * 20_000}, 413, ["20000"]),
    ]
    for body, status, words in cases:
        got, _, doc = server.post(infer, body)
        assert got == status, (words, doc)
        assert "outputs" not in doc and "predictions" not in doc
        for word in words:
            assert word in doc["error"], (word, doc)
    status, _, doc = server.post(f"/v2/models/{NAME}/versions/1/infer", _bad(rows, "age", 2, 12))
    assert doc["failures"][0] == {
        "input": "age",
        "row": 2,
        "rule": "min",
        "message": "value 12 is below min 18",
    }
    # Every protocol goes through the same guards.
    records = rows.to_dict("records")
    records[1]["purpose"] = "yacht"
    for path, payload in (
        (f"/v1/models/{NAME}:predict", {"instances": records}),
        ("/invocations", {"dataframe_records": records}),
    ):
        status, _, doc = server.post(path, payload)
        assert status == 422 and "'purpose' row 1" in doc["error"], doc
    assert server.post("/invocations", {"dataframe_split": {"columns": ["age"]}})[0] == 400
    assert server.post("/v2/models/nope/infer", _v2_body(rows))[0] == 404
    assert server.post(f"/v2/models/{NAME}/versions/9/infer", _v2_body(rows))[0] == 404
    assert server.post("/v1/models/nope:predict", {"instances": records})[0] == 404


# -- metrics --------------------------------------------------------------------------------------


def test_metrics_export_every_series_and_count_what_was_sent(
    server: Server, store: dict[str, Any]
) -> None:
    before = _metrics(server)
    rows = _rows(14, 4)
    infer = f"/v2/models/{NAME}/versions/1/infer"
    for _ in range(5):
        assert server.post(infer, _v2_body(rows))[0] == 200
    for _ in range(3):
        assert server.post(infer, _bad(rows, "age", 0, 5))[0] == 422
    assert server.post(infer, b"[")[0] == 400
    after = _metrics(server)

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    base = f'model="{NAME}",version="1"'
    assert delta(f'{metrics_contract.REQUESTS_TOTAL}{{{base},code="200"}}') == 5
    assert delta(f'{metrics_contract.REQUESTS_TOTAL}{{{base},code="422"}}') == 3
    assert delta(f'{metrics_contract.REQUESTS_TOTAL}{{{base},code="400"}}') == 1
    assert delta(f"{metrics_contract.REQUEST_DURATION_SECONDS}_count{{{base}}}") == 9
    assert delta(f'mlc_guard_rejections_total{{model="{NAME}",rule="min"}}') == 3
    assert delta(f'mlc_guard_rejections_total{{model="{NAME}",rule="json"}}') == 1
    assert delta(f"mlc_queue_duration_seconds_count{{{base}}}") == 5
    labels = Counter(store["models"]["1"].predict(rows).tolist())
    for cls, count in labels.items():
        assert delta(f'mlc_predictions_total{{{base},class="{cls}"}}') == 5 * count
    bounds = [
        float(m.group(1))
        for key in after
        if (
            m := re.match(
                rf'{metrics_contract.REQUEST_DURATION_BUCKET}\{{{base},le="([^"]+)"\}}', key
            )
        )
        and m.group(1) != "+Inf"
    ]
    assert tuple(bounds) == metrics_contract.LATENCY_BUCKETS_SECONDS
    assert (
        after[f'{metrics_contract.REQUEST_DURATION_BUCKET}{{{base},le="+Inf"}}']
        == after[f"{metrics_contract.REQUEST_DURATION_SECONDS}_count{{{base}}}"]
    )
    _, _, text = server.get("/metrics")
    for series in (
        metrics_contract.REQUESTS_TOTAL,
        metrics_contract.REQUEST_ERRORS_TOTAL,
        metrics_contract.REQUEST_DURATION_SECONDS,
        "mlc_queue_duration_seconds",
        "mlc_guard_rejections_total",
        "mlc_predictions_total",
        "mlc_shadow_disagreements_total",
    ):
        assert f"# TYPE {series} " in text, series


# -- routing --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_canary_gets_its_share_of_2000_requests(server: Server) -> None:
    body = _v2_body(_rows(15, 1))
    tracks: Counter[str] = Counter()
    for _ in range(2000):
        status, headers, _ = server.post(f"/v2/models/{NAME}/infer", body)
        assert status == 200
        tracks[headers["x-mlc-track"]] += 1
    assert abs(tracks["canary"] / 2000 - 0.20) <= 0.03, tracks
    assert tracks["stable"] + tracks["canary"] == 2000


def test_ab_sticky_key_always_reaches_the_same_track(server: Server) -> None:
    body = _v2_body(_rows(16, 1))
    seen: dict[str, set[str]] = {}
    for i in range(60):
        key = f"user-{i % 20}"
        _, headers, _ = server.post(f"/v2/models/{NAME}/infer", body, **{"x-mlc-key": key})
        seen.setdefault(key, set()).add(headers["x-mlc-track"])
    assert all(len(t) == 1 for t in seen.values()), seen
    assert {next(iter(t)) for t in seen.values()} == {"stable", "canary"}


def test_admin_weights_need_the_token(server: Server) -> None:
    url = "/admin/weights"
    assert server.post(url, {"weights": {"stable": 0, "canary": 100}})[0] == 401
    bad = server.post(url, {"weights": {"stable": 0, "canary": 100}}, authorization="Bearer x")
    assert bad[0] == 401
    auth = {"authorization": "Bearer s3cret"}
    assert server.post(url, {"weights": {"stable": 0, "canary": 90}}, **auth)[0] == 422
    assert server.post(url, {"weights": {"gold": 100}}, **auth)[0] == 422
    try:
        status, _, doc = server.post(url, {"weights": {"stable": 0, "canary": 100}}, **auth)
        assert status == 200 and doc == {"weights": {"canary": 100.0, "stable": 0.0}}
        body = _v2_body(_rows(17, 1))
        answered = {
            server.post(f"/v2/models/{NAME}/infer", body)[1]["x-mlc-track"] for _ in range(30)
        }
        assert answered == {"canary"}
    finally:
        assert server.post(url, {"weights": {"stable": 80, "canary": 20}}, **auth)[0] == 200


def test_router_is_seeded_and_sticky() -> None:
    a, b = Router({"stable": 80, "canary": 20}, seed=3), Router({"stable": 80, "canary": 20}, 3)
    draws = [a.choose() for _ in range(500)]
    assert draws == [b.choose() for _ in range(500)]
    assert {a.choose("k-1") for _ in range(20)} == {b.choose("k-1")}
    with pytest.raises(Rejection, match="sum to 110"):
        a.set_weights({"stable": 90, "canary": 20})


# -- shadow, the prediction log and shutdown ------------------------------------------------------


@pytest.mark.slow
def test_shadow_answers_from_stable_and_logs_both_then_sigterm_flushes(
    store: dict[str, Any], tmp_path: Path
) -> None:
    log_dir = tmp_path / "predictions"
    plan = _plan(
        store,
        tmp_path,
        strategy={"kind": "shadow"},
        tracks=[
            {"name": "stable", "alias": "champion", "version": None, "weight": 100, "onnx": None},
            {"name": "canary", "alias": "challenger", "version": None, "weight": 0, "onnx": None},
        ],
        shadow={"track": "stable", "mirror": "canary", "percent": 100},
        log={"path": str(log_dir), "sample": 1.0, "segment_rows": 7, "segment_seconds": 600},
    )
    srv = Server(plan, tmp_path)
    rows = _rows(18, 3)
    ids = []
    for i in range(10):
        status, headers, doc = srv.post(f"/v2/models/{NAME}/infer", _v2_body(rows, id=f"r{i}"))
        assert status == 200 and headers["x-mlc-track"] == "stable" == doc["parameters"]["track"]
        np.testing.assert_allclose(
            np.reshape(doc["outputs"][1]["data"], (3, 2)), store["models"]["1"].predict_proba(rows)
        )
        ids.append(f"r{i}")
    assert srv.post("/admin/weights", {"weights": {"stable": 50, "canary": 50}})[0] == 404
    disagree = int((store["models"]["1"].predict(rows) != store["models"]["2"].predict(rows)).sum())
    assert disagree > 0
    deadline = time.monotonic() + 20
    key = f'mlc_shadow_disagreements_total{{model="{NAME}"}}'
    while _metrics(srv).get(key, 0) < 10 * disagree and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _metrics(srv).get(key) == 10 * disagree
    assert srv.stop(signal.SIGTERM) == 0, srv.stderr()

    log = read_log(log_dir)
    assert len(log) == 60 and not list(log_dir.glob(".*.tmp"))
    served, mirrored = log[~log["shadow"]], log[log["shadow"]]
    assert set(served["track"]) == {"stable"} and set(served["model_version"]) == {"1"}
    assert set(mirrored["track"]) == {"canary"} and set(mirrored["model_version"]) == {"2"}
    for part, version in ((served, "1"), (mirrored, "2")):
        assert sorted(set(part["request_id"])) == sorted(ids)
        for _, group in part.groupby("request_id"):
            inputs = group[FEATURES].reset_index(drop=True)
            pd.testing.assert_frame_equal(inputs, rows.reset_index(drop=True), check_dtype=False)
            model = store["models"][version]
            np.testing.assert_allclose(np.stack(group["probabilities"]), model.predict_proba(rows))
            assert group["label"].tolist() == model.predict(rows).tolist()
    assert (log["latency_ms"] > 0).all()


@pytest.mark.slow
def test_kill_9_mid_segment_leaves_only_closed_segments_readable(
    store: dict[str, Any], tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    log_dir = tmp_path / "predictions"
    plan = _plan(
        store,
        tmp_path,
        log={"path": str(log_dir), "sample": 1.0, "segment_rows": 5, "segment_seconds": 600},
    )
    srv = Server(plan, tmp_path)
    sent = _rows(19, 12)
    for i in range(12):
        path = f"/v2/models/{NAME}/versions/1/infer"
        assert srv.post(path, _v2_body(sent.iloc[[i]], id=f"k{i}"))[0] == 200
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (
        len(list(log_dir.glob("seg-*.parquet"))) < 2 or not list(log_dir.glob(".seg-*.tmp"))
    ):
        time.sleep(0.05)
    assert srv.stop(signal.SIGKILL) == -signal.SIGKILL
    torn = list(log_dir.glob(".seg-*.parquet.tmp"))
    assert len(torn) == 1
    with pytest.raises(Exception, match=r"(?i)parquet|footer|magic|size"):
        pq.read_table(torn[0])
    log = read_log(log_dir)
    assert log["request_id"].tolist() == [f"k{i}" for i in range(10)]
    pd.testing.assert_frame_equal(
        log[FEATURES], sent.iloc[:10].reset_index(drop=True), check_dtype=False
    )


def test_timeout_answers_504_not_a_prediction(store: dict[str, Any], tmp_path: Path) -> None:
    plan = _plan(store, tmp_path, limits={"max_body_bytes": 20_000, "max_rows": 50, "timeout_s": 0})
    srv = Server(plan, tmp_path)
    try:
        status, headers, doc = srv.post(
            f"/v2/models/{NAME}/versions/1/infer", _v2_body(_rows(20, 2))
        )
        assert status == 504 and "did not answer within" in doc["error"] and "outputs" not in doc
        assert headers["x-mlc-model-version"] == "1"
        errors = _metrics(srv)[
            f'{metrics_contract.REQUEST_ERRORS_TOTAL}{{model="{NAME}",version="1"}}'
        ]
        assert errors == 1
    finally:
        assert srv.stop() == 0, srv.stderr()


@pytest.mark.slow
def test_onnx_package_is_the_fast_path_of_its_track(store: dict[str, Any], tmp_path: Path) -> None:
    from mlc.runtime import onnx_export

    parity = {"proba_atol": 1e-5, "atol": 1e-4, "rtol": 1e-4, "quantized_proba_atol": 0.05}
    parity |= {"quantized_rtol": 0.05, "quantized_label_agreement": 0.98}
    package = tmp_path / "package"
    onnx_export.export_package(
        store["models"]["1"],
        frame(0, 200)[FEATURES],
        task="classification",
        features=FEATURES,
        edge={"format": "onnx", "quantize": "none", "opset": 17, "parity": parity},
        contract_columns=CONTRACT["columns"],
        location=str(package),
        model_info={"model_name": NAME, "version": "1"},
        single_runs=5,
    )
    track = {"name": "stable", "alias": None, "version": "1", "weight": 100, "onnx": str(package)}
    srv = Server(_plan(store, tmp_path, strategy={"kind": "recreate"}, tracks=[track]), tmp_path)
    try:
        rows = _rows(21, 30)
        status, headers, doc = srv.post(f"/v2/models/{NAME}/infer", _v2_body(rows))
        assert status == 200 and headers["x-mlc-model-version"] == "1", doc
        model = store["models"]["1"]
        assert doc["outputs"][0]["data"] == model.predict(rows).tolist()
        got = np.reshape(doc["outputs"][1]["data"], (30, 2))
        np.testing.assert_allclose(got, model.predict_proba(rows), atol=1e-5)
        assert srv.post(f"/v2/models/{NAME}/infer", _bad(rows, "age", 0, 3))[0] == 422
    finally:
        assert srv.stop() == 0, srv.stderr()


# -- pieces without a server ----------------------------------------------------------------------


def test_guard_accepts_what_the_contract_allows() -> None:
    guard = Guard(CONTRACT["columns"], FEATURES)
    good = {
        "age": [18, 100, 40.0],
        "income": [0, 1.5, 2],
        "region": REGIONS[:3],
        "purpose": PURPOSES,
    }
    guard.check(good, 3)
    frame = guard.frame(good)
    assert frame["age"].tolist() == [18, 100, 40] and str(frame["age"].dtype) == "int64"
    with pytest.raises(Rejection) as info:
        guard.check({**good, "age": [17, True, float("nan")]}, 3)
    assert [(f["row"], f["rule"]) for f in info.value.failures or []] == [
        (0, "min"),
        (1, "dtype"),
        (2, "dtype"),
    ]


def test_log_rotates_by_age_and_read_log_skips_open_segments(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, segment_rows=100, segment_seconds=0.2)
    log.append([{"request_id": "a", "x": 1.0}])
    deadline = time.monotonic() + 10
    while not list(tmp_path.glob("seg-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    log.append([{"request_id": "b", "x": None}, {"request_id": "c", "x": 2.0}])
    log.close()
    got = read_log(tmp_path)
    expected = pd.DataFrame({"request_id": ["a", "b", "c"], "x": [1.0, np.nan, 2.0]})
    pd.testing.assert_frame_equal(got, expected)
    assert len(list(tmp_path.glob("seg-*.parquet"))) == 2


def test_guard_frame_types_as_cast_to_contract_does() -> None:
    from mlc.runtime.steps._data import cast_to_contract

    columns = {
        "n": column("int", nullable=True),
        "k": column("int"),
        "x": column("float", nullable=True),
        "c": column("category", nullable=True, allowed=["a", "b", 0, True]),
        "s": column("str", nullable=True),
        "t": column("str", nullable=True, allowed=["p", "q"]),
        "f": column("bool", nullable=True),
        "d": column("datetime", nullable=True),
    }
    data: dict[str, list[Any]] = {
        "n": [1, None, 3, 4],
        "k": [1, 2.0, 3, -4],
        "x": [1, None, 2.5, -0.5],
        "c": ["a", None, 0, True],
        "s": ["u", None, "v", "w"],
        "t": ["p", None, "q", "p"],
        "f": [True, None, False, True],
        "d": ["2020-01-01T00:00:00", None, "2021-02-03T04:05:06", "2022-03-04"],
    }
    guard = Guard(columns, list(columns))
    guard.check(data, 4)
    expected = cast_to_contract(pd.DataFrame(data), columns)
    got = guard.frame(data)
    pd.testing.assert_frame_equal(got, expected)
    assert got["c"].tolist() == ["a", None, "0", "true"] and str(got["n"].dtype) == "float64"
    only_texts = {**data, "c": ["a", "b", None, "a"]}
    expected = cast_to_contract(pd.DataFrame(only_texts), columns)
    pd.testing.assert_frame_equal(guard.frame(only_texts), expected)


@pytest.mark.filterwarnings("ignore:The `probability` parameter:FutureWarning")
def test_sklearn_scorer_scores_once_and_labels_as_predict_does() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.svm import SVC

    from mlc.runtime.serving.models import _sklearn_scorer

    rng = np.random.default_rng(3)
    x = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = np.where(x["a"] + 0.5 * rng.normal(size=200) > 0, "bad", "good")
    passes: list[int] = []

    def count(frame: pd.DataFrame) -> pd.DataFrame:
        passes.append(len(frame))
        return frame

    pipe = make_pipeline(FunctionTransformer(count), LogisticRegression()).fit(x, y)
    passes.clear()
    out = _sklearn_scorer(pipe, "classification")(x)
    assert passes == [200]  # predict_proba only: the labels do not score the rows again
    assert out.label == pipe.predict(x).tolist()
    np.testing.assert_allclose(out.proba, pipe.predict_proba(x))
    # SVC's predict does not follow its Platt probabilities: predict itself gives the labels.
    svc = SVC(probability=True, random_state=0).fit(x, y)
    assert _sklearn_scorer(svc, "classification")(x).label == svc.predict(x).tolist()


def test_log_writes_one_table_per_drained_batch_in_closed_segments(tmp_path: Path) -> None:
    import threading

    import pyarrow.parquet as pq

    errors: list[Exception] = []
    log = PredictionLog(tmp_path, segment_rows=7, segment_seconds=600, on_error=errors.append)
    gate = threading.Event()

    def first() -> list[dict[str, Any]]:
        gate.wait(10)  # holds the writer while the other requests queue up
        return [{"request_id": "r0", "x": 0.0}]

    def broken() -> list[dict[str, Any]]:
        raise ValueError("row build failed")

    log.append_later(first)
    log.append_later(broken)
    for i in range(1, 21):
        log.append([{"request_id": f"r{i}", "x": float(i)}, {"request_id": f"r{i}", "x": None}])
    gate.set()
    log.close()
    got = read_log(tmp_path)
    expected = [("r0", 0.0)] + [(f"r{i}", v) for i in range(1, 21) for v in (float(i), None)]
    values = got["x"].astype(object).where(got["x"].notna(), None)
    assert list(zip(got["request_id"], values, strict=True)) == expected
    files = sorted(tmp_path.glob("seg-*.parquet"))
    assert [pq.ParquetFile(f).metadata.num_rows for f in files] == [7, 7, 7, 7, 7, 6]
    assert all(pq.ParquetFile(f).metadata.num_row_groups == 1 for f in files)
    assert not list(tmp_path.glob(".*.tmp")) and [str(e) for e in errors] == ["row build failed"]


def _mutations(rng: random.Random, good: dict[str, Any]) -> bytes | Any:
    """One hostile variant of a valid V2 body: broken JSON, wrong shapes, types and values."""
    body = json.loads(json.dumps(good))
    col = rng.randrange(len(body["inputs"]))
    entry = body["inputs"][col]
    choice = rng.randrange(14)
    if choice == 0:
        return json.dumps(body).encode()[: rng.randrange(1, 40)]  # truncated JSON
    if choice == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))  # binary noise
    if choice == 2:
        entry["data"] = entry["data"][:-1]  # shape mismatch
    elif choice == 3:
        entry["data"][0] = rng.choice(["x", None, [], {}, True, 1e308, -1e308])
    elif choice == 4:
        entry["datatype"] = rng.choice(["FP16", "UINT8", "BOOL", "nonsense", 3, None])
    elif choice == 5:
        entry["name"] = rng.choice(["", "agee", "x" * 300, None, 5])
    elif choice == 6:
        body["inputs"].pop(col)
    elif choice == 7:
        body["inputs"].append(dict(entry))  # duplicate input
    elif choice == 8:
        entry["shape"] = rng.choice([[], [-1], [2, 2, 2], "3", [10**12]])
    elif choice == 9:
        body = rng.choice([[], "inputs", 3, None, {"inputs": {}}, {"inputs": [None]}])
    elif choice == 10:
        return b'{"inputs": [' + b"[" * 5000 + b"]" * 5000 + b"]}"  # deep nesting
    elif choice == 11:
        entry["data"] = [float("nan")] * len(entry["data"])
        return json.dumps(body).encode()  # a NaN literal is not JSON
    elif choice == 12:
        entry["data"] = [rng.choice(REGIONS) for _ in entry["data"]] if col != 1 else entry["data"]
        entry["data"][0] = "\u202e\u0000\ud800".encode("utf-8", "surrogatepass").decode("latin-1")
    else:
        body["parameters"] = {"content_type": rng.choice(["np", "pd", 7])}
        entry["data"] = entry["data"] * 3
    return body


def test_a_thousand_fuzzed_payloads_get_only_4xx_and_the_server_stays_up(server: Server) -> None:
    rng = random.Random(15)
    good = _v2_body(_rows(3, 2))
    codes: dict[int, int] = {}
    for _ in range(1000):
        payload = _mutations(rng, good)
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        status, _, _ = server.request(
            "POST", f"/v2/models/{NAME}/infer", raw, {"content-type": "application/json"}
        )
        codes[status] = codes.get(status, 0) + 1
    assert all(400 <= code < 500 or code == 200 for code in codes), codes
    assert sum(n for code, n in codes.items() if code >= 400) >= 900, codes
    assert server.proc.poll() is None
    assert server.get("/v2/health/ready")[0] == 200
    status, _, doc = server.post(f"/v2/models/{NAME}/infer", good)
    assert status == 200 and len(doc["outputs"][0]["data"]) == 2
