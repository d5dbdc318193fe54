"""OpenLineage events sent to the endpoint `governance.lineage.openlineage` names, through the
openlineage-python client, to a local HTTP receiver: they arrive as written, they validate
against the RunEvent schema the events name (2-0-2, vendored in tests/support from
OpenLineage/OpenLineage@8f02abf spec/OpenLineage.json), and a receiver that is down costs a
warning, never the run."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mlc.runtime import lineage

SCHEMA = Path(__file__).resolve().parents[1] / "support" / "openlineage-2-0-2.json"
REPO = Path(__file__).resolve().parents[2]

Received = list[tuple[str, dict[str, str], dict[str, Any]]]


class _Receiver(http.server.BaseHTTPRequestHandler):
    got: Received = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.got.append((self.path, dict(self.headers), json.loads(self.rfile.read(length))))
        self.send_response(201)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    got: Received = []
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", _free_port()), type("Handler", (_Receiver,), {"got": got})
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()


def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    # the schema file is the one the events' schemaURL names
    assert schema["$id"] == lineage.RUN_EVENT_SCHEMA.split("#")[0]
    run_event = {**schema, "$ref": "#/$defs/RunEvent"}
    cls = jsonschema.validators.validator_for(schema)
    return cls(run_event, format_checker=cls.FORMAT_CHECKER)


def _events(sender: lineage.EventSender | None) -> list[str]:
    lines = lineage.RunEventLines("credit-risk", "run-1", sender)
    return [
        lines.line("START", "train", {"train-data": "abc"}, {"model": None}),
        lines.line("COMPLETE", "train", {"train-data": "abc"}, {"model": "def"}),
        lines.line("FAIL", "evaluate", {"model": "def"}, {}),
    ]


def test_events_arrive_as_written_and_validate(
    receiver: tuple[str, Received], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, got = receiver
    monkeypatch.setenv("OL_KEY", "s3cret")
    governance = {"lineage": {"openlineage": {"url": url, "api_key": "env:OL_KEY"}}}
    sender = lineage.sender_for(governance)
    assert sender is not None
    written = _events(sender)
    assert sender.sent == 3 and sender.failed is None
    assert [path for path, _, _ in got] == ["/api/v1/lineage"] * 3
    assert {headers["Authorization"] for _, headers, _ in got} == {"Bearer s3cret"}
    assert [body for _, _, body in got] == [json.loads(line) for line in written]
    validator = _validator()
    for _, _, body in got:
        validator.validate(body)
    assert [body["eventType"] for _, _, body in got] == ["START", "COMPLETE", "FAIL"]
    # the schema catches a broken event: the check is not vacuous
    broken = dict(got[0][2])
    broken["eventType"] = "FINISHED"
    assert list(validator.iter_errors(broken))


def test_a_spec_namespace_replaces_the_default(receiver: tuple[str, Received]) -> None:
    url, got = receiver
    sender = lineage.sender_for({"lineage": {"openlineage": {"url": url, "namespace": "risk"}}})
    written = _events(sender)
    body = got[1][2]
    assert body["job"] == {"facets": {}, "name": "credit-risk.train", "namespace": "risk"}
    assert body["run"]["facets"]["parent"]["job"]["namespace"] == "risk"
    assert {d["namespace"] for d in body["inputs"] + body["outputs"]} == {"risk"}
    # the file keeps the default namespace
    assert json.loads(written[1])["job"]["namespace"] == "mlc/credit-risk"


def test_a_receiver_that_is_down_warns_once_and_stops(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens
    sender = lineage.sender_for({"lineage": {"openlineage": {"url": url, "timeout": 2}}})
    assert sender is not None
    written = _events(sender)
    assert len(written) == 3 and sender.sent == 0 and sender.failed
    err = capsys.readouterr().err
    assert err.count("OpenLineage events are not reaching") == 1 and url in err


def test_no_endpoint_no_sender_and_a_missing_key_warns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert lineage.sender_for(None) is None
    assert lineage.sender_for({"lineage": {"openlineage": None}}) is None
    monkeypatch.delenv("OL_MISSING", raising=False)
    endpoint = {"url": "http://127.0.0.1:9", "api_key": "env:OL_MISSING"}
    assert lineage.sender_for({"lineage": {"openlineage": endpoint}}) is None
    assert "env:OL_MISSING is not set" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_sends_every_step_event(
    receiver: tuple[str, Received], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlc.compiler import api

    url, got = receiver
    project = tmp_path / "diabetes"
    shutil.copytree(
        REPO / "examples" / "diabetes", project, ignore=shutil.ignore_patterns(".mlc", "out")
    )
    monkeypatch.chdir(project)
    done = api.run(
        project / "mlc.yaml", [f"+governance.lineage={{openlineage: {{url: '{url}'}}}}"], quiet=True
    )
    assert done.outcome is not None, done.check.diagnostics
    assert done.outcome.status == "succeeded", done.outcome.status
    (events,) = (project / ".mlc" / "lineage" / "events").glob("*.jsonl")
    written = [json.loads(line) for line in events.read_text().splitlines()]
    assert [body for _, _, body in got] == written
    kinds = {e["eventType"] for e in written}
    assert kinds == {"START", "COMPLETE"} and len(written) >= 4
    validator = _validator()
    for event in written:
        validator.validate(event)
