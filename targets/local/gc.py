"""`mlc cache info` / `mlc cache gc`: what the local step cache holds, and dropping what no
recent run used.

An entry is kept when one of the newest `keep_runs` run records (`.mlc/runs/*.json`, any
status) names its key; every other entry is dropped, and so is every folder that no kept index
line vouches for (output folders of killed runs, folders of an older cache layout). The index
is rewritten first (temp file, then rename) and the folders are removed after: a kill in
between leaves folders that no line vouches for, which the next `mlc run` or `mlc cache gc`
clears. The run lock is held throughout, so a running `mlc run` is never cut under.
Registered models live in the MLflow store, not here, and are never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlc.targets.local.cache import INDEX_FILE, CacheIndex, _index_line
from mlc.targets.local.journal import run_lock
from mlc.targets.local.progress import list_runs

CACHE_DIR = "cache"


@dataclass
class CacheReport:
    """What the cache holds, or what `gc` dropped (`dry_run`: would drop)."""

    cache: str
    entries: int = 0
    bytes: int = 0
    kept_entries: int = 0
    kept_bytes: int = 0
    dropped_entries: int = 0
    freed_bytes: int = 0
    removed_folders: list[str] = field(default_factory=list)
    kept_runs: list[str] = field(default_factory=list)
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "cache": self.cache,
            "entries": self.entries,
            "bytes": self.bytes,
            "kept_entries": self.kept_entries,
            "kept_bytes": self.kept_bytes,
            "dropped_entries": self.dropped_entries,
            "freed_bytes": self.freed_bytes,
            "removed_folders": sorted(self.removed_folders),
            "kept_runs": self.kept_runs,
            "dry_run": self.dry_run,
        }


def _size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _folders(cache: str) -> dict[str, int]:
    """Every folder directly under the cache, with its size in bytes."""
    try:
        with os.scandir(cache) as it:
            return {e.name: _size(e.path) for e in it if e.is_dir(follow_symlinks=False)}
    except FileNotFoundError:
        return {}


def cache_info(state: Path) -> CacheReport:
    """Entries the index vouches for and their size; unvouched folders count as removable."""
    cache = str(state / CACHE_DIR)
    index = CacheIndex(cache)
    folders = _folders(cache)
    live = index.live_folders()
    report = CacheReport(cache=cache, entries=len(index.entries))
    report.bytes = sum(folders.values())
    report.kept_entries = report.entries
    report.kept_bytes = sum(size for name, size in folders.items() if name in live)
    report.removed_folders = [name for name in folders if name not in live]
    report.freed_bytes = report.bytes - report.kept_bytes
    report.dry_run = True
    return report


def collect_garbage(state: Path, keep_runs: int = 3, dry_run: bool = False) -> CacheReport:
    """Drop every entry no run among the newest `keep_runs` used; `keep_runs=0` empties it.

    Raises:
        RunError: another `mlc run` holds the project's run lock.
    """
    if keep_runs < 0:
        raise ValueError("keep_runs must be 0 or more")
    cache = str(state / CACHE_DIR)
    if not state.is_dir():  # nothing ran here: no lock file is made either
        return CacheReport(cache=cache, dry_run=dry_run)
    with run_lock(state):
        index = CacheIndex(cache)
        runs = list_runs(state)[:keep_runs]
        used = {s["key"] for r in runs for s in r.get("steps", []) if s.get("key")}
        kept = {k: rec for k, rec in index.entries.items() if k in used}
        folders = _folders(cache)
        live = {f"{k}.{name}" for k, rec in kept.items() for name in rec["outputs"]}
        doomed = [name for name in folders if name not in live]
        report = CacheReport(
            cache=cache,
            entries=len(index.entries),
            bytes=sum(folders.values()),
            kept_entries=len(kept),
            kept_bytes=sum(size for name, size in folders.items() if name in live),
            dropped_entries=len(index.entries) - len(kept),
            freed_bytes=sum(folders[name] for name in doomed),
            removed_folders=doomed,
            kept_runs=[str(r.get("run_id", "")) for r in runs],
            dry_run=dry_run,
        )
        if dry_run or not os.path.isdir(cache):
            return report
        index.close()
        path = os.path.join(cache, INDEX_FILE)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as fh:
            for record in kept.values():
                fh.write(_index_line(record))
        os.replace(tmp, path)
        for name in doomed:
            shutil.rmtree(os.path.join(cache, name), ignore_errors=True)
        return report
