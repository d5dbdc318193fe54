"""The local step cache: content hashes, implementation versions, entry checks, atomic moves.

An entry is a folder `.mlc/cache/<key>/` holding one sub-folder per step output and
`_step.json` (written last, inside the temp folder before the rename) listing the sha256 of
every file; an entry whose files do not match is corrupt and gets recomputed.

Hashing a fresh entry does not read back what the step just wrote when the step already hashed
it: an artifact folder written through `mlc.runtime.artifacts` holds one payload file and a
`_meta.json` carrying that payload's sha256 (written last, from the same bytes). Only
`_meta.json` itself is read; any other layout is hashed file by file. Reuse still re-hashes
every file against `_step.json`, so a payload whose bytes differ from the recorded hash, for
whatever reason, is reported as corrupt and recomputed, never reused.
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

CACHE_LAYOUT = "1"
"""Bumped when the cache entry layout or key recipe changes (old entries then miss)."""
STEP_FILE = "_step.json"
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


def hash_outputs(tmp: str, outputs: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Hash a finished temp entry: (every file -> sha256, output name -> digest of its files).

    File paths are relative to the entry (`<output>/<file>`), as `_step.json` records them.
    """
    files: dict[str, str] = {}
    hashes: dict[str, str] = {}
    names = set(outputs)
    for name in sorted(names):
        found = _hash_artifact(os.path.join(tmp, name), name + "/")
        files.update(found)
        hashes[name] = digest(found)
    # Steps are handed their output folders only, so nothing else in the entry is theirs.
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


def read_entry(entry: str, outputs: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """`(record, "")` for a complete, intact entry; `(None, problem)` for a corrupt one;
    `(None, "")` when there is no entry.

    Every file is re-hashed against `_step.json`: this is what catches a flipped byte.
    """
    try:
        with open(os.path.join(entry, STEP_FILE), "rb") as fh:
            record = json.loads(fh.read())
    except FileNotFoundError:
        return None, (f"{STEP_FILE} is missing" if os.path.exists(entry) else "")
    except NotADirectoryError:
        return None, "the entry is not a folder"
    except ValueError:
        return None, f"{STEP_FILE} is not valid JSON"
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict) or set(record.get("outputs", {})) != set(outputs):
        return None, f"{STEP_FILE} does not describe the step's outputs"
    for rel, expected in files.items():
        try:
            actual = sha256_file(os.path.join(entry, rel))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None, f"'{rel}' is missing"
        if actual != expected:
            return None, f"'{rel}' does not match its recorded hash"
    return record, ""


def entry_ok(entry: str | Path, outputs: Mapping[str, Any]) -> str | None:
    """None when the entry is complete and intact, else what is wrong with it."""
    record, problem = read_entry(os.fspath(entry), outputs)
    if record is not None:
        return None
    return problem or f"{STEP_FILE} is missing"


def replace_dir(tmp: str, final: str) -> None:
    """Move a finished temp folder into place, replacing an older entry without a gap."""
    try:
        os.replace(tmp, final)
        return
    except OSError:
        # The entry exists (a forced or corrupt step's): swap it out, then drop it.
        if not os.path.exists(final):
            raise
    head, name = os.path.split(final)
    old = os.path.join(head, f".old-{name}-{os.getpid()}")
    os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


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
