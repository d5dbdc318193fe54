"""Property test: a randomly damaged spec gives diagnostics, never a crash or a traceback.

The example spec is mutated structurally (keys deleted, values swapped for other types, unknown
keys inserted) and textually (truncated, garbage inserted, lines duplicated or dropped). The
library may only raise `DiagnosticError`; the CLI may only exit 0 or 2, without a traceback.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mlc.compiler.api import check
from mlc.compiler.cli import app
from mlc.compiler.diagnostics import DiagnosticError

CREDIT_DIR = Path(__file__).resolve().parents[2] / "examples" / "credit"
TEXT = (CREDIT_DIR / "mlc.yaml").read_text(encoding="utf-8")
TREE = yaml.safe_load(TEXT)

Path_ = tuple[str | int, ...]


def _paths(tree: Any, prefix: Path_ = ()) -> list[Path_]:
    out = [prefix]
    if isinstance(tree, dict):
        for key, value in tree.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            out += _paths(value, (*prefix, i))
    return out


PATHS = _paths(TREE)[1:]
ODD_VALUES: list[Any] = [
    None,
    0,
    -1,
    2**70,
    1.5,
    float("inf"),
    "",
    "x",
    "${nope}",
    "${oc.env:MLC_FUZZ_UNSET}",
    "10m",
    [],
    [1, "a"],
    {},
    {"k": "v"},
    True,
    "vault:x",
    "\u00e9\u4e2d",
    "a" * 300,
]
GARBAGE = st.sampled_from(
    [
        "\t",
        "\x00",
        ":",
        "- ",
        "{",
        "]",
        "'",
        '"',
        "&a",
        "*a",
        "!!binary",
        "%",
        "@",
        "\n  ",
        "---\n",
        "? ",
        "\ufeff",
        "\x85",
        "\ud7ff",
        "#",
    ]
)


def _get_parent(tree: Any, path: Path_) -> Any:
    node = tree
    for part in path[:-1]:
        node = node[part]
    return node


def _structural(tree: Any, path: Path_, action: str, value: Any, new_key: str) -> Any:
    parent = _get_parent(tree, path)
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "swap":
        parent[last] = value
    elif action == "unknown" and isinstance(parent, dict):
        parent[new_key] = value
    elif action == "unknown":
        parent.append({new_key: value})
    return tree


@st.composite
def mutated_specs(draw: Callable[..., Any]) -> str:
    """The example spec's text after one to three random mutations."""
    text = TEXT
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["structural", "truncate", "garbage", "dup_line", "drop_line"]))
        if kind == "structural":
            try:
                tree = yaml.safe_load(text)
            except yaml.YAMLError:
                continue  # an earlier textual mutation broke the YAML: nothing to restructure
            if not isinstance(tree, dict):
                continue
            paths = _paths(tree)[1:]
            if not paths:
                continue
            path = draw(st.sampled_from(paths))
            action = draw(st.sampled_from(["delete", "swap", "unknown"]))
            value = draw(st.sampled_from(ODD_VALUES))
            new_key = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
            tree = _structural(tree, path, action, value, new_key)
            text = yaml.safe_dump(tree, sort_keys=draw(st.booleans()), allow_unicode=True)
        elif kind == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
        elif kind == "garbage":
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(GARBAGE) + text[at:]
        else:
            lines = text.splitlines(keepends=True)
            if not lines:
                continue
            i = draw(st.integers(0, len(lines) - 1))
            lines[i : i + 1] = [lines[i], lines[i]] if kind == "dup_line" else []
            text = "".join(lines)
    return text


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(CREDIT_DIR / "env", root / "env")
    return root


def _write(project: Path, text: str) -> Path:
    spec = project / "mlc.yaml"
    spec.write_text(text, encoding="utf-8", errors="surrogatepass")
    return spec


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=mutated_specs())
def test_library_only_raises_diagnostics(project: Path, text: str) -> None:
    spec = _write(project, text)
    try:
        result = check(spec)
    except DiagnosticError as exc:
        assert exc.diagnostics, "a DiagnosticError must carry at least one diagnostic"
        for d in exc.diagnostics:
            assert d.code.startswith("MLC") and d.message
        return
    assert result.ir.to_json()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=mutated_specs(), fmt=st.sampled_from(["text", "json", "github"]))
def test_cli_never_shows_a_traceback(project: Path, text: str, fmt: str) -> None:
    spec = _write(project, text)
    result = CliRunner().invoke(app, ["validate", str(spec), "--format", fmt])
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    assert "internal error" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_mutation_strategy_really_mutates() -> None:
    """The structural mutation changes the tree (guards against a strategy that does nothing)."""
    tree = yaml.safe_load(TEXT)
    mutated = _structural(tree, ("training", "model"), "swap", 5, "x")
    assert mutated["training"]["model"] == 5
    assert ("training", "model", "name") in PATHS
