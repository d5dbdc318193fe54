"""Lineage: which data, spec and code produced which model version; run events as OpenLineage.

Two files under the project's `.mlc/lineage/`:

- `models.jsonl`: one record per registered model version (model name, version, data hash,
  spec hash, code version, model hash, run id) — what `mlc lineage [PROJECT] [MODEL]` queries.
- `events/<run id>.jsonl`: OpenLineage run events (`START`, `COMPLETE`, `FAIL`), one per step
  transition, with the step's input and output artifacts as datasets, so any OpenLineage
  consumer (Marquez, a catalogue) can ingest a local run.

With `governance.lineage.openlineage` in the spec, every event is also POSTed to that endpoint
by the `openlineage-python` client's HTTP transport (extra `mlc[lineage]`), as it is written.
The file stays the record: an endpoint that is down, slow or refusing costs one warning on
stderr and no further attempts in that run, never the run itself.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import json
import os
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LINEAGE_DIR = "lineage"
EXPORTS_FILE = "exports.jsonl"
MODELS_FILE = "models.jsonl"
PRODUCER = "https://github.com/mlc-project/mlc/tree/main/runtime"
RUN_EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
VERSION_FACET_SCHEMA = (
    "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json"
    "#/$defs/DatasetVersionDatasetFacet"
)
PARENT_FACET_SCHEMA = (
    "https://openlineage.io/spec/facets/1-0-1/ParentRunFacet.json#/$defs/ParentRunFacet"
)
EVENT_TYPES = ("START", "COMPLETE", "FAIL", "ABORT")


def _append_line(path: Path, record: dict[str, Any], durable: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            fh.write(line)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            # A line cut by a kill: the records before and after it are still good.
            continue
    return out


@functools.lru_cache(maxsize=4096)
def run_uuid(run_id: str, step_id: str = "") -> str:
    """OpenLineage wants UUID run ids: a stable one per (mlc run, step)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mlc:{run_id}:{step_id}"))


def _dataset(namespace: str, name: str, content_hash: str | None) -> dict[str, Any]:
    facets: dict[str, Any] = {}
    if content_hash:
        facets["version"] = {
            "_producer": PRODUCER,
            "_schemaURL": VERSION_FACET_SCHEMA,
            "datasetVersion": content_hash,
        }
    return {"namespace": namespace, "name": name, "facets": facets}


