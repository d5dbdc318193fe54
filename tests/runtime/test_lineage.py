"""Lineage: model records queried by model, version and hash prefixes; OpenLineage run events."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from mlc.runtime import lineage


def _record(state: Path, version: str, data: str) -> None:
    lineage.record_model(
        state,
        model_name="m",
        version=version,
        run_id=f"r{version}",
        data_hash=data,
        spec_hash="spec1",
        code_version="mlc 0.1 @ abc",
        model_hash=f"model{version}",
        aliases=["challenger"],
    )


def test_query_by_model_version_and_hash_prefix(tmp_path: Path) -> None:
    _record(tmp_path, "1", "aaaa1111")
    _record(tmp_path, "2", "bbbb2222")
    lineage.record_model(
        tmp_path,
        model_name="other",
        version="1",
        run_id="x",
        data_hash="aaaa",
        spec_hash="s",
        code_version="c",
        model_hash="h",
    )
    assert [r["version"] for r in lineage.query(tmp_path, "m")] == ["1", "2"]
    assert [r["version"] for r in lineage.query(tmp_path, "m", data_hash="bbbb")] == ["2"]
    assert [r["model_name"] for r in lineage.query(tmp_path, data_hash="aaaa")] == ["m", "other"]
    assert lineage.query(tmp_path, "m", version="2")[0]["code_version"] == "mlc 0.1 @ abc"
    assert lineage.query(tmp_path, "m", spec_hash="nope") == []
    path = tmp_path / "lineage" / "models.jsonl"
    path.write_text(path.read_text() + '{"cut by a kill')
    assert len(lineage.query(tmp_path)) == 3


def test_run_event_has_the_openlineage_shape(tmp_path: Path) -> None:
    when = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
    event = lineage.run_event(
        "COMPLETE",
        pipeline="credit",
        run_id="run1",
        step_id="train",
        inputs={"split.train": "h1"},
        outputs={"train.model": "h2"},
        when=when,
    )
    assert set(event) == {
        "eventType",
        "eventTime",
        "producer",
        "schemaURL",
        "run",
        "job",
        "inputs",
        "outputs",
    }
    assert event["eventTime"] == "2026-11-26T00:00:00.000+00:00"
    uuid.UUID(event["run"]["runId"])
    parent = event["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == lineage.run_uuid("run1")
    assert event["job"] == {"namespace": "mlc/credit", "name": "credit.train", "facets": {}}
    assert event["outputs"][0]["facets"]["version"]["datasetVersion"] == "h2"
    assert all(
        "_producer" in f and "_schemaURL" in f
        for d in event["inputs"] + event["outputs"]
        for f in d["facets"].values()
    )
    with pytest.raises(ValueError, match="unknown OpenLineage event type"):
        lineage.run_event("DONE", pipeline="p", run_id="r", step_id="s", inputs={}, outputs={})


@pytest.mark.parametrize(
    ("event_type", "inputs", "outputs"),
    [
        ("START", {}, {}),
        ("START", {"split.train": "ab" * 32, "tune.params": None}, {"train.model": None}),
        ("COMPLETE", {"a.b": "1"}, {"train.model": "cd" * 32, "train.extra": "ef"}),
        ("FAIL", {'we"ird.name': None}, {}),
    ],
)
def test_fast_event_lines_equal_the_reference_events(
    event_type: str, inputs: dict[str, str | None], outputs: dict[str, str | None]
) -> None:
    import json

    when = dt.datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=dt.UTC)
    for pipeline, run_id, step in [("credit-risk", "20261126-1", "train"), ("p", "r", 'ü"x')]:
        reference = lineage.run_event(
            event_type,
            pipeline=pipeline,
            run_id=run_id,
            step_id=step,
            inputs=inputs,
            outputs=outputs,
            when=when,
        )
        fast = lineage.RunEventLines(pipeline, run_id).line(
            event_type, step, inputs, outputs, when=when
        )
        assert fast == json.dumps(reference, sort_keys=True, separators=(",", ":")) + "\n"
