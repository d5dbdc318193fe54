"""What the tests share: the repository's places, and helpers by subject in this package's
modules (`tools` for external tools, `crd` for custom-resource schemas, `manifests` for the
serving targets' files, `runtime` for running steps, `local_chain` for a small local pipeline,
`tree` for the working-tree guard). Fixtures built on them live in `tests/conftest.py`.

Tests are grouped by the part of mlc they exercise: `specs/`, `compiler/`, `targets/`,
`runtime/` and `e2e/` (whole commands in fresh processes); data they read (goldens, spec
corpora, plugins) stays beside this package under `tests/`.
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
EXAMPLES = REPO / "examples"
CREDIT = EXAMPLES / "credit" / "mlc.yaml"
DIABETES = EXAMPLES / "diabetes" / "mlc.yaml"
GOLDENS = TESTS / "goldens"

__all__ = ["CREDIT", "DIABETES", "EXAMPLES", "GOLDENS", "REPO", "TESTS"]
