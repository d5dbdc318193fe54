"""The IR: deterministic under spec re-ordering, JSON round trip, versioning, topological order."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlc.compiler.api import check
from mlc.compiler.ir import (
    IR_VERSION,
    PIPELINE_KINDS,
    ArtifactType,
    IRError,
    IRGraph,
    Layer,
    StepKind,
    build_ir,
)
from mlc.compiler.ir.build import IRBuilder

CREDIT = Path(__file__).resolve().parents[2] / "examples" / "credit" / "mlc.yaml"


@pytest.fixture(scope="module")
def credit_ir() -> IRGraph:
    return check(CREDIT).ir


def _shuffled(tree: Any, rng: random.Random) -> Any:
    """The same mapping with every key order shuffled (lists keep their order: it means)."""
    if isinstance(tree, dict):
        keys = list(tree)
        rng.shuffle(keys)
        return {k: _shuffled(tree[k], rng) for k in keys}
    if isinstance(tree, list):
        return [_shuffled(v, rng) for v in tree]
    return tree


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_reordered_spec_gives_identical_ir(tmp_path: Path, credit_ir: IRGraph, seed: int) -> None:
    raw = yaml.safe_load(CREDIT.read_text(encoding="utf-8"))
    raw.pop("defaults")  # overlays are composed below, by hand, in the same order
    raw["tuning"]["trials"] = 6
    raw["deployment"]["autoscaling"]["max_replicas"] = 2
    spec = tmp_path / "mlc.yaml"
    spec.write_text(yaml.safe_dump(_shuffled(raw, random.Random(seed)), sort_keys=False))
    (tmp_path / "data").symlink_to(CREDIT.parent / "data")
    assert list(yaml.safe_load(spec.read_text())) != list(raw) or seed == 0
    assert check(spec).ir.to_json() == credit_ir.to_json()


def test_json_round_trip(credit_ir: IRGraph) -> None:
    text = credit_ir.to_json()
    back = IRGraph.from_json(text)
    assert back.to_json() == text
    assert [s.id for s in back.steps] == [s.id for s in credit_ir.steps]
    assert json.loads(text)["ir_version"] == IR_VERSION
    assert text.endswith("\n") and json.loads(text) == json.loads(
        json.dumps(json.loads(text), sort_keys=True)
    )


@pytest.mark.parametrize("version", ["2.0", "0.9", "", "banana"])
def test_unknown_ir_version_is_refused(credit_ir: IRGraph, version: str) -> None:
    data = credit_ir.to_dict()
    data["ir_version"] = version
    with pytest.raises(IRError, match="not supported"):
        IRGraph.from_dict(data)


def test_same_major_version_is_read(credit_ir: IRGraph) -> None:
    data = credit_ir.to_dict()
    data["ir_version"] = IR_VERSION.split(".")[0] + ".99"
    assert len(IRGraph.from_dict(data)) == len(credit_ir)


def test_topological_order(credit_ir: IRGraph) -> None:
    order = {s.id: i for i, s in enumerate(credit_ir.steps)}
    for step in credit_ir.steps:
        for upstream in credit_ir.upstream(step.id):
            assert order[upstream.id] < order[step.id], (upstream.id, step.id)
    ids = [s.id for s in credit_ir.steps]
    assert ids.index("ingest-applications") < ids.index("validate") < ids.index("split")
    assert ids.index("tune") < ids.index("train") < ids.index("evaluate") < ids.index("gate")
    assert ids.index("gate") < ids.index("register") < ids.index("deploy")


def test_credit_ir_shape(credit_ir: IRGraph) -> None:
    kinds = {s.kind for s in credit_ir.steps}
    assert kinds >= PIPELINE_KINDS
    assert {
        StepKind.DEPLOY,
        StepKind.MONITOR,
        StepKind.ALERTS,
        StepKind.RETRAIN_TRIGGER,
        StepKind.BUDGET,
        StepKind.STORAGE,
        StepKind.IDENTITY,
    } <= kinds
    assert credit_ir.find_cycle() is None
    assert list(credit_ir.dangling_inputs()) == []
    train = credit_ir.step("train")
    assert train.params["model"]["name"] == "HistGradientBoostingClassifier"
    assert train.resources.cpu == "2" and train.resources.memory == "4Gi"
    assert train.retries == 1 and train.timeout_s == 900
    assert credit_ir.step("register").when == "gate.passed"
    assert credit_ir.artifact("train.model").type is ArtifactType.MODEL
    # Mitigation makes the fairness step's model the one candidate every later step judges.
    assert {c.id for c in credit_ir.consumers("train.model")} == {"fairness"}
    assert {c.id for c in credit_ir.consumers("fairness.model")} >= {
        "evaluate",
        "explain",
        "register",
        "model-card",
    }
    assert all(s.layer is Layer.OPERATIONS for s in credit_ir.steps_of(StepKind.DEPLOY))
    features = {r.feature for r in credit_ir.step("deploy").requires}
    assert "strategy.canary" in features
    assert credit_ir.metadata["spec_hash"] == check(CREDIT).ir.metadata["spec_hash"]


def test_queries(credit_ir: IRGraph) -> None:
    assert [s.id for s in credit_ir.upstream("evaluate")] == ["fairness", "split"]
    assert "gate" in [s.id for s in credit_ir.downstream("evaluate")]
    assert {s.id for s in credit_ir.ancestors("train")} >= {"ingest-applications", "features"}
    assert "deploy" in {s.id for s in credit_ir.descendants("gate")}
    first = credit_ir.first(StepKind.INGEST)
    assert first is not None and first.id == "ingest-applications"
    assert credit_ir.first(StepKind.EXPORT) is None


def test_spec_hash_changes_with_meaning(tmp_path: Path) -> None:
    base = check(CREDIT).ir.metadata["spec_hash"]
    changed = check(CREDIT, ["training.seed=43"]).ir.metadata["spec_hash"]
    assert base != changed


def test_build_is_deterministic_in_process() -> None:
    result = check(CREDIT)
    assert build_ir(result.spec).to_json() == build_ir(result.spec).to_json()


def test_duplicate_ids_and_cycles_are_caught() -> None:
    b = IRBuilder()
    b.add("a", StepKind.INGEST, "data", outputs={"out": (ArtifactType.DATASET, {})})
    b.add("a", StepKind.VALIDATE, "data")
    with pytest.raises(IRError, match="duplicate step id"):
        IRGraph("x", {}, {}, b.steps, b.artifacts)
    c = IRBuilder()
    c.add(
        "a",
        StepKind.INGEST,
        "data",
        inputs={"in": "b.out"},
        outputs={"out": (ArtifactType.DATASET, {})},
    )
    c.add(
        "b",
        StepKind.VALIDATE,
        "data",
        inputs={"in": "a.out"},
        outputs={"out": (ArtifactType.DATASET, {})},
    )
    g = IRGraph("x", {}, {}, c.steps, c.artifacts)
    cycle = g.find_cycle()
    assert cycle is not None and set(cycle) >= {"a", "b"}
    d = IRBuilder()
    d.add("a", StepKind.TRAIN, "training", inputs={"data": "nowhere.out"})
    dangling = list(IRGraph("x", {}, {}, d.steps, d.artifacts).dangling_inputs())
    assert [(s.id, name, art) for s, name, art in dangling] == [("a", "data", "nowhere.out")]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["steps"][0].update(kind="bake"), r"steps\[0\]\.kind: 'bake' is not one of"),
        (lambda d: d["steps"][0].update(retries="3"), r"steps\[0\]\.retries: expected int"),
        (lambda d: d["steps"][0].update(retries=True), r"steps\[0\]\.retries: expected int"),
        (lambda d: d["steps"][0].update(colour="red"), r"steps\[0\]: unknown field\(s\) colour"),
        (lambda d: d["steps"][0].pop("origin"), r"steps\[0\]: missing field\(s\) origin"),
        (lambda d: d["steps"][0]["resources"].update(nodes=1.5), r"resources\.nodes: expected"),
        (lambda d: d["steps"][0].update(inputs={"x": 1}), r"steps\[0\]\.inputs\.x: expected str"),
        (lambda d: d["artifacts"][0].update(type="blob"), r"artifacts\[0\]\.type: 'blob'"),
        (lambda d: d.update(steps={}), "IR field 'steps' must be a list"),
    ],
)
def test_a_malformed_ir_file_names_the_field(credit_ir: IRGraph, mutate: Any, message: str) -> None:
    data = json.loads(credit_ir.to_json())
    mutate(data)
    with pytest.raises(IRError, match=message):
        IRGraph.from_dict(data)
