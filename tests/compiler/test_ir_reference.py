"""`compiler/ir/REFERENCE.md`: generated from the params types and the spec models, and current."""

from __future__ import annotations

import difflib

from mlc.compiler.ir import StepKind
from mlc.compiler.ir.reference import REFERENCE, REGENERATE, render


def test_reference_is_current() -> None:
    expected = render()
    actual = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                actual.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                "compiler/ir/REFERENCE.md",
                "generated",
                n=1,
            )
        )
        raise AssertionError(
            f"compiler/ir/REFERENCE.md is stale; run `{REGENERATE}`\n{diff[:4000]}"
        )


def test_reference_lists_every_kind_with_spec_defaults() -> None:
    from mlc.specs.training import LightningOptions
    from mlc.specs.tuning import Tuning

    text = render()
    for kind in StepKind:
        assert f"### `{kind.value}`" in text
    # defaults are the spec models', read from there (not restated)
    lr = LightningOptions.model_fields["learning_rate"].default
    assert f"| `learning_rate` | `number` | `{lr}` |" in text
    trials = Tuning.model_fields["trials"].default
    assert f"| `trials` | `integer` | `{trials}` (`tuning.trials`) |" in text
    assert "| `derived_target` (optional) |" in text
