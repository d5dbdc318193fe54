"""What `git status` says of a working tree, to tell whether a test run left anything behind.

Ignored paths count too: a stray `mlflow.db` is ignored by `.gitignore` and still a leak. The
tool folders a developer or CI makes on purpose are left out.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# Made on purpose by the set-up script, the linters and pytest itself, never by a test.
TOOL_PATHS = (
    ".venv/",
    ".mypy-src/",
    ".mypy_cache/",
    ".ruff_cache/",
    ".pytest_cache/",
    ".hypothesis/",
)


def _ours(path: str) -> bool:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return (
        path.startswith(TOOL_PATHS)
        or name == "__pycache__"
        or name.endswith(".egg-info")
        or path.endswith(".pyc")
    )


def snapshot(repo: Path) -> frozenset[str] | None:
    """The `git status` entries of `repo` (changed, untracked and ignored), or None when `repo`
    is not a git work tree or git is missing (an unpacked sdist: nothing to compare)."""
    git = shutil.which("git")
    if git is None:
        return None
    proc = subprocess.run(
        [git, "-C", str(repo), "status", "--porcelain=v1", "-z", "--ignored"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        return None
    entries = [e for e in proc.stdout.split("\0") if e]
    return frozenset(e for e in entries if len(e) > 3 and not _ours(e[3:]))


def left_behind(before: frozenset[str] | None, after: frozenset[str] | None) -> list[str]:
    """Entries that appeared between two snapshots, sorted."""
    if before is None or after is None:
        return []
    return sorted(after - before)
