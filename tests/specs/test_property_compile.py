"""Property: any spec that validates compiles to every installed target without an internal error.

The spec schema (`mlc.specs.schema.json_schema`, the same text as `specs/mlc.schema.json`) is
walked alongside a handful of valid base specs made from the examples: every field of every
object present, set or not, is a place to mutate, and the value is drawn by the field's schema
type from extremes (0, -1, 1e308, inf, nan, huge integers, durations past any clock, empty and
unicode strings, other types). A mutant that validates is compiled, in-process, to every
installed target, one target at a time; the only exception allowed is `DiagnosticError`.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mlc.compiler.api import check, compile_spec
from mlc.compiler.diagnostics import DiagnosticError
from mlc.compiler.load import load_spec
from mlc.compiler.registry import default_registry
from mlc.specs import Spec
from mlc.specs.schema import json_schema

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCHEMA = json_schema()
TARGETS = tuple(t.name for t in default_registry().all())

KeyPath = tuple[str | int, ...]

NUMBERS: tuple[Any, ...] = (
    0,
    -1,
    1,
    0.5,
    -0.0,
    1e-300,
    1e308,
    -1e308,
    math.inf,
    -math.inf,
    math.nan,
    2**31 - 1,
    2**31,
    2**32,
    2**53 - 1,
    -(2**53 - 1),
    2**53 + 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    10**400,
)
DURATIONS: tuple[Any, ...] = (
    "0",
    "0ms",
    "0.0000001ms",
    "1ms",
    "59.9999s",
    "3650d",
    "7300d",
    "99999999w",
    "1" + "0" * 400 + "w",
    "9" * 400 + "." + "9" * 400,
)
STRINGS: tuple[Any, ...] = ("", " ", "\u00e9\u4e2d\U0001f642", "a" * 300, "-1", "nan", ".inf")
OTHERS: tuple[Any, ...] = (None, True, False, [], {}, [math.inf], {"k": math.nan})


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _alternatives(node: dict[str, Any]) -> list[dict[str, Any]]:
    node = _resolve(node)
    out: list[dict[str, Any]] = []
    for key in ("anyOf", "oneOf"):
        for alt in node.get(key, ()):
            out += _alternatives(alt)
    return out or [node]


def _object_schema(node: dict[str, Any], value: dict[str, Any]) -> dict[str, Any] | None:
    """The alternative of `node` that describes the mapping `value` (matching its tag)."""
    for alt in _alternatives(node):
        props = alt.get("properties")
        if alt.get("type") != "object" or not isinstance(props, dict):
            continue
        # a tag with a default (`engine: optuna`) may be left out of the mapping
        tags = {k: p for k, p in props.items() if "const" in p}
        if all(value.get(k, p.get("default")) == p["const"] for k, p in tags.items()):
            return alt
    return None


class Field(NamedTuple):
    path: KeyPath
    """Where the field is in the spec data."""
    shape: KeyPath
    """The path with list indices and free-form keys (columns, params) as `*`: one schema
    field, however many times the spec holds it."""
    schema: dict[str, Any]


def _fields(
    node: dict[str, Any], value: Any, path: KeyPath = (), shape: KeyPath = ()
) -> Iterator[Field]:
    """Every field under `value` with its schema, absent optional fields included."""
    if isinstance(value, dict):
        obj = _object_schema(node, value)
        if obj is None:
            # a free-form mapping (model params, tags, columns): its entries are the fields
            extra = next(
                (a.get("additionalProperties") for a in _alternatives(node) if "type" in a), None
            )
            sub = extra if isinstance(extra, dict) else {}
            for key, item in value.items():
                yield Field((*path, key), (*shape, "*"), sub)
                yield from _fields(sub, item, (*path, key), (*shape, "*"))
            return
        for key, sub in obj["properties"].items():
            if "const" in sub:
                continue  # the tag: changing it is a different model, not an extreme value
            yield Field((*path, key), (*shape, key), sub)
            if key in value:
                yield from _fields(sub, value[key], (*path, key), (*shape, key))
    elif isinstance(value, list):
        items = next((a.get("items") for a in _alternatives(node) if "items" in a), None)
        sub = items if isinstance(items, dict) else {}
        for i, item in enumerate(value):
            yield Field((*path, i), (*shape, "*"), sub)
            yield from _fields(sub, item, (*path, i), (*shape, "*"))


def _types(node: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for alt in _alternatives(node):
        kind = alt.get("type")
        if isinstance(kind, list):
            found.update(kind)
        elif isinstance(kind, str):
            found.add(kind)
        if "pattern" in alt and "ms|s|m|h|d|w" in alt["pattern"]:
            found.add("duration")
    return found


def _values_for(node: dict[str, Any]) -> tuple[Any, ...]:
    """Extreme values of a field's own types (numbers for a free-form value)."""
    kinds = _types(node)
    own: tuple[Any, ...] = ()
    if kinds & {"number", "integer"} or not kinds:
        own += NUMBERS
    if "duration" in kinds:
        own += DURATIONS
    if "string" in kinds:
        own += STRINGS
    return own or OTHERS


