"""Byte-exact goldens of the kserve, k8s and monitoring outputs of the example spec.

Regenerate with `pytest tests/targets/test_monitoring_goldens.py --update-goldens` and review
the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import CREDIT
from support.manifests import registry

from mlc.compiler.api import compile_spec

GOLDENS = Path(__file__).resolve().parents[1] / "goldens"
CASES = {
    "kserve": ("kserve", []),
    "k8s": ("k8s", ["deployment.platform=k8s"]),
    "monitoring": ("monitoring", []),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(tmp_path: Path, case: str, update_goldens: bool) -> None:
    target, overrides = CASES[case]
    compile_spec(CREDIT, [target], tmp_path, overrides, registry())
    emitted = {
        p.relative_to(tmp_path / target).as_posix(): p.read_bytes()
        for p in sorted((tmp_path / target).rglob("*"))
        if p.is_file()
    }
    golden_dir = GOLDENS / case / "credit"
    if update_goldens:
        for rel, content in emitted.items():
            (golden_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden_dir / rel).write_bytes(content)
    expected = {
        p.relative_to(golden_dir).as_posix(): p.read_bytes()
        for p in sorted(golden_dir.rglob("*"))
        if p.is_file()
    }
    assert sorted(emitted) == sorted(expected)
    for rel, content in emitted.items():
        assert content == expected[rel], f"{case}/{rel} differs from its golden"


def test_two_compiles_give_the_same_bytes(tmp_path: Path) -> None:
    for run in ("a", "b"):
        compile_spec(CREDIT, ["kserve", "monitoring"], tmp_path / run, [], registry())
    for target in ("kserve", "monitoring"):
        a = {p.name: p.read_bytes() for p in (tmp_path / "a" / target).rglob("*") if p.is_file()}
        b = {p.name: p.read_bytes() for p in (tmp_path / "b" / target).rglob("*") if p.is_file()}
        assert a == b
