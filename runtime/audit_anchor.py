"""The audit chain's heads in the tracking store, and `mlc audit verify --deep`.

Kept apart from `mlc.runtime.audit` because it loads MLflow (seconds): appending and the plain
chain check never do. The head lives as the `mlc.audit.head` tag of the MLflow experiment a
registration went to; the checkpoint lists those experiments, and `verify` also reads every
experiment of the project's own store (`.mlc/mlflow.db`), so deleting the list hides nothing.

A tracking-store head may lag behind the log (a compile, or a run that never loaded MLflow,
appends without moving it): it must match the log at its own position, and every
`registration` and `promotion` must lie at or before it, since the register step anchors its
records as it writes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mlc.runtime import audit

ANCHOR_TAG = "mlc.audit.head"
PROJECT_STORE = "project"
"""How the checkpoint names the project's own store (`.mlc/mlflow.db`): the project may move."""


def project_uri(state_dir: str | Path) -> str:
    return f"sqlite:///{(Path(state_dir) / 'mlflow.db').resolve()}"


def store_name(state_dir: str | Path, tracking_uri: str) -> str:
    """`project` for the project's own store, else the URI."""
    return PROJECT_STORE if tracking_uri == project_uri(state_dir) else tracking_uri


def _store_uri(state_dir: str | Path, name: str) -> str:
    return project_uri(state_dir) if name == PROJECT_STORE else name


@contextlib.contextmanager
def _mlflow_at(uri: str) -> Iterator[Any]:
    """An MLflow client on `uri`, with the process-wide URIs pointed there and put back after
    (artifact downloads of `models:/` URIs read them), and its set-up chatter muted."""
    import mlflow
    from mlflow import MlflowClient

    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        yield MlflowClient(tracking_uri=uri, registry_uri=uri)
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def anchor(state_dir: str | Path, tracking_uri: str, experiment_id: str) -> None:
    """Put the checkpoint's head on the experiment's tag and list the experiment there.

    Holds the log's lock, so no record lands between reading the head and tagging it.
    """
    with audit.locked(state_dir):
        try:
            head = audit.read_head(state_dir)
        except ValueError:
            head = None
        if head is None:
            return
        entry = {"uri": store_name(state_dir, tracking_uri), "experiment_id": str(experiment_id)}
        stores = [s for s in head.get("stores") or [] if isinstance(s, dict)]
        if entry not in stores:
            head["stores"] = sorted([*stores, entry], key=lambda s: json.dumps(s, sort_keys=True))
            audit.write_head(state_dir, head)
        with _mlflow_at(tracking_uri) as client:
            client.set_experiment_tag(
                str(experiment_id),
                ANCHOR_TAG,
                json.dumps({"records": head["records"], "hash": head["hash"]}, sort_keys=True),
            )


def refresh(state_dir: str | Path) -> None:
    """Move every listed tracking-store head to the checkpoint's (end of a run)."""
    try:
        head = audit.read_head(state_dir)
    except ValueError:
        return
    for store in (head or {}).get("stores") or []:
        if isinstance(store, dict):
            anchor(state_dir, _store_uri(state_dir, str(store["uri"])), str(store["experiment_id"]))


def _heads_in(client: Any, experiments: set[str] | None) -> list[tuple[str, Any]]:
    """(experiment name, parsed tag or None when absent/unreadable) of the store."""
    from mlflow.entities import ViewType

    if experiments is None:
        found = [
            e
            for e in client.search_experiments(view_type=ViewType.ALL)
            if ANCHOR_TAG in (e.tags or {})
        ]
    else:
        found = [client.get_experiment(e) for e in sorted(experiments)]
    out: list[tuple[str, Any]] = []
    for exp in found:
        raw = (exp.tags or {}).get(ANCHOR_TAG)
        try:
            out.append((exp.name, json.loads(raw) if raw is not None else None))
        except ValueError:
            out.append((exp.name, {}))
    return out


