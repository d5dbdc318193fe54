"""Diagnostics a first-time user meets: misspelt keys anywhere, `+key` overrides, model params
checked against the estimator, and `mlc validate` listing every problem (issue 11, items 11-12).

Each case runs the real `mlc validate` (a process, as tests/compiler/test_cli.py does) on a spec
written to tmp_path and pins the code, the place and the suggestion; the expected place is found
in the text the test wrote, not copied from the output.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
MLC = REPO / ".venv" / "bin" / "mlc"
CREDIT = REPO / "examples" / "credit"


def _project(tmp_path: Path) -> Path:
    """A copy of the credit example; returns its spec."""
    shutil.copytree(CREDIT, tmp_path / "credit", ignore=shutil.ignore_patterns(".mlc"))
    return tmp_path / "credit" / "mlc.yaml"


def _edit(spec: Path, old: str, new: str) -> None:
    text = spec.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    spec.write_text(text.replace(old, new), encoding="utf-8")


def _at(spec: Path, needle: str, offset: int = 0) -> tuple[str, int, int]:
    """(file, line, col) of `needle` (plus `offset` columns) in the spec as written."""
    for number, line in enumerate(spec.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return str(spec), number, line.index(needle) + 1 + offset
    raise AssertionError(f"{needle!r} not in {spec}")


def _mlc(*args: str | Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MLC), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=180,
        check=False,
    )


def _validate(spec: Path, *overrides: str, **env: str) -> list[dict[str, Any]]:
    """The diagnostics of `mlc validate --format json`, files made absolute."""
    proc = _mlc("validate", spec, *overrides, "--format", "json", cwd=spec.parent, **env)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode in (0, 2), proc.stderr
    diags: list[dict[str, Any]] = json.loads(proc.stdout)
    for d in diags:
        if d["file"] and not d["file"].startswith("<"):
            d["file"] = str((spec.parent / d["file"]).resolve())
    return diags


def _one(diags: list[dict[str, Any]], code: str, path: str) -> dict[str, Any]:
    found = [d for d in diags if d["code"] == code and d["path"] == path]
    assert len(found) == 1, json.dumps(diags, indent=1)
    return found[0]


def _where(d: dict[str, Any]) -> tuple[str, int, int]:
    return d["file"], d["line"], d["col"]


# -- item 11: overrides ----------------------------------------------------------------------


def _last(overrides: list[str]) -> tuple[str, int, int]:
    """Where the last override starts on the command line (overrides are one line)."""
    return "<override>", 1, len(" ".join(overrides)) - len(overrides[-1]) + 1


@pytest.mark.parametrize(
    ("overrides", "path", "key"),
    [
        (["tuning.trails=3"], "tuning.trails", "trials"),
        (["+deployment.moode=online"], "deployment.moode", "mode"),
        (["training.seed=3", "+monitoring.drift.methd=ks"], "monitoring.drift.methd", "method"),
        (["++governance.fairness.metrc=x"], "governance.fairness.metrc", "metric"),
    ],
)
def test_misspelt_override_key_gets_a_suggestion_in_every_section(
    tmp_path: Path, overrides: list[str], path: str, key: str
) -> None:
    d = _one(_validate(_project(tmp_path), *overrides), "MLC101", path)
    assert _where(d) == _last(overrides)
    assert d["hint"] == f"did you mean '{key}'?"


def test_misspelt_override_parent_gets_a_suggestion(tmp_path: Path) -> None:
    (d,) = _validate(_project(tmp_path), "tunning.trials=3")
    assert (d["code"], _where(d)) == ("MLC022", ("<override>", 1, 1))
    assert d["hint"] == "did you mean 'tuning'?"


def test_deleting_a_misspelt_key_suggests_the_key(tmp_path: Path) -> None:
    overrides = ["training.seed=1", "~training.retrie"]
    (d,) = _validate(_project(tmp_path), *overrides)
    assert (d["code"], _where(d)) == ("MLC022", _last(overrides))
    assert d["hint"] == "did you mean 'retries'?"


@pytest.mark.parametrize(
    ("overrides", "code", "path"),
    [
        # the new key's mapping is the override's, not the spec file's first line
        (["+foo.bar=1"], "MLC101", "foo"),
        # ... nor the line of the section it was added under
        (["training.seed=1", "+deployment.foo.bar=1"], "MLC101", "deployment.foo"),
        # a section deleted and added back holds only what the override wrote
        (["~tuning", "+tuning.trials=3"], "MLC102", "tuning.objective"),
    ],
)
def test_plus_key_errors_point_at_the_override(
    tmp_path: Path, overrides: list[str], code: str, path: str
) -> None:
    d = _one(_validate(_project(tmp_path), *overrides), code, path)
    assert _where(d) == _last(overrides)


def test_model_param_of_wrong_type_is_an_error_at_the_override(tmp_path: Path) -> None:
    (d,) = _validate(_project(tmp_path), "training.model.params.max_iter=abc")
    assert (d["code"], _where(d)) == ("MLC327", ("<override>", 1, 1))
    assert "takes an integer (found 'abc')" in d["message"]
    assert "its default is 100" in d["hint"]


def test_unknown_model_param_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    spec = _project(tmp_path)
    _edit(spec, "max_iter: 150,", "max_itr: 150,")
    d = _one(_validate(spec), "MLC326", "training.model.params.max_itr")
    assert _where(d) == _at(spec, "max_itr")
    assert d["hint"] == "did you mean 'max_iter'?"


def test_float_for_an_integer_param_and_string_for_a_number(tmp_path: Path) -> None:
    spec = _project(tmp_path)
    _edit(spec, "learning_rate: 0.1, max_depth: 4}", "learning_rate: fast, max_depth: 4.5}")
    diags = _validate(spec)
    rate = _one(diags, "MLC327", "training.model.params.learning_rate")
    depth = _one(diags, "MLC327", "training.model.params.max_depth")
    assert _where(rate) == _at(spec, "fast")
    assert _where(depth) == _at(spec, "4.5}")
    assert "takes a number" in rate["message"]
    assert "takes an integer or null (found 4.5)" in depth["message"]


def test_search_space_names_are_model_params(tmp_path: Path) -> None:
    spec = _project(tmp_path)
    _edit(
        spec,
        "    max_depth: {type: int, low: 2, high: 8}",
        "    max_dept: {type: int, low: 2, high: 8}",
    )
    (d,) = _validate(spec)
    assert (d["code"], d["path"]) == ("MLC326", "tuning.search_space.max_dept")
    assert _where(d) == _at(spec, "max_dept:")
    assert d["hint"] == "did you mean 'max_depth'?"


def test_misspelt_sklearn_model_name(tmp_path: Path) -> None:
    spec = _project(tmp_path)
    _edit(spec, "name: HistGradientBoostingClassifier", "name: HistGradientBoostingClasifier")
    (d,) = _validate(spec)
    assert d["code"] == "MLC328"
    assert _where(d) == _at(spec, "HistGradientBoostingClasifier")
    assert d["hint"] == "did you mean 'HistGradientBoostingClassifier'?"


def test_dotted_path_estimator_outside_sklearn(tmp_path: Path) -> None:
    spec = _project(tmp_path)
    lib = tmp_path / "lib"
    (lib / "acme").mkdir(parents=True)
    (lib / "acme" / "__init__.py").write_text("from acme._forest import Forest\n")
    (lib / "acme" / "_forest.py").write_text(
        "class _Base:\n"
        "    def __init__(self, n_trees: int = 10, depth=3, name: str = 'f'):\n"
        "        self.n_trees, self.depth, self.name = n_trees, depth, name\n\n"
        "class Forest(_Base):\n"
        "    pass\n"
    )
    _edit(spec, "name: HistGradientBoostingClassifier", "name: acme.Forest")
    _edit(
        spec,
        "params: {max_iter: 150, learning_rate: 0.1, max_depth: 4}",
        "params: {n_tres: 5, depth: deep, name: 3}",
    )
    # the example tunes HistGradientBoosting's parameters: not this model's
    diags = _validate(spec, "~tuning", PYTHONPATH=str(lib))
    unknown = _one(diags, "MLC326", "training.model.params.n_tres")
    assert unknown["hint"] == "did you mean 'n_trees'?"
    assert _where(unknown) == _at(spec, "n_tres")
    wrong = _one(diags, "MLC327", "training.model.params.depth")
    assert _where(wrong) == _at(spec, "deep")
    assert "its default is 3" in wrong["hint"]
    # the annotation says str, and only str
    assert _one(diags, "MLC327", "training.model.params.name")["message"].endswith("(found 3)")
    # and the spec's `overridable: [training.model.params.max_iter, …]` now names nothing
    assert {d["code"] for d in diags} == {"MLC326", "MLC327", "MLC204"}
    # without the package installed here nothing can be said, and nothing is made up
    assert [d["code"] for d in _validate(spec, "~tuning", PYTHONPATH="")] == ["MLC204"]


def test_lightning_tabular_mlp_params(tmp_path: Path) -> None:
    spec = _project(tmp_path)
    diags = _validate(
        spec,
        "~tuning",
        "training.framework=lightning",
        "training.model.name=tabular_mlp",
        "training.model.params={hiden:[64],batch_size:big}",
    )
    unknown = _one(diags, "MLC326", "training.model.params.hiden")
    assert unknown["hint"] == "did you mean 'hidden'?"
    assert "model 'tabular_mlp' has no parameter 'hiden'" in unknown["message"]
    assert (
        "takes an integer (found 'big')"
        in _one(diags, "MLC327", "training.model.params.batch_size")["message"]
    )
    assert {d["file"] for d in diags if d["code"] != "MLC204"} == {"<override>"}
    other = _validate(spec, "training.framework=lightning", "training.model.name=mlp", "~tuning")
    d = _one(other, "MLC328", "training.model.name")
    assert d["hint"] == "the built-in Lightning module is 'tabular_mlp'"


def test_run_refuses_bad_params_before_any_step(tmp_path: Path) -> None:
    spec = _project(tmp_path)
    proc = _mlc("run", spec, "training.model.params.max_iter=abc", "-q", cwd=spec.parent)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "<override>:1:1: error[MLC327]" in proc.stderr
    assert not (spec.parent / ".mlc").exists()  # no step ran, no state was written


# -- item 12: validate lists every problem ---------------------------------------------------


def test_schema_error_does_not_hide_cross_field_errors(tmp_path: Path) -> None:
    spec = _project(tmp_path)
    _edit(spec, "  drift:\n    method: psi", "  drift:\n    methd: psi")
    _edit(spec, "metrics: [roc_auc, accuracy, f1, log_loss]", "metrics: [roc_auc, accuracy, rmse]")
    diags = _validate(spec)
    schema = _one(diags, "MLC101", "monitoring.drift.methd")
    assert _where(schema) == _at(spec, "methd")
    assert schema["hint"] == "did you mean 'method'?"
    rule = _one(diags, "MLC341", "evaluation.metrics[2]")
    assert _where(rule) == _at(spec, "rmse")
    # the rules that read the broken section wait for it; the others still speak
    assert {d["code"] for d in diags} == {"MLC101", "MLC341"}


def test_section_rules_and_param_checks_run_beside_schema_errors(tmp_path: Path) -> None:
    spec = _project(tmp_path)
    _edit(spec, "resources: {cpu: 2, memory: 4Gi}", "resources: {cpu: 2, memory: 4Gi, nodes: 2}")
    _edit(spec, "platform: kserve", "platform: kservee")
    _edit(spec, "max_iter: 150,", "max_iter: lots,")
    diags = _validate(spec)
    assert _where(_one(diags, "MLC103", "deployment.platform")) == _at(spec, "kservee")
    assert _one(diags, "MLC324", "training.resources.nodes")
    assert _where(_one(diags, "MLC327", "training.model.params.max_iter")) == _at(spec, "lots")


def _mappings(node: Any, path: tuple[str | int, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if isinstance(node, dict):
        out.append(path)
        for k, v in node.items():
            out.extend(_mappings(v, (*path, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(_mappings(v, (*path, i)))
    return out


def test_unknown_key_gets_a_suggestion_at_every_mapping_of_the_example() -> None:
    """A typo of an existing key, at every mapping the models close, names the key."""
    from mlc.compiler.diagnostics import DiagnosticError
    from mlc.compiler.load import load_spec
    from mlc.compiler.validate import validate_spec

    loaded = load_spec(CREDIT / "mlc.yaml")
    original = copy.deepcopy(loaded.data)
    checked = 0
    for path in _mappings(original):
        data = copy.deepcopy(original)
        node = data
        for part in path:
            node = node[part]
        if not node:
            continue
        key = sorted(node)[0]
        node[f"{key}x"] = 1
        loaded.data = data
        try:
            validate_spec(loaded)
        except DiagnosticError as exc:
            unknown = [d for d in exc.diagnostics if d.code == "MLC101"]
        else:
            unknown = []
        if not unknown:
            continue  # free-form mappings (tags, columns, params, search space) take any key
        checked += 1
        assert unknown[0].hint == f"did you mean '{key}'?", (path, unknown[0])
    assert checked >= 50


# -- the static reading of estimators agrees with Python's --------------------------------------


def test_static_signatures_match_inspect_for_every_sklearn_estimator() -> None:
    from sklearn.base import BaseEstimator

    from mlc.compiler.estimators import SKLEARN_MODULES, check_params, lookup
    from mlc.runtime.steps.train import SKLEARN_MODULES as RUNTIME_MODULES

    assert SKLEARN_MODULES == RUNTIME_MODULES
    compared = 0
    for sub in SKLEARN_MODULES:
        module = importlib.import_module(f"sklearn.{sub}")
        for name in module.__all__:
            cls = getattr(module, name)
            if not (inspect.isclass(cls) and issubclass(cls, BaseEstimator)):
                continue
            signature, problem = lookup("sklearn", name)
            assert problem is None, name
            if signature is None:
                continue  # e.g. a class behind a decorator: left to the train step
            real = inspect.signature(cls).parameters
            assert set(signature.params) == set(real), name
            defaults = {
                k: p.default
                for k, p in real.items()
                if isinstance(p.default, int | float | str | bool) or p.default is None
            }
            # each default passes its own parameter's check
            assert list(check_params(signature, defaults)) == [], name
            compared += 1
    assert compared >= 60
