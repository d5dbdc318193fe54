"""Typed step params: every step of every IR fits its kind's TypedDict, `IRGraph.from_dict`
names the bad path, and the TypedDicts keep up with the spec models they copy."""

from __future__ import annotations

import importlib
import json
import re
import typing
from pathlib import Path
from typing import Any

import pytest

from mlc.compiler.api import check
from mlc.compiler.ir import IRError, IRGraph, StepKind
from mlc.compiler.ir.params import PARAMS_BY_KIND, SPEC_MODELS
from mlc.compiler.ir.params_check import check_params, typeddict_fields
from mlc.compiler.ir.reference import _irs

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(REPO.glob("examples/*/mlc.yaml"))
CREDIT = REPO / "examples" / "credit" / "mlc.yaml"


@pytest.fixture(scope="module")
def credit() -> dict[str, Any]:
    return json.loads(check(CREDIT).ir.to_json())


def _index(data: dict[str, Any], step_id: str) -> int:
    return next(i for i, s in enumerate(data["steps"]) if s["id"] == step_id)


def _step(data: dict[str, Any], step_id: str) -> dict[str, Any]:
    return dict(data["steps"][_index(data, step_id)])


def test_every_kind_has_a_params_type() -> None:
    assert set(PARAMS_BY_KIND) == set(StepKind)
    assert all(typing.is_typeddict(tp) for tp in PARAMS_BY_KIND.values())


@pytest.mark.parametrize("spec", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_every_step_of_every_example_fits_its_type(spec: Path) -> None:
    ir = check(spec).ir
    for i, step in enumerate(ir.steps):
        check_params(step.kind, step.params, f"steps[{i}] {step.id!r}.params")


def test_every_kind_is_built_and_fits() -> None:
    """The reference's specs reach every step kind (batch, edge and all) and each step fits."""
    seen = set()
    for ir in _irs():
        for step in ir.steps:
            check_params(step.kind, step.params, step.id)
            seen.add(step.kind)
    assert seen == set(StepKind)


def test_round_trip_keeps_params(credit: dict[str, Any]) -> None:
    text = json.dumps(credit, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    back = IRGraph.from_dict(json.loads(text))
    assert back.to_json() == text
    assert back.step("train").params == _step(credit, "train")["params"]


def _set(path: list[str | int], value: Any) -> Any:
    def mutate(params: dict[str, Any]) -> None:
        node: Any = params
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _drop(path: list[str | int]) -> Any:
    def mutate(params: dict[str, Any]) -> None:
        node: Any = params
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


@pytest.mark.parametrize(
    ("step_id", "mutate", "message"),
    [
        # wrong type, nested
        ("train", _set(["model", "params"], []), ".params.model.params: expected object, got list"),
        # unknown key at the top and deep inside
        ("train", _set(["colour"], "red"), ".params: unknown key(s) colour (TrainParams has:"),
        ("train", _set(["lightning", "lr"], 0.1), ".params.lightning: unknown key(s) lr"),
        # missing keys: the values the runtime must not default itself
        ("train", _drop(["lightning", "learning_rate"]), "missing key(s) learning_rate"),
        ("tune", _drop(["seed"]), ".params: missing key(s) seed (TuneParams)"),
        ("features", _drop(["task"]), ".params: missing key(s) task (FeaturesParams)"),
        # Literal, bool for int, None where a value is needed
        ("train", _set(["task"], "ranking"), ".params.task: expected one of 'classification'"),
        ("train", _set(["seed"], True), ".params.seed: expected integer, got boolean true"),
        ("split", _set(["test_size"], None), ".params.test_size: expected number, got null"),
        # a dict of TypedDicts, then a Literal deep inside it
        (
            "validate",
            _set(["contract", "columns", "age", "dtype"], "decimal"),
            ".params.contract.columns.age.dtype: expected one of 'int'",
        ),
        # a list of a union told apart by `op`: the error names the member's own key
        (
            "features",
            _set(["transforms", 1, "offset"], "one"),
            ".params.transforms[1].offset: expected number, got string 'one'",
        ),
        (
            "features",
            _set(["transforms", 0, "op"], "smooth"),
            ".params.transforms[0].op: expected one of 'bucketize', 'custom'",
        ),
        ("ingest-applications", _set(["source", "path"], 3), ".params.source.path: expected str"),
        # nullable nested object
        ("gate", _set(["champion"], "yes"), ".params.champion: expected ChampionParams or null"),
        ("gate", _drop(["champion", "direction"]), ".params.champion: missing key(s) direction"),
        ("deploy", _set(["strategy", "steps", 1], "50%"), ".params.strategy.steps[1]: expected"),
        ("monitor", _set(["metrics"], "roc_auc"), ".params.metrics: expected list, got string"),
    ],
)
def test_from_dict_names_the_bad_path(
    credit: dict[str, Any], step_id: str, mutate: Any, message: str
) -> None:
    data = json.loads(json.dumps(credit))
    i = _index(data, step_id)
    mutate(data["steps"][i]["params"])
    with pytest.raises(IRError) as err:
        IRGraph.from_dict(data)
    assert str(err.value).startswith(f"steps[{i}] {step_id!r}.params"), str(err.value)
    assert message in str(err.value), str(err.value)


def test_error_text_is_what_the_issue_asks(credit: dict[str, Any]) -> None:
    data = json.loads(json.dumps(credit))
    i = _index(data, "train")
    data["steps"][i]["params"]["model"]["params"] = [1]
    with pytest.raises(IRError, match=re.escape("'train'.params.model.params: expected object")):
        IRGraph.from_dict(data)


def _spec_fields(path: str) -> set[str]:
    module, _, name = path.partition(":")
    model = getattr(importlib.import_module(module), name)
    return {info.serialization_alias or info.alias or n for n, info in model.model_fields.items()}


@pytest.mark.parametrize("tp", list(SPEC_MODELS), ids=[t.__name__ for t in SPEC_MODELS])
def test_typed_dicts_keep_up_with_the_spec_models(tp: Any) -> None:
    """A TypedDict that copies a spec model has every field of it: a field added to the spec
    without its key here would make `from_dict` refuse every IR that carries it."""
    keys = set(typeddict_fields(tp))
    missing = _spec_fields(SPEC_MODELS[tp]) - keys
    assert not missing, f"{tp.__name__} lacks {sorted(missing)} of {SPEC_MODELS[tp]}"


def test_spec_values_the_runtime_used_to_guess_are_carried() -> None:
    result = check(CREDIT)
    spec, ir = result.spec, result.ir
    assert ir.step("features").params["task"] == spec.training.task
    monitor = ir.step("monitor").params
    assert monitor["target"] == spec.features.target == "default"
    assert monitor["task"] == "classification"
    assert monitor["metrics"] == list(spec.evaluation.metrics)
    assert ir.step("retrain-trigger").params["target"] == spec.features.target
    lightning = ir.step("train").params["lightning"]
    options = type(spec.training.lightning).model_fields
    for key in ("learning_rate", "batch_size", "max_epochs"):
        assert lightning[key] == options[key].default
