"""Gate verdicts as the executor reads them, and the `when: <gate>.passed` conditions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlc.targets.local.options import RunError


def read_verdict(location: str) -> dict[str, Any]:
    """The verdict document of a gate output: `{"passed": bool, "checks": [...]}`."""
    folder = Path(location)
    candidates = [folder / "verdict.json", *sorted(folder.glob("*.json"))]
    for path in candidates:
        if path.name == "_meta.json" or not path.is_file():
            continue
        doc = json.loads(path.read_text())
        if isinstance(doc, dict) and "passed" in doc:
            return doc
    meta_path = folder / "_meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if "passed" in meta:
            return {"passed": bool(meta["passed"]), "checks": meta.get("checks", [])}
    raise RunError(f"the gate output at {location} carries no verdict ('passed')")


def parse_when(when: str) -> str:
    """The gate step id of a `<gate step>.passed` condition."""
    step_id, _, attr = when.rpartition(".")
    if not step_id or attr != "passed":
        raise RunError(f"unsupported condition 'when: {when}' (expected '<gate step>.passed')")
    return step_id
