"""Artifact folders: every artifact is a folder (local path or fsspec URL) with `_meta.json`.

Steps read and write artifacts only through these functions, so formats live in one place:
datasets are Parquet (`data.parquet`), Python objects are joblib files (`object.joblib`), JSON
documents are `<name>.json`, text reports are files named by the step.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

META = "_meta.json"


def _fs(location: str) -> tuple[Any, str]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(location)
    return fs, path


def _write_bytes(location: str, name: str, data: bytes) -> None:
    """Write atomically where the filesystem allows (temp name, then rename)."""
    fs, root = _fs(location)
    fs.makedirs(root, exist_ok=True)
    final = f"{root.rstrip('/')}/{name}"
    tmp = f"{root.rstrip('/')}/.{name}.tmp"
    with fs.open(tmp, "wb") as fh:
        fh.write(data)
    fs.mv(tmp, final)


def _read_bytes(location: str, name: str) -> bytes:
    fs, root = _fs(location)
    with fs.open(f"{root.rstrip('/')}/{name}", "rb") as fh:
        data: bytes = fh.read()
    return data


def exists(location: str, name: str = META) -> bool:
    fs, root = _fs(location)
    return bool(fs.exists(f"{root.rstrip('/')}/{name}"))


def write_meta(location: str, artifact_type: str, content_hash: str, **fields: Any) -> None:
    """Write `_meta.json` last: its presence marks a complete artifact."""
    body = {"type": artifact_type, "hash": content_hash, **fields}
    _write_bytes(location, META, json.dumps(body, indent=2, sort_keys=True, default=str).encode())


def read_meta(location: str) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads(_read_bytes(location, META))
    return meta


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_dataframe(location: str, df: pd.DataFrame, **fields: Any) -> str:
    """Save a DataFrame as Parquet; return its content hash (of the Parquet bytes)."""
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    data = buf.getvalue()
    digest = sha256(data)
    _write_bytes(location, "data.parquet", data)
    write_meta(
        location, "dataset", digest, rows=len(df), columns=list(map(str, df.columns)), **fields
    )
    return digest


def load_dataframe(location: str) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(io.BytesIO(_read_bytes(location, "data.parquet")))


def dump_object(obj: Any) -> bytes:
    """The joblib bytes of `obj`, the same for equal objects (see `_canonical_pickler`).

    A plain pickle writes an object met twice as a back-reference, so two equal fitted models
    whose strings happen to be shared differently (a column name read from Parquet against the
    same name from the spec, an interned sklearn default) pickle to different bytes, and the
    same seed and inputs gave a different model hash on every fit.
    """
    buf = io.BytesIO()
    _canonical_pickler()(buf).dump(obj)
    return buf.getvalue()


@functools.cache
def _canonical_pickler() -> type:
    """joblib's pickler, sharing strings by value and writing set members in sorted order.

    Strings are immutable, so sharing every equal string (instead of every identical one)
    loses nothing and makes the bytes depend on values alone; a set's iteration order follows
    string hashes, which change per process (`PYTHONHASHSEED`). Containers and arrays keep
    pickle's sharing by identity: that is the model's structure, which the same fit rebuilds.
    """
    from joblib.numpy_pickle import NumpyPickler

    class CanonicalPickler(NumpyPickler):  # type: ignore[misc]
        dispatch = NumpyPickler.dispatch.copy()
        _plain_str = dispatch[str]

        def __init__(self, fp: Any) -> None:
            # A fixed protocol: the bytes must not change with the interpreter's default.
            super().__init__(fp, protocol=PICKLE_PROTOCOL)
            self._strings: dict[str, int] = {}

        def save_str(self, obj: str) -> None:
            index = self._strings.get(obj)
            if index is not None:
                self.write(self.get(index))
                return
            self._plain_str(obj)
            self._strings[obj] = self.memo[id(obj)][0]

        def save_set(self, obj: set[Any] | frozenset[Any]) -> None:
            try:
                members = sorted(obj)
            except TypeError:  # mixed or unorderable members: order by their pickled bytes
                members = sorted(obj, key=dump_object)
            self.save_reduce(type(obj), (members,), obj=obj)

        dispatch[str] = save_str
        dispatch[set] = save_set
        dispatch[frozenset] = save_set

    return CanonicalPickler


PICKLE_PROTOCOL = 4


def save_object(location: str, obj: Any, artifact_type: str, **fields: Any) -> str:
    """Save `obj` with joblib (canonical bytes, see `dump_object`); return its content hash."""
    data = dump_object(obj)
    digest = sha256(data)
    _write_bytes(location, "object.joblib", data)
    write_meta(location, artifact_type, digest, **fields)
    return digest


def load_object(location: str) -> Any:
    import joblib

    return joblib.load(io.BytesIO(_read_bytes(location, "object.joblib")))


def save_json(location: str, name: str, doc: Any, artifact_type: str, **fields: Any) -> str:
    data = (json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n").encode()
    digest = sha256(data)
    _write_bytes(location, f"{name}.json", data)
    write_meta(location, artifact_type, digest, **fields)
    return digest


def load_json(location: str, name: str) -> Any:
    return json.loads(_read_bytes(location, f"{name}.json"))


def save_text(location: str, name: str, text: str) -> None:
    """An extra file inside an artifact (e.g. a Markdown report); write meta separately."""
    _write_bytes(location, name, text.encode())


def load_text(location: str, name: str) -> str:
    return _read_bytes(location, name).decode()
