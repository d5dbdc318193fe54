"""The local step cache: content hashes, implementation versions, entry checks, atomic moves.

An entry is a folder `.mlc/cache/<key>/` holding one sub-folder per step output and
`_step.json` (written last, inside the temp folder before the rename) listing the sha256 of
every file; an entry whose files do not match is corrupt and gets recomputed.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlc.compiler.ir import Step, StepKind

CACHE_LAYOUT = "1"
"""Bumped when the cache entry layout or key recipe changes (old entries then miss)."""
STEP_FILE = "_step.json"

# -- hashing -------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_of(folder: Path) -> dict[str, str]:
    """Relative POSIX path -> sha256 of every file below `folder` (sorted)."""
    out: dict[str, str] = {}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            out[path.relative_to(folder).as_posix()] = sha256_file(path)
    return out


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
    for importing scikit-learn, torch or MLflow.
    """
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return f"module:{module}"
    origin = Path(spec.origin)
    files = [origin, *sorted(p for p in origin.parent.glob("_*.py") if p != origin)]
    return "src:" + digest({p.name: sha256_file(p) for p in files})


# -- cache entries -------------------------------------------------------------------------------


def entry_ok(entry: Path, outputs: Mapping[str, Any]) -> str | None:
    """None when the entry is complete and intact, else what is wrong with it."""
    try:
        record = json.loads((entry / STEP_FILE).read_text())
    except FileNotFoundError:
        return f"{STEP_FILE} is missing"
    except ValueError:
        return f"{STEP_FILE} is not valid JSON"
    files = record.get("files")
    if not isinstance(files, dict) or set(record.get("outputs", {})) != set(outputs):
        return f"{STEP_FILE} does not describe the step's outputs"
    for rel, expected in files.items():
        path = entry / rel
        if not path.is_file():
            return f"'{rel}' is missing"
        if sha256_file(path) != expected:
            return f"'{rel}' does not match its recorded hash"
    return None


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished temp folder into place, replacing an older entry without a gap."""
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


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