def check_tracking(
    state_dir: str | Path,
    head: dict[str, Any] | None,
    hashes: list[str],
    records: list[dict[str, Any]],
    tracking_uris: Iterable[str],
    checked: list[str],
    unchecked: list[str],
) -> list[str]:
    """What disagrees between the log and the heads its tracking stores hold (a store that
    cannot be read goes to `unchecked`: no proof either way)."""
    stores: dict[str, set[str] | None] = {}
    findings: list[str] = []
    if (Path(state_dir) / "mlflow.db").is_file():
        stores[project_uri(state_dir)] = None
    for entry in (head or {}).get("stores") or []:
        if not isinstance(entry, dict):
            continue
        uri = _store_uri(state_dir, str(entry.get("uri")))
        if uri == project_uri(state_dir) and uri not in stores:
            findings.append(
                f"the checkpoint lists the project's tracking store {Path(state_dir) / 'mlflow.db'}"
                ", which is gone: its head cannot be compared"
            )
            continue
        listed = stores.setdefault(uri, set())
        if listed is not None:
            listed.add(str(entry.get("experiment_id")))
    for uri in tracking_uris:
        stores[uri] = None
    anchored = [r for r in records if r.get("event") in audit.ANCHORED_EVENTS]
    tops: list[int] = []
    for uri, experiments in stores.items():
        label = store_name(state_dir, uri)
        label = (
            "the project's tracking store" if label == PROJECT_STORE else f"tracking store {uri}"
        )
        try:
            with _mlflow_at(uri) as client:
                heads = _heads_in(client, experiments)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            unchecked.append(f"{label}: its audit head cannot be read ({first[:200]})")
            continue
        for name, found in heads:
            where = f"the head in {label} (experiment '{name}')"
            if found is None:
                findings.append(f"{where} is gone: the tag {ANCHOR_TAG} was removed")
                continue
            problem = audit.compare_head(where, found, hashes, exact=False)
            if problem:
                findings.append(problem)
            else:
                tops.append(int(found["records"]))
                checked.append(f"agrees with {where} at record {found['records']}")
    top = max(tops, default=0)
    for record in anchored:
        if int(record.get("seq") or 0) > top:
            findings.append(
                f"record {record.get('seq')} ({record.get('event')}) lies past every "
                f"tracking-store head ({f'the last at record {top}' if tops else 'none found'}):"
                " the register step anchors its records as it writes them, so this one was "
                "added afterwards"
            )
    return findings


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files_under(root: Path) -> dict[str, str]:
    out = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            full = os.path.join(folder, name)
            out[Path(full).relative_to(root).as_posix()] = _sha256(full)
    return dict(sorted(out.items()))


def model_digests(model_uri: str, tracking_uri: str) -> dict[str, str]:
    """sha256 of every file of a logged model (`models:/…` or an artifact URI), by path."""
    import mlflow

    bar = os.environ.get(_PROGRESS_BAR)
    # MLflow draws a progress bar per download on stderr: noise in `mlc run`'s step lines.
    os.environ[_PROGRESS_BAR] = "false"
    try:
        with _mlflow_at(tracking_uri), tempfile.TemporaryDirectory(prefix="mlc-audit-") as tmp:
            local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
            return _files_under(Path(local))
    finally:
        if bar is None:
            os.environ.pop(_PROGRESS_BAR, None)
        else:
            os.environ[_PROGRESS_BAR] = bar


_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def _check_step(cache: Path, record: dict[str, Any]) -> tuple[list[str], int]:
    details = record.get("details") or {}
    key, files = str(details.get("key")), details.get("files") or {}
    where = f"cache entry of step '{details.get('step')}' ({key[:12]}…, record {record['seq']})"
    findings, count = [], 0
    outputs: set[str] = set()
    for rel, want in sorted(files.items()):
        name, _, inner = str(rel).partition("/")
        folder = cache / f"{key}.{name}"
        if not folder.is_dir():
            continue  # collected by `mlc cache gc`: nothing left to vouch for
        outputs.add(name)
        try:
            have = _sha256(str(folder / inner))
        except OSError:
            findings.append(f"{where}: '{rel}' is missing")
            continue
        count += 1
        if have != want:
            findings.append(f"{where}: '{rel}' differs from the digest the audit log holds")
    for name in sorted(outputs):
        for rel in _files_under(cache / f"{key}.{name}"):
            if f"{name}/{rel}" not in files:
                findings.append(f"{where}: '{name}/{rel}' was added after the step wrote it")
    return findings, count


def _check_registration(
    state_dir: str | Path, record: dict[str, Any], unchecked: list[str]
) -> tuple[list[str], int]:
    details = record.get("details") or {}
    want = details.get("artifacts")
    if not isinstance(want, dict):
        return [], 0
    model, version = str(details.get("model")), str(details.get("version"))
    where = f"registered model '{model}' version {version} (record {record['seq']})"
    uri = _store_uri(state_dir, str(details.get("store") or details.get("tracking_uri")))
    try:
        with _mlflow_at(uri) as client:
            source = client.get_model_version(model, version).source
        have = model_digests(source, uri)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        unchecked.append(f"{where}: cannot be read from {uri} ({first[:200]})")
        return [], 0
    findings = [
        f"{where}: '{rel}' "
        + ("is missing" if rel not in have else "differs from the digest taken at registration")
        for rel in sorted(want)
        if have.get(rel) != want[rel]
    ]
    findings += [
        f"{where}: '{rel}' was added after registration" for rel in sorted(have) if rel not in want
    ]
    return findings, len(want)


def check_deep(
    state_dir: str | Path, records: list[dict[str, Any]], checked: list[str], unchecked: list[str]
) -> list[str]:
    """Re-hash the cache entries and registered models the log holds digests of."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.get("event") == "step.outputs":
            # A recomputed entry (same key) is described by its latest record.
            latest[str((record.get("details") or {}).get("key"))] = record
    findings: list[str] = []
    cache_files = model_files = 0
    cache = Path(state_dir) / "cache"
    for record in latest.values():
        found, count = _check_step(cache, record)
        findings += found
        cache_files += count
    for record in records:
        if record.get("event") == "registration":
            found, count = _check_registration(state_dir, record, unchecked)
            findings += found
            model_files += count
    checked.append(
        f"deep: {cache_files} cache files and {model_files} registered model files re-hashed"
    )
    return findings
