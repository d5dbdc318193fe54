"""External tools for tests: skip with a reason when missing, fail under MLC_REQUIRE_TOOLS=1."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


def missing(what: str) -> None:
    """Skip because `what` is absent here, or fail when MLC_REQUIRE_TOOLS=1 demands it."""
    message = f"{what} is not available here"
    if os.environ.get("MLC_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{message}, and MLC_REQUIRE_TOOLS=1 requires it")
    pytest.skip(message)  # MLC_REQUIRE_TOOLS=1 (CI) fails instead, above


def require_tool(name: str) -> str:
    """Path of executable `name`; skip (or fail under MLC_REQUIRE_TOOLS=1) when missing."""
    path = shutil.which(name)
    if path is None:
        venv_bin = REPO / ".venv" / "bin" / name
        if venv_bin.exists():
            return str(venv_bin)
        missing(f"the tool '{name}'")
    assert path is not None
    return path


def require_path(path: Path, what: str) -> Path:
    """An external folder or file (e.g. ../shared/schemas); skip or fail like a tool."""
    if not path.exists():
        missing(f"{what} ({path})")
    return path
