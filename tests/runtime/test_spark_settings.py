"""`data.spark` and the hash split from spec to IR, and the master's precedence (no JVM)."""

from __future__ import annotations

import pytest
from support import CREDIT
from support.runtime import ir_of

from mlc.compiler.ir.model import StepKind
from mlc.runtime.spark import keys
from mlc.runtime.spark.session import DEFAULT_MASTER, master

# train carries them too: spark_ml trains in Spark, and a step in a process of its own starts
# its own session
_SPARK_SETTINGS_STEPS = (
    StepKind.INGEST,
    StepKind.VALIDATE,
    StepKind.SPLIT,
    StepKind.FEATURES,
    StepKind.TRAIN,
)


def test_master_precedence_env_then_spec_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLC_SPARK_MASTER", raising=False)
    assert master(None) == DEFAULT_MASTER == "local[1]"
    assert master({"master": "spark://head:7077", "conf": {}}) == "spark://head:7077"
    monkeypatch.setenv("MLC_SPARK_MASTER", "local[3]")
    assert master({"master": "spark://head:7077", "conf": {}}) == "local[3]"


def test_spark_overlay_carries_settings_and_hash_key_into_the_ir() -> None:
    ir = ir_of(CREDIT, ("+split=hash", "+engine=spark"))
    want = {"master": "local[2]", "conf": {"spark.sql.shuffle.partitions": "4"}}
    for kind in _SPARK_SETTINGS_STEPS:
        step = ir.first(kind)
        assert step is not None and step.params["spark"] == want, kind
    split = ir.first(StepKind.SPLIT)
    assert split is not None
    assert (split.params["method"], split.params["key"], split.params["engine"]) == (
        "hash",
        "applicant_id",
        "spark",
    )
    assert ("split.hash", "data.split.method") in [(r.feature, r.origin) for r in split.requires]


def test_pandas_ir_carries_no_spark_keys() -> None:
    ir = ir_of(CREDIT)
    for kind in _SPARK_SETTINGS_STEPS:
        step = ir.first(kind)
        assert step is not None and "spark" not in step.params
    split = ir.first(StepKind.SPLIT)
    assert split is not None and "key" not in split.params and "engine" not in split.params


def test_hash_fraction_is_the_documented_sha256_prefix() -> None:
    import hashlib

    for key, seed in ((7, 42), ("abc", 0), (123456789, 7)):
        digest = hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()
        assert keys.fraction(key, seed) == int(digest[:13], 16) / 2**52
    assert keys.part_of(0.1, 0.2, 0.1) == "test"
    assert keys.part_of(0.25, 0.2, 0.1) == "validation"
    assert keys.part_of(0.3, 0.2, 0.1) == "train"


def test_spark_batch_scoring_carries_the_settings() -> None:
    ir = ir_of(CREDIT, ("+engine=spark", "+serving=batch"))
    step = ir.first(StepKind.BATCH_PREDICT)
    assert step is not None
    assert step.params["engine"] == "spark"
    assert step.params["spark"] == {
        "master": "local[2]",
        "conf": {"spark.sql.shuffle.partitions": "4"},
    }
    pandas = ir_of(CREDIT, ("+serving=batch",)).first(StepKind.BATCH_PREDICT)
    assert pandas is not None and pandas.params["spark"] is None
