"""Start-up: `mlc validate` stays light, so spec authors get answers at once.

Timings live in `benchmarks/` (whole process, median of runs); these tests only pin what a
command imports, which is what makes it slow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CREDIT = REPO / "examples" / "credit" / "mlc.yaml"

HEAVY = ("torch", "pyspark", "kfp", "mlflow", "optuna", "sklearn", "lightning", "pandas", "scipy")
"""Never imported by `mlc validate`."""
AVOIDABLE = ("rich", "networkx", "hydra", "omegaconf", "jinja2", "numpy")
"""Not needed to validate a spec without overrides or interpolation."""

_PROBE = """
import json, sys
sys.argv = ["mlc", *json.loads(sys.argv[1])]
from mlc.compiler.cli import main
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code or 0
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _imports_of(*args: str) -> tuple[int, set[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(list(args))],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return int(result["code"]), {m.split(".")[0] for m in result["modules"]}


def test_validate_imports_nothing_heavy() -> None:
    code, modules = _imports_of("validate", str(CREDIT))
    assert code == 0
    assert sorted(modules & set(HEAVY)) == []


def test_validate_imports_nothing_avoidable() -> None:
    code, modules = _imports_of("validate", str(CREDIT))
    assert code == 0
    assert sorted(modules & set(AVOIDABLE)) == []


@pytest.mark.parametrize("args", [("validate", "no-such-spec.yaml"), ("schema",), ("--help",)])
def test_other_light_commands_import_nothing_heavy(args: tuple[str, ...]) -> None:
    _, modules = _imports_of(*args)
    assert sorted(modules & set(HEAVY)) == []


def test_interpolation_still_resolves_with_omegaconf(tmp_path: Path) -> None:
    """OmegaConf is imported on demand: a spec using `${...}` still resolves."""
    spec = tmp_path / "mlc.yaml"
    text = CREDIT.read_text().replace(
        "description: Predicts whether", "description: ${name} predicts whether"
    )
    spec.write_text(text)
    for sub in ("env", "data"):
        (tmp_path / sub).symlink_to(CREDIT.parent / sub)
    from mlc.compiler.api import check

    result = check(spec)
    assert result.ok, [d.render() for d in result.diagnostics]
    assert result.ir.metadata["description"].startswith("credit-risk predicts whether")
