"""Validation: pydantic errors and cross-field rules become located, coded diagnostics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlc.compiler.diagnostics import (
    Diagnostic,
    DiagnosticError,
    Severity,
    SourceLocation,
    did_you_mean,
    render,
    sort_diagnostics,
)
from mlc.compiler.load import load_spec
from mlc.compiler.validate import validate_spec
from mlc.specs import Spec

CREDIT = Path(__file__).resolve().parents[2] / "examples" / "credit" / "mlc.yaml"


def _errors(tmp_path: Path, text: str, overrides: tuple[str, ...] = ()) -> list[Diagnostic]:
    spec = tmp_path / "mlc.yaml"
    spec.write_text(text, encoding="utf-8")
    with pytest.raises(DiagnosticError) as info:
        validate_spec(load_spec(spec, list(overrides)))
    return list(info.value.diagnostics)


MINIMAL = """\
name: m
data:
  sources: [{format: csv, path: d.csv}]
  contract: {columns: {x: {dtype: float}, y: {dtype: int}}}
features: {target: y}
training: {model: {name: LogisticRegression}}
evaluation: {metrics: [accuracy]}
"""


def test_minimal_spec_is_valid(tmp_path: Path) -> None:
    spec = tmp_path / "mlc.yaml"
    spec.write_text(MINIMAL)
    result = validate_spec(load_spec(spec))
    assert isinstance(result, Spec)
    assert result.training.framework == "sklearn"
    assert result.deployment is None and result.api_version == "mlc/v1"


def test_credit_example_is_valid() -> None:
    spec = validate_spec(load_spec(CREDIT))
    assert spec.name == "credit-risk"
    assert spec.deployment is not None and spec.deployment.strategy.kind == "canary"
    assert spec.training.max_time == 900
    assert spec.monitoring is not None and spec.monitoring.performance is not None
    assert spec.monitoring.performance.label_delay == 30 * 86400


def test_every_problem_in_one_run(tmp_path: Path) -> None:
    text = MINIMAL.replace("name: m", "name: M").replace("{dtype: float}", "{dtype: flot}")
    text += "trainig: {}\n"
    found = {(d.code, d.path) for d in _errors(tmp_path, text)}
    assert found == {
        ("MLC107", "name"),
        ("MLC103", "data.contract.columns.x.dtype"),
        ("MLC101", "trainig"),
    }


def test_union_alternatives_are_merged(tmp_path: Path) -> None:
    """A wrong value in a union gives one diagnostic naming every alternative, not one each."""
    text = MINIMAL.replace("{dtype: float}", "{dtype: float, allowed: [[1]]}")
    diags = _errors(tmp_path, text)
    at = [d for d in diags if d.path.startswith("data.contract.columns.x.allowed")]
    assert len(at) == 1
    assert "; or " in at[0].message


def test_discriminated_union_points_at_the_tag(tmp_path: Path) -> None:
    text = MINIMAL.replace("{format: csv, path: d.csv}", "{format: cvs, path: d.csv}")
    (d,) = _errors(tmp_path, text)
    assert d.code == "MLC103"
    assert d.path == "data.sources[0].format"
    assert d.location is not None and (d.location.line, d.location.col) == (3, 22)
    assert d.hint == "did you mean 'csv'?"


def test_cross_field_rules_are_located(tmp_path: Path) -> None:
    text = MINIMAL.replace("features: {target: y}", "features: {target: z}")
    (d,) = _errors(tmp_path, text)
    assert (d.code, d.path) == ("MLC201", "features.target")
    assert d.location is not None and (d.location.line, d.location.col) == (5, 20)
    assert "x, y" in d.hint


def test_rules_run_only_after_the_schema_passes(tmp_path: Path) -> None:
    """Schema errors stop validation before cross-field rules (which need typed values)."""
    text = MINIMAL.replace("features: {target: y}", "features: {target: z, bogus: 1}")
    assert {d.code for d in _errors(tmp_path, text)} == {"MLC101"}


def test_override_errors_point_at_the_command_line(tmp_path: Path) -> None:
    diags = _errors(tmp_path, MINIMAL, ("training.seed=abc",))
    (d,) = diags
    assert d.code == "MLC105" and d.location == SourceLocation("<override>", 1, 1)


def test_values_are_converted(tmp_path: Path) -> None:
    text = MINIMAL + "budgets: {idle_shutdown: 90m}\ntags: {a: b}\n"
    spec = tmp_path / "mlc.yaml"
    spec.write_text(text)
    parsed = validate_spec(load_spec(spec))
    assert parsed.budgets.idle_shutdown == 5400
    assert parsed.tags == {"a": "b"}


@pytest.mark.parametrize(
    ("word", "options", "hint"),
    [
        ("trainig", ["training", "tuning"], "did you mean 'training'?"),
        ("zzz", ["a", "b"], "valid keys: a, b"),
        ("zzz", [f"k{i}" for i in range(30)], ""),
    ],
)
def test_did_you_mean(word: str, options: list[str], hint: str) -> None:
    assert did_you_mean(word, options) == hint


def test_did_you_mean_names_what_it_lists() -> None:
    # a wrong value is not a wrong key: 'valid keys: custom, …' misled for framework: xx
    assert did_you_mean("xx", ["sklearn", "custom"], "values") == "valid values: custom, sklearn"


def test_render_formats() -> None:
    diags = [
        Diagnostic("MLC101", "unknown key 'b'", SourceLocation("s.yaml", 9, 3), "hint b", path="b"),
        Diagnostic(
            "MLC420", "not realised", SourceLocation("s.yaml", 2, 1), severity=Severity.WARNING
        ),
        Diagnostic("MLC001", "file not found: x", None, "check, 100%\nsure"),
    ]
    text = render(diags)
    assert text.splitlines()[0] == "s.yaml:2:1: warning[MLC420]: not realised"
    assert "s.yaml:9:3: error[MLC101]: unknown key 'b' (at 'b')\n  hint: hint b" in text
    assert text.endswith("error[MLC001]: file not found: x\n  hint: check, 100%\nsure")
    items = json.loads(render(diags, "json"))
    assert [i["code"] for i in items] == ["MLC420", "MLC101", "MLC001"]
    assert items[2]["file"] is None and items[2]["line"] is None
    github = render(diags, "github").splitlines()
    assert github[0] == "::warning file=s.yaml,line=2,col=1,title=MLC420::not realised"
    assert github[2] == "::error title=MLC001::file not found: x (hint: check, 100%25%0Asure)"


def test_sort_is_stable_and_deduplicates() -> None:
    a = Diagnostic("MLC2", "m", SourceLocation("a", 1, 1))
    b = Diagnostic("MLC1", "m", SourceLocation("a", 1, 1))
    c = Diagnostic("MLC1", "m", SourceLocation("a", 0, 5))
    assert sort_diagnostics([a, b, c, b]) == [c, b, a]
