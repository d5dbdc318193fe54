"""The local step cache: content hashes, implementation versions, the entry index.

Layout (`CACHE_LAYOUT` 2), under `.mlc/cache/`:

- `<key>.<output>/`: one folder per step output, written by the step itself;
- `index.jsonl`: one line per finished step, appended once its outputs are hashed: the key,
  the sha256 of every output file (`<output>/<file>`), the output digests and the summary.

An output folder counts only when the index has a line for its key and every file still
matches: the line goes in after the step's files are complete, so a run killed at any moment
(`kill -9`) leaves either no line (the folders are leftovers, cleared by the next run) or a
complete entry. A line cut by a kill is skipped, and the next append starts on a fresh line.
Dropping an entry (forced re-run, corrupt files) appends a tombstone before removing folders.
The index is rewritten (temp file, then rename) when dead lines outnumber live ones.

Why not a folder per entry renamed into place: on the disks measured here a `mkdir` or a file
create costs ~0.5 ms (a journal write) while the step itself may take less; one appended line
per step keeps the cost of caching to a write into an already open file.

Hashing a fresh output does not read back what the step just wrote when the step already hashed
it: an artifact folder written through `mlc.runtime.artifacts` holds one payload file and a
`_meta.json` carrying that payload's sha256 (written last, from the same bytes). Only
`_meta.json` itself is read; any other layout is hashed file by file. Reuse re-hashes every
file against the index, so a payload whose bytes differ from the recorded hash, for whatever
reason, is reported as corrupt and recomputed, never reused.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from mlc.compiler.ir import Step, StepKind

CACHE_LAYOUT = "2"
"""Bumped when the cache entry layout or key recipe changes (old entries then miss)."""
INDEX_FILE = "index.jsonl"
META_FILE = "_meta.json"
"""The artifact metadata file `mlc.runtime.artifacts` writes last into every artifact."""

# -- hashing -------------------------------------------------------------------------------------


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_of(folder: str | Path) -> dict[str, str]:
    """Relative POSIX path -> sha256 of every file below `folder` (sorted)."""
    out: dict[str, str] = {}
    top = os.fspath(folder)
    for root, dirs, files in os.walk(top):
        dirs.sort()
        rel_root = os.path.relpath(root, top).replace(os.sep, "/")
        prefix = "" if rel_root == "." else rel_root + "/"
        for name in sorted(files):
            out[prefix + name] = sha256_file(os.path.join(root, name))
    return out


def _hash_folder(folder: str, prefix: str) -> dict[str, str]:
    """`prefix + relative path` -> sha256 of every file below `folder`, sorted by path."""
    return {prefix + rel: h for rel, h in files_of(folder).items()}


def _hash_artifact(folder: str, prefix: str) -> dict[str, str]:
    """Like `_hash_folder`, taking the payload's hash from `_meta.json` where it is there."""
    try:
        with os.scandir(folder) as it:
            entries = [(e.name, e.is_file(follow_symlinks=False)) for e in it]
    except FileNotFoundError:
        return {}
    payload = [name for name, is_file in entries if name != META_FILE]
    if len(entries) == 2 and len(payload) == 1 and all(is_file for _, is_file in entries):
        try:
            with open(os.path.join(folder, META_FILE), "rb") as fh:
                meta_bytes = fh.read()
            known = json.loads(meta_bytes).get("hash")
        except (OSError, ValueError, AttributeError):
            known = None
        if isinstance(known, str) and len(known) == 64 and not known.strip(_HEX):
            files = {
                prefix + META_FILE: hashlib.sha256(meta_bytes).hexdigest(),
                prefix + payload[0]: known,
            }
            return dict(sorted(files.items()))
    return _hash_folder(folder, prefix)


_HEX = "0123456789abcdef"