def run_event(
    event_type: str,
    *,
    pipeline: str,
    run_id: str,
    step_id: str,
    inputs: dict[str, str | None],
    outputs: dict[str, str | None],
    when: dt.datetime | None = None,
) -> dict[str, Any]:
    """An OpenLineage `RunEvent` for one step of an mlc run.

    Args:
        event_type: `START`, `COMPLETE`, `FAIL` or `ABORT`.
        pipeline: the spec's name (the job namespace is `mlc/<pipeline>`).
        run_id: the mlc run id; the step's run is a child of the pipeline's run.
        step_id: the IR step id (the job name is `<pipeline>.<step>`).
        inputs: artifact id -> content hash (None when unknown yet).
        outputs: artifact id -> content hash.
        when: event time (default now, UTC).
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown OpenLineage event type {event_type!r}")
    namespace = f"mlc/{pipeline}"
    stamp = (when or dt.datetime.now(dt.UTC)).isoformat(timespec="milliseconds")
    return {
        "eventType": event_type,
        "eventTime": stamp,
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT_SCHEMA,
        "run": {
            "runId": run_uuid(run_id, step_id),
            "facets": {
                "parent": {
                    "_producer": PRODUCER,
                    "_schemaURL": PARENT_FACET_SCHEMA,
                    "job": {"namespace": namespace, "name": pipeline},
                    "run": {"runId": run_uuid(run_id)},
                }
            },
        },
        "job": {"namespace": namespace, "name": f"{pipeline}.{step_id}", "facets": {}},
        "inputs": [_dataset(namespace, a, h) for a, h in sorted(inputs.items())],
        "outputs": [_dataset(namespace, a, h) for a, h in sorted(outputs.items())],
    }


class RunEventLines:
    """Serialises the step events of one mlc run as JSON lines, fast.

    Equal, byte for byte, to `json.dumps(run_event(...), sort_keys=True, separators=(",", ":"))`
    (a test holds them together); the parts every event of the run shares are serialised once,
    which matters when a pipeline has hundreds of small steps.
    """

    def __init__(self, pipeline: str, run_id: str, sender: EventSender | None = None) -> None:
        namespace = f"mlc/{pipeline}"
        self.pipeline = pipeline
        self.run_id = run_id
        self.sender = sender
        """Also sends each event to an OpenLineage endpoint (None: the file only)."""
        dumps = _compact
        parent = run_event(
            "START", pipeline=pipeline, run_id=run_id, step_id="", inputs={}, outputs={}
        )["run"]["facets"]["parent"]
        self._tail = (
            f',"producer":{dumps(PRODUCER)},"run":{{"facets":{{"parent":{dumps(parent)}}},"runId":'
        )
        self._schema = f',"schemaURL":{dumps(RUN_EVENT_SCHEMA)}}}'
        self._ns = f',"namespace":{dumps(namespace)}}}'
        self._version = (
            f'{{"facets":{{"version":{{"_producer":{dumps(PRODUCER)},'
            f'"_schemaURL":{dumps(VERSION_FACET_SCHEMA)},"datasetVersion":'
        )

    def _datasets(self, items: dict[str, str | None]) -> str:
        parts = []
        for name, content_hash in sorted(items.items()):
            if content_hash:
                head = f"{self._version}{_compact(content_hash)}}}}},"
            else:
                head = '{"facets":{},'
            parts.append(f'{head}"name":{_compact(name)}{self._ns}')
        return "[" + ",".join(parts) + "]"

    def line(
        self,
        event_type: str,
        step_id: str,
        inputs: dict[str, str | None],
        outputs: dict[str, str | None],
        when: dt.datetime | None = None,
    ) -> str:
        """One event as a JSON line (with its newline)."""
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown OpenLineage event type {event_type!r}")
        stamp = (when or dt.datetime.now(dt.UTC)).isoformat(timespec="milliseconds")
        job = _compact(f"{self.pipeline}.{step_id}")
        text = (
            f'{{"eventTime":"{stamp}","eventType":"{event_type}",'
            f'"inputs":{self._datasets(inputs)},'
            f'"job":{{"facets":{{}},"name":{job}{self._ns},'
            f'"outputs":{self._datasets(outputs)}'
            f'{self._tail}"{run_uuid(self.run_id, step_id)}"}}{self._schema}\n'
        )
        if self.sender is not None:
            self.sender.send(json.loads(text))
        return text


class EventSender:
    """POSTs RunEvents to an OpenLineage HTTP endpoint; the first failure warns and stops it.

    Args:
        url: the consumer's base URL (events go to `<url>/api/v1/lineage`).
        api_key: bearer token, if the consumer wants one.
        timeout: seconds per event.
        namespace: job and dataset namespace replacing `mlc/<pipeline>`.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = 5.0,
        namespace: str | None = None,
    ) -> None:
        from openlineage.client.transport.http import (
            ApiKeyTokenProvider,
            HttpConfig,
            HttpTransport,
            TokenProvider,
        )

        auth = ApiKeyTokenProvider({"api_key": api_key}) if api_key else TokenProvider({})
        # one try: a consumer that is down must not slow every step of the run
        config = HttpConfig(url=url, timeout=timeout, auth=auth, retry={"total": 0})
        self.url = url
        self.namespace = namespace
        self.transport = HttpTransport(config)
        self.sent = 0
        self.failed: str | None = None

    def send(self, event: dict[str, Any]) -> bool:
        """Send one event; False (and, the first time, a warning) when it did not arrive."""
        if self.failed is not None:
            return False
        if self.namespace:
            event = _renamespaced(event, self.namespace)
        try:
            self.transport.emit(event)  # type: ignore[arg-type]
        except Exception as exc:  # requests, urllib3 and the client raise many types
            self.failed = f"{type(exc).__name__}: {str(exc)[:300]}"
            print(
                f"mlc: warning: OpenLineage events are not reaching {self.url} "
                f"({self.failed}); the run goes on, its events stay in .mlc/lineage/events/",
                file=sys.stderr,
            )
            return False
        self.sent += 1
        return True


def _renamespaced(event: dict[str, Any], namespace: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(event))
    out["job"]["namespace"] = namespace
    parent = out.get("run", {}).get("facets", {}).get("parent")
    if parent:
        parent["job"]["namespace"] = namespace
    for key in ("inputs", "outputs"):
        for dataset in out.get(key, ()):
            dataset["namespace"] = namespace
    return out


API_KEY_ENV = "OPENLINEAGE_API_KEY"
"""Where a cluster job finds the endpoint's key (mounted from the secret reference)."""


