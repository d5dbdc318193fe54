"""IR goldens: the IR of every example spec, byte for byte.

One golden per `examples/<name>/mlc.yaml`, at `tests/goldens/ir/<name>.json`. After an intended
change to the IR, regenerate with `pytest tests/compiler/test_goldens_ir.py --update-goldens`
and review the diff like code.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from mlc.compiler.api import check

REPO = Path(__file__).resolve().parents[2]
GOLDENS = Path(__file__).resolve().parents[1] / "goldens" / "ir"
EXAMPLES = sorted(REPO.glob("examples/*/mlc.yaml"))


def test_every_example_is_covered() -> None:
    assert EXAMPLES, "no examples/*/mlc.yaml found"
    stale = sorted(
        p.name for p in GOLDENS.glob("*.json") if p.stem not in {e.parent.name for e in EXAMPLES}
    )
    assert not stale, f"goldens without an example (delete them): {stale}"


@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_ir_golden(spec: Path, update_goldens: bool) -> None:
    result = check(spec)
    assert result.ok, "\n".join(d.render() for d in result.diagnostics)
    actual = result.ir.to_json()
    golden = GOLDENS / f"{spec.parent.name}.json"
    if update_goldens:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual, encoding="utf-8", newline="\n")
        return
    if not golden.exists():
        pytest.fail(f"no golden for {spec}; create it with --update-goldens", pytrace=False)
    expected = golden.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                str(golden.relative_to(REPO)),
                "actual",
                n=2,
            )
        )
        pytest.fail(
            f"IR of {spec.relative_to(REPO)} differs from its golden "
            f"(if intended: pytest --update-goldens, then review):\n{diff[:6000]}",
            pytrace=False,
        )


@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_ir_round_trips(spec: Path) -> None:
    from mlc.compiler.ir import IRGraph

    text = check(spec).ir.to_json()
    assert IRGraph.from_json(text).to_json() == text
