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


def with_incumbent(verdict: dict[str, Any], champion: dict[str, Any]) -> dict[str, Any]:
    """The verdict as `mlc run` shows it when the registry's champion is the candidate itself.

    The gate does not compare a model with itself (its champion check reads "no champion yet",
    and a cached verdict keeps saying so after the model became the champion); the table names
    the champion version instead. The verdict document in the cache is left as the gate wrote it.
    """
    version = champion.get("version")
    checks = []
    for check in verdict.get("checks", []):
        if (
            isinstance(check, dict)
            and check.get("kind") == "champion"
            and check.get("threshold") is None
            and check.get("passed")
        ):
            check = {
                **check,
                "reason": f"candidate is the champion (v{version})",
                "champion_version": version,
            }
        checks.append(check)
    return {**verdict, "checks": checks, "champion": champion}