def sender_for(governance: Mapping[str, Any] | None) -> EventSender | None:
    """The sender the spec's `governance.lineage.openlineage` asks for, or None.

    The key's reference is read from the environment: `env:NAME` from `$NAME`, any other
    scheme from `OPENLINEAGE_API_KEY` (where cluster jobs mount it). Without the client
    installed, or without the key, a warning and no sender: lineage must not stop a run.
    """
    endpoint = ((governance or {}).get("lineage") or {}).get("openlineage")
    if not endpoint:
        return None
    ref = endpoint.get("api_key")
    key = None
    if ref:
        scheme, _, rest = str(ref).partition(":")
        key = os.environ.get(rest if scheme == "env" else API_KEY_ENV)
        if not key:
            print(
                f"mlc: warning: the OpenLineage key {ref} is not set here; events are not sent",
                file=sys.stderr,
            )
            return None
    try:
        return EventSender(
            str(endpoint["url"]),
            api_key=key,
            timeout=float(endpoint.get("timeout") or 5.0),
            namespace=endpoint.get("namespace"),
        )
    except ImportError:
        print(
            "mlc: warning: governance.lineage.openlineage needs the openlineage-python client "
            "(pip install 'mlc[lineage]'); events are not sent",
            file=sys.stderr,
        )
        return None


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def events_path(state_dir: str | Path, run_id: str) -> Path:
    return Path(state_dir) / LINEAGE_DIR / "events" / f"{run_id}.jsonl"


def emit_event(state_dir: str | Path, event: dict[str, Any], run_id: str) -> None:
    """Append an OpenLineage event to the run's event file.

    Not fsynced: a killed process loses nothing already written to the page cache, and an
    fsync per step event would dominate the cost of small steps.
    """
    _append_line(events_path(state_dir, run_id), event, durable=False)


def read_events(state_dir: str | Path, run_id: str) -> list[dict[str, Any]]:
    return _read_lines(events_path(state_dir, run_id))


def record_export(state_dir: str | Path, **fields: Any) -> dict[str, Any]:
    """Record an edge package of a model version (its files' digests, parity, precision)."""
    record = {**fields, "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    _append_line(Path(state_dir) / LINEAGE_DIR / EXPORTS_FILE, record)
    return record


def exports(state_dir: str | Path) -> list[dict[str, Any]]:
    """The export records, oldest first."""
    return _read_lines(Path(state_dir) / LINEAGE_DIR / EXPORTS_FILE)


def record_model(
    state_dir: str | Path,
    *,
    model_name: str,
    version: str,
    run_id: str,
    data_hash: str | None,
    spec_hash: str | None,
    code_version: str | None,
    model_hash: str | None,
    tracking_uri: str = "",
    aliases: list[str] | None = None,
    reason: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Record that (data hash, spec hash, code version) produced `model_name` version `version`;
    `reason` is why it was trained (a retrain decision with its evidence), when one was given."""
    record: dict[str, Any] = {
        "model_name": model_name,
        "version": str(version),
        "run_id": run_id,
        "data_hash": data_hash,
        "spec_hash": spec_hash,
        "code_version": code_version,
        "model_hash": model_hash,
        "tracking_uri": tracking_uri,
        "aliases": sorted(aliases or []),
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if reason is not None:
        record["reason"] = reason
    _append_line(Path(state_dir) / LINEAGE_DIR / MODELS_FILE, record)
    return record


def query(
    state_dir: str | Path,
    model_name: str | None = None,
    *,
    version: str | None = None,
    data_hash: str | None = None,
    spec_hash: str | None = None,
) -> list[dict[str, Any]]:
    """Model lineage records matching every given filter (hash filters match by prefix).

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> _ = record_model(d, model_name="m", version="1", run_id="r", data_hash="abc",
        ...                  spec_hash="def", code_version="mlc 0.1", model_hash="123")
        >>> [r["version"] for r in query(d, "m", data_hash="ab")]
        ['1']
    """
    out = []
    for rec in _read_lines(Path(state_dir) / LINEAGE_DIR / MODELS_FILE):
        if model_name is not None and rec.get("model_name") != model_name:
            continue
        if version is not None and str(rec.get("version")) != str(version):
            continue
        if data_hash and not str(rec.get("data_hash") or "").startswith(data_hash):
            continue
        if spec_hash and not str(rec.get("spec_hash") or "").startswith(spec_hash):
            continue
        out.append(rec)
    return out
