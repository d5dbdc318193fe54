"""Writing outputs: atomically (temp folder, then rename) and with a sha256 manifest."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

MANIFEST_NAME = "mlc-manifest.json"
MANIFEST_VERSION = "1"


def manifest(files: Mapping[str, bytes], **fields: str) -> bytes:
    """Manifest of a folder: sha256 per file, plus deterministic facts (no timestamps)."""
    body = {
        "manifest_version": MANIFEST_VERSION,
        **fields,
        "files": {p: hashlib.sha256(files[p]).hexdigest() for p in sorted(files)},
    }
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()


def write_tree(dest: Path, files: Mapping[str, str | bytes], **manifest_fields: str) -> list[Path]:
    """Replace folder `dest` with `files` and their manifest, all or nothing."""
    encoded = {p: c.encode() if isinstance(c, str) else c for p, c in files.items()}
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
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
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [dest / rel for rel in sorted(encoded)] + [dest / MANIFEST_NAME]


def write_file(dest: Path, content: str | bytes) -> None:
    """Write one file atomically."""
    data = content.encode() if isinstance(content, str) else content
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
