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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlc.targets.local.cache import CacheIndex
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
        return {**asdict(self), "removed_folders": sorted(self.removed_folders)}


def _size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _report(index: CacheIndex, keep: set[str], runs: list[str], dry_run: bool) -> CacheReport:
    """Sizes of the folders under the cache, split into those the kept entries own and the
    rest (entries not kept, and folders no index line vouches for)."""
    try:
        with os.scandir(index.cache) as it:
            folders = {e.name: _size(e.path) for e in it if e.is_dir(follow_symlinks=False)}
    except FileNotFoundError:
        folders = {}
    live = {
        f"{k}.{name}" for k, rec in index.entries.items() if k in keep for name in rec["outputs"]
    }
    doomed = [name for name in folders if name not in live]
    kept = sum(1 for k in index.entries if k in keep)
    return CacheReport(
        cache=index.cache,
        entries=len(index.entries),
        bytes=sum(folders.values()),
        kept_entries=kept,
        kept_bytes=sum(size for name, size in folders.items() if name in live),
        dropped_entries=len(index.entries) - kept,
        freed_bytes=sum(folders[name] for name in doomed),
        removed_folders=doomed,
        kept_runs=runs,
        dry_run=dry_run,
    )


def cache_info(state: Path) -> CacheReport:
    """Entries the index vouches for and their size; unvouched folders count as removable."""
    index = CacheIndex(str(state / CACHE_DIR))
    return _report(index, set(index.entries), [], dry_run=True)


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
        report = _report(index, used, [str(r.get("run_id", "")) for r in runs], dry_run)
        if dry_run or not os.path.isdir(cache):
            return report
        index.rewrite(k for k in index.entries if k in used)
        for name in report.removed_folders:
            shutil.rmtree(os.path.join(cache, name), ignore_errors=True)
        return report