def hash_outputs(folders: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Hash finished outputs (name -> folder): (every file -> sha256, name -> digest of its files).

    File paths are `<output>/<file>`, as the index records them.
    """
    files: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for name in sorted(folders):
        found = _hash_artifact(folders[name], name + "/")
        files.update(found)
        hashes[name] = digest(found)
    return dict(sorted(files.items())), hashes


def digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


_IMPL_VERSIONS: dict[int, str] = {}


def implementation_version(fn: Callable[..., Any]) -> str:
    """`VERSION` of the step's module when it declares one, else a hash of its source file.

    A source hash means editing a step invalidates exactly the entries it produced.
    """
    cached = _IMPL_VERSIONS.get(id(fn))
    if cached is not None:
        return cached
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    declared = getattr(fn, "VERSION", None) or getattr(module, "VERSION", None)
    if declared is not None:
        version = f"v:{declared}"
    else:
        try:
            source = inspect.getsourcefile(fn)
            version = "src:" + sha256_file(Path(source)) if source else f"name:{fn.__qualname__}"
        except (TypeError, OSError):
            version = f"name:{getattr(fn, '__qualname__', repr(fn))}"
    _IMPL_VERSIONS[id(fn)] = version
    return version


IMPL_BY_KIND: dict[str, str] = {}


def module_version(module: str) -> str:
    """Hash of a step module's source plus the private helpers (`_*.py`) beside it.

    Found through the import system's spec, so nothing is imported: a cached rerun never pays
    for importing scikit-learn, torch or MLflow. The package's `__init__.py` (the registry of
    step kinds) is left out: registering a new step kind must not invalidate every entry.
    """
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return f"module:{module}"
    origin = Path(spec.origin)
    helpers = (p for p in origin.parent.glob("_*.py") if not p.name.startswith("__"))
    files = [origin, *sorted(p for p in helpers if p != origin)]
    return "src:" + digest({p.name: sha256_file(p) for p in files})


# -- cache entries -------------------------------------------------------------------------------


def output_dir(cache: str, key: str, name: str) -> str:
    """Where output `name` of the entry `key` lives."""
    return os.path.join(cache, f"{key}.{name}")


def check_files(cache: str, key: str, record: Mapping[str, Any], outputs: Iterable[str]) -> str:
    """ "" when every file of the entry matches the index, else what is wrong.

    Every file is re-hashed: this is what catches a flipped byte.
    """
    files = record.get("files")
    if not isinstance(files, dict) or set(record.get("outputs") or {}) != set(outputs):
        return "its index line does not describe the step's outputs"
    for rel, expected in files.items():
        name, _, inner = str(rel).partition("/")
        try:
            actual = sha256_file(os.path.join(output_dir(cache, key, name), inner))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return f"'{rel}' is missing"
        if actual != expected:
            return f"'{rel}' does not match its recorded hash"
    return ""


def _index_line(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, default=str).encode() + b"\n"


class CacheIndex:
    """The append-only `index.jsonl` of one cache folder (one writer: the run lock holder)."""

    def __init__(self, cache: str) -> None:
        self.cache = cache
        self.path = os.path.join(cache, INDEX_FILE)
        self.entries: dict[str, dict[str, Any]] = {}
        self._lines = 0
        self._torn = False
        self._fh: Any = None
        self._load()

    def _load(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            return
        self._torn = bool(raw) and not raw.endswith(b"\n")
        for line in raw.splitlines():
            self._lines += 1
            try:
                record = json.loads(line)
                key = record["key"]
            except (ValueError, KeyError, TypeError):
                continue  # cut by a kill, or not ours: the entry it described is recomputed
            if record.get("dropped"):
                self.entries.pop(key, None)
            else:
                self.entries[key] = record

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def _append(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            self._fh = open(self.path, "ab")  # noqa: SIM115 (closed in close())
            if self._torn:
                self._fh.write(b"\n")
                self._torn = False
        self._fh.write(_index_line(record))
        # No fsync: the page cache outlives a killed process, which is the failure guarded here.
        self._fh.flush()
        self._lines += 1

    def add(self, record: dict[str, Any]) -> None:
        self._append(record)
        self.entries[record["key"]] = record

    def drop(self, key: str, outputs: Iterable[str]) -> None:
        """Forget an entry, then remove its folders (the tombstone goes first)."""
        if key in self.entries:
            self._append({"key": key, "dropped": True})
            del self.entries[key]
        for name in outputs:
            shutil.rmtree(output_dir(self.cache, key, name), ignore_errors=True)

    def compact(self) -> None:
        """Rewrite the index without dead lines when they outnumber the live ones."""
        if self._lines <= 2 * len(self.entries) + 100:
            return
        self.rewrite(self.entries.keys())

    def rewrite(self, keep: Iterable[str]) -> None:
        """Replace the index (temp file, then rename) by the live lines of the keys in `keep`;
        entries not kept are forgotten (their folders are the caller's to remove)."""
        self.close()
        self.entries = {k: self.entries[k] for k in keep if k in self.entries}
        tmp = self.path + f".tmp-{os.getpid()}"
        with open(tmp, "wb") as fh:
            for record in self.entries.values():
                fh.write(_index_line(record))
        os.replace(tmp, self.path)
        self._lines = len(self.entries)
        self._torn = False

    def live_folders(self) -> set[str]:
        return {
            f"{key}.{name}" for key, record in self.entries.items() for name in record["outputs"]
        }

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def source_fingerprint(step: Step, project_dir: Path) -> Any:
    """What an ingest step reads from outside the cache: a file's hash, else "volatile"."""
    if step.kind is not StepKind.INGEST:
        return None
    source = step.params.get("source") or {}
    path = source.get("path")
    if not isinstance(path, str) or "://" in path:
        return "volatile"
    full = Path(path) if Path(path).is_absolute() else project_dir / path
    if full.is_file():
        return sha256_file(full)
    if full.is_dir():
        return digest(files_of(full))
    return "missing"
