"""Writing outputs: atomically (temp folder, then rename) and with a sha256 manifest.

A write that fails raises `OutputError` naming the path the user gave (not a temp name) and what
is wrong with it in words; the CLI turns it, like any file-system error, into exit 2.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

MANIFEST_NAME = "mlc-manifest.json"
MANIFEST_VERSION = "1"

_PSEUDO_ROOTS = ("proc", "sys")


class OutputError(OSError):
    """An output that cannot be written: `filename` is the user's path, `strerror` the reason."""


def _first_blocking(path: Path) -> Path | None:
    """The first ancestor of `path` (or `path`) that exists but is not a folder one can enter."""
    for part in (*reversed(path.parents), path):
        if os.path.lexists(part) and not os.path.isdir(part):
            return part
    return None


def fs_reason(exc: OSError) -> str:
    """What is wrong with `exc.filename`, in words a user can act on."""
    code = exc.errno
    path = Path(os.fspath(exc.filename)) if exc.filename is not None else None
    if path is not None:
        absolute = Path(os.path.abspath(path))
        if len(absolute.parts) > 1 and absolute.parts[1] in _PSEUDO_ROOTS:
            return f"/{absolute.parts[1]} is a kernel pseudo-file system, not a place for files"
    if code == errno.ELOOP:
        return "a symlink loop (too many levels of symbolic links)"
    if code in (errno.EEXIST, errno.ENOTDIR) and path is not None:
        blocking = _first_blocking(path)
        if blocking is not None and os.path.islink(blocking):
            try:
                os.stat(blocking)
            except OSError as inner:
                what = "a symlink loop" if inner.errno == errno.ELOOP else "a broken symlink"
                return f"it is {what}" if blocking == path else f"'{blocking}' is {what}"
        if blocking is not None:
            return (
                "it is a file, not a folder"
                if blocking == path
                else f"'{blocking}' is a file, not a folder"
            )
    words = {
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.EROFS: "read-only file system",
        errno.ENOSPC: "no space left on the device",
        errno.EDQUOT: "disk quota exceeded",
        errno.ENOENT: "no such file or folder",
        errno.EISDIR: "it is a folder, not a file",
        errno.ENAMETOOLONG: "file name too long",
    }
    if code in words:
        return words[code]
    return (exc.strerror or type(exc).__name__).lower()


def _output_error(exc: OSError, dest: Path, tmp: Path | str | None) -> OutputError:
    name = exc.filename
    inside_tmp = tmp is not None and name is not None and str(name).startswith(str(tmp))
    shown = dest if name is None or inside_tmp else Path(os.fspath(name))
    plain = OSError(exc.errno, exc.strerror, str(shown))
    return OutputError(exc.errno or 0, fs_reason(plain), str(shown))


def manifest(files: Mapping[str, bytes], **fields: str) -> bytes:
    """Manifest of a folder: sha256 per file, plus deterministic facts (no timestamps)."""
    body = {
        "manifest_version": MANIFEST_VERSION,
        **fields,
        "files": {p: hashlib.sha256(files[p]).hexdigest() for p in sorted(files)},
    }
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def write_tree(dest: Path, files: Mapping[str, str | bytes], **manifest_fields: str) -> list[Path]:
    """Replace folder `dest` with `files` and their manifest, all or nothing.

    Raises:
        OutputError: `dest` or a folder above it cannot be written.
    """
    encoded = {p: c.encode() if isinstance(c, str) else c for p, c in files.items()}
    tmp: Path | None = None
    try:
        if os.path.lexists(dest) and not os.path.isdir(dest):
            # os.replace would put the folder over a file the user named by mistake
            raise OSError(errno.ENOTDIR, "not a folder", str(dest))
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
        for rel, content in sorted(encoded.items()):
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        (tmp / MANIFEST_NAME).write_bytes(manifest(encoded, **manifest_fields))
        os.chmod(tmp, 0o755)
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
        try:
            os.replace(tmp, dest)
        except OSError:
            if old is not None:
                os.replace(old, dest)  # the previous outputs stay, as if nothing happened
            raise
        tmp = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise _output_error(exc, dest, tmp) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return [dest / rel for rel in sorted(encoded)] + [dest / MANIFEST_NAME]


def write_file(dest: Path, content: str | bytes) -> None:
    """Write one file atomically.

    Raises:
        OutputError: `dest` or a folder above it cannot be written.
    """
    data = content.encode() if isinstance(content, str) else content
    tmp: str | None = None
    try:
        if os.path.isdir(dest):
            raise OSError(errno.EISDIR, "is a folder", str(dest))
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        tmp = None
    except OSError as exc:
        raise _output_error(exc, dest, tmp) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