def _base(name: str, changes: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    spec = EXAMPLES / name / "mlc.yaml"
    data = copy.deepcopy(load_spec(spec).data)
    data.pop("defaults", None)
    if changes is not None:
        changes(data)
    return data


def _k8s_blue_green(d: dict[str, Any]) -> None:
    d["deployment"].update(
        platform="k8s",
        strategy={
            "kind": "blue_green",
            "bake_time": "30m",
            "switch": "auto",
            "rollback": [{"metric": "error_rate", "op": ">", "threshold": 0.05}],
        },
    )


def _ab(d: dict[str, Any]) -> None:
    d["deployment"]["strategy"] = {
        "kind": "ab",
        "variants": [{"name": "a", "weight": 60}, {"name": "b", "weight": 40}],
        "duration": "7d",
    }


def _sagemaker(d: dict[str, Any]) -> None:
    d["deployment"].update(platform="sagemaker", cloud="aws", strategy={"kind": "recreate"})


def _batch(d: dict[str, Any]) -> None:
    d["deployment"].update(
        mode="batch",
        strategy={"kind": "recreate"},
        batch={"schedule": "0 2 * * *", "input": "s3://in/", "output": "s3://out/"},
    )


def _shadow(d: dict[str, Any]) -> None:
    d["deployment"]["strategy"] = {"kind": "shadow", "mirror_percent": 20, "duration": "1d"}


ALL = frozenset(TARGETS) - {"k8s"}
BASES: dict[str, tuple[str, dict[str, Any], frozenset[str]]] = {
    # name: (example folder, spec data, the targets it must emit on as it is)
    "credit": ("credit", _base("credit"), ALL),
    "credit-k8s-blue-green": (
        "credit",
        _base("credit", _k8s_blue_green),
        frozenset(TARGETS) - {"kserve"},
    ),
    "credit-ab": ("credit", _base("credit", _ab), ALL),
    "credit-sagemaker": ("credit", _base("credit", _sagemaker), ALL - {"kserve"}),
    "credit-batch": ("credit", _base("credit", _batch), ALL - {"kserve"}),
    "credit-shadow": ("credit", _base("credit", _shadow), ALL),
    "diabetes": ("diabetes", _base("diabetes"), frozenset({"github", "ir", "kfp", "local"})),
}
FIELDS = {name: list(_fields(SCHEMA, data)) for name, (_, data, _) in BASES.items()}
NUMERIC = {
    name: [
        f for f in fields if _types(f.schema) & {"number", "integer", "duration"} or not f.schema
    ]
    for name, fields in FIELDS.items()
}


def _set(tree: Any, path: KeyPath, value: Any) -> None:
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    if isinstance(node, dict) or (isinstance(node, list) and isinstance(path[-1], int)):
        node[path[-1]] = value


@functools.cache
def _accepted(name: str) -> dict[KeyPath, list[tuple[KeyPath, Any]]]:
    """Single-field extremes the schema and the rules accept on their own in base `name`, by
    field shape.

    Drawing from these (rather than from every field and value) makes most mutants validate,
    and only a mutant that validates can show that validating is not enough; drawing the shape
    first gives each schema field the same chance, however many columns share it.
    """
    base = BASES[name][1]
    found: dict[KeyPath, list[tuple[KeyPath, Any]]] = {}
    for field in NUMERIC[name]:
        for value in _values_for(field.schema):
            data = copy.deepcopy(base)
            _set(data, field.path, copy.deepcopy(value))
            try:
                spec = Spec.model_validate(data)
            except ValidationError:
                continue
            if next(spec.violations(), None) is None:
                found.setdefault(field.shape, []).append((field.path, value))
    return found


@st.composite
def mutants(draw: Callable[..., Any]) -> tuple[str, dict[str, Any]]:
    """A base spec's name and its data with extreme values in a few fields."""
    name = draw(st.sampled_from(sorted(BASES)))
    data = copy.deepcopy(BASES[name][1])
    accepted = _accepted(name)
    shapes = draw(st.lists(st.sampled_from(sorted(accepted, key=repr)), min_size=1, max_size=8))
    changes = [draw(st.sampled_from(accepted[shape])) for shape in shapes]
    if draw(st.integers(0, 3)) == 0:
        # now and then a value of any kind anywhere, so that every refusal is exercised too
        field = draw(st.sampled_from(FIELDS[name]))
        changes.append((field.path, draw(st.sampled_from(_values_for(field.schema) + OTHERS))))
    for path, value in changes:
        try:
            _set(data, path, copy.deepcopy(value))
        except (IndexError, KeyError, TypeError):
            continue  # an earlier change replaced a parent of this path: nothing to set
    return name, data


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("property")
    out = {}
    for example in sorted({example for example, _, _ in BASES.values()}):
        shutil.copytree(EXAMPLES / example, root / example, ignore=shutil.ignore_patterns(".mlc"))
        out[example] = root / example
    return out


def _write(project: Path, data: dict[str, Any]) -> Path:
    spec = project / "mutant.yaml"
    spec.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return spec


def _no_odd_numbers(node: Any, where: str) -> None:
    if isinstance(node, float):
        assert math.isfinite(node), f"{where}: {node!r} in emitted output"
    elif isinstance(node, dict):
        for value in node.values():
            _no_odd_numbers(value, where)
    elif isinstance(node, list):
        for value in node:
            _no_odd_numbers(value, where)


def _refuse(constant: str) -> Any:
    raise AssertionError(f"{constant} in emitted JSON")


def _check_output(out: Path) -> None:
    """Emitted JSON and YAML parse and hold only finite numbers."""
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            _no_odd_numbers(json.loads(text, parse_constant=_refuse), str(path))
        elif path.suffix in (".yaml", ".yml"):
            for doc in yaml.safe_load_all(text):
                _no_odd_numbers(doc, str(path))


def _compile_everywhere(spec: Path) -> dict[str, str]:
    """Compile `spec` to each installed target alone: target -> "" when it emitted, else the
    first diagnostic that stopped it."""
    outcome = {}
    for target in TARGETS:
        out = Path(tempfile.mkdtemp(prefix=f"{target}-", dir=spec.parent))
        try:
            compile_spec(spec, [target], out)
            _check_output(out)
            outcome[target] = ""
        except DiagnosticError as exc:
            assert exc.diagnostics, f"{target}: a DiagnosticError must carry a diagnostic"
            outcome[target] = str(exc.diagnostics[0])
        finally:
            shutil.rmtree(out, ignore_errors=True)
    return outcome


@pytest.mark.parametrize("name", sorted(BASES))
def test_base_specs_validate_and_compile(projects: dict[str, Path], name: str) -> None:
    """Each base is valid and emits on the targets it is meant for: mutants start from there."""
    example, data, expected = BASES[name]
    spec = _write(projects[example], data)
    check(spec)
    outcome = _compile_everywhere(spec)
    assert {t: outcome[t] for t in expected if outcome[t]} == {}


def test_schema_walk_reaches_every_numeric_and_duration_field() -> None:
    """The walk finds the fields the issue names, set in the example or not."""
    found = {f.shape for f in FIELDS["credit"]}
    for expected in (
        ("training", "max_time"),
        ("tuning", "timeout"),
        ("monitoring", "slos", "window"),
        ("budgets", "training_usd"),
        ("budgets", "alert_thresholds"),
        ("governance", "retention", "logs"),
        ("deployment", "autoscaling", "max_replicas"),
        ("deployment", "strategy", "bake_time"),
        ("training", "model", "params", "*"),
        ("data", "contract", "columns", "*", "min"),
    ):
        assert expected in found, expected
    window = {f.path: f.schema for f in FIELDS["credit"]}[("monitoring", "slos", "window")]
    assert "duration" in _types(window)
    assert math.inf in _values_for(window) and "99999999w" in _values_for(window)


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(mutant=mutants())
def test_a_spec_that_validates_compiles_on_every_target(
    projects: dict[str, Path], mutant: tuple[str, dict[str, Any]]
) -> None:
    name, data = mutant
    spec = _write(projects[BASES[name][0]], data)
    try:
        check(spec)
    except DiagnosticError as exc:
        for d in exc.diagnostics:
            assert d.location is not None or not d.path, f"unlocated: {d}"
        return
    _compile_everywhere(spec)
