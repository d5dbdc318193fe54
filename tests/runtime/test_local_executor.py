"""The local executor on generated IRs of real tiny steps: cache, selection, gates, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from support.local_chain import STEPS, chain_ir, write_csv

from mlc.runtime import audit, lineage
from mlc.runtime.artifacts import load_dataframe, save_dataframe
from mlc.targets.local.cache import CacheIndex
from mlc.targets.local.executor import RunError, RunOptions, execute, list_runs

TESTS = Path(__file__).resolve().parents[1]


def _index(project: Path) -> CacheIndex:
    return CacheIndex(str(project / ".mlc" / "cache"))


def _stray_folders(project: Path) -> list[str]:
    """Cache folders that no index line vouches for (none may outlive a run)."""
    live = _index(project).live_folders()
    cache = project / ".mlc" / "cache"
    return sorted(p.name for p in cache.iterdir() if p.is_dir() and p.name not in live)


def _opts(project: Path, **kw: object) -> RunOptions:
    return RunOptions(project_dir=project, quiet=True, **kw)  # type: ignore[arg-type]


def _status(result: object) -> dict[str, str]:
    return {s.step_id: s.status for s in result.steps}  # type: ignore[attr-defined]


def test_first_run_executes_and_rerun_is_a_full_cache_hit(tmp_path: Path) -> None:
    write_csv(tmp_path)
    ir = chain_ir(4)
    first = execute(ir, _opts(tmp_path), STEPS)
    assert first.status == "succeeded"
    assert set(_status(first).values()) == {"ran"}
    final = load_dataframe(first.steps[-1].outputs["data"])
    assert final.shape == (200, 10)
    second = execute(ir, _opts(tmp_path), STEPS)
    assert set(_status(second).values()) == {"cached"}
    assert second.cache_hits == 5 and second.executed == 0
    assert [s.hashes for s in second.steps] == [s.hashes for s in first.steps]


def test_a_change_reruns_only_what_it_affects(tmp_path: Path) -> None:
    write_csv(tmp_path)
    execute(chain_ir(4), _opts(tmp_path), STEPS)
    changed = chain_ir(4)
    steps = [
        s if s.id != "s0002" else replace(s, params={"add": 5, "index": 2}) for s in changed.steps
    ]
    from mlc.compiler.ir import IRGraph

    ir = IRGraph("chain", changed.metadata, {}, steps, changed.artifacts)
    result = execute(ir, _opts(tmp_path), STEPS)
    assert _status(result) == {
        "ingest": "cached",
        "s0000": "cached",
        "s0001": "cached",
        "s0002": "ran",
        "s0003": "ran",
    }


def test_changed_source_file_invalidates_ingest(tmp_path: Path) -> None:
    write_csv(tmp_path, seed=0)
    execute(chain_ir(2), _opts(tmp_path), STEPS)
    write_csv(tmp_path, seed=1)
    result = execute(chain_ir(2), _opts(tmp_path), STEPS)
    assert set(_status(result).values()) == {"ran"}


def test_corrupt_cache_entry_is_detected_and_recomputed(tmp_path: Path) -> None:
    write_csv(tmp_path)
    first = execute(chain_ir(3), _opts(tmp_path), STEPS)
    parquet = Path(first.steps[2].outputs["data"]) / "data.parquet"
    data = bytearray(parquet.read_bytes())
    data[len(data) // 2] ^= 0xFF
    parquet.write_bytes(bytes(data))
    again = execute(chain_ir(3), _opts(tmp_path), STEPS)
    assert _status(again)["s0001"] == "recomputed"
    assert _status(again)["s0002"] == "cached"
    assert load_dataframe(again.steps[2].outputs["data"]).shape == (200, 10)


def test_no_cache_from_and_only(tmp_path: Path) -> None:
    write_csv(tmp_path)
    ir = chain_ir(3)
    execute(ir, _opts(tmp_path), STEPS)
    assert set(_status(execute(ir, _opts(tmp_path, use_cache=False), STEPS)).values()) == {"ran"}
    from_ = _status(execute(ir, _opts(tmp_path, from_step="s0001"), STEPS))
    assert from_ == {"ingest": "cached", "s0000": "cached", "s0001": "ran", "s0002": "ran"}
    only = _status(execute(ir, _opts(tmp_path, only="s0001"), STEPS))
    assert only == {"ingest": "cached", "s0000": "cached", "s0001": "ran", "s0002": "cached"}
    with pytest.raises(RunError, match="did you mean 's0001'"):
        execute(ir, _opts(tmp_path, only="s001"), STEPS)


def test_only_without_cached_inputs_is_a_clear_error(tmp_path: Path) -> None:
    write_csv(tmp_path)
    # The first step it reads from that has nothing cached is the one to run first.
    with pytest.raises(RunError, match="step 'ingest', which has no cached result") as err:
        execute(chain_ir(3), _opts(tmp_path, only="s0002"), STEPS)
    assert "--from ingest" in str(err.value)


def _stamped_step(
    params: dict[str, object], inputs: dict[str, str], outputs: dict[str, str], ctx: object
) -> dict[str, object]:
    """`add_step` whose output differs on every call (as a step with a clock in it would)."""
    df = load_dataframe(inputs["data"]) + time.time_ns() % 1000 / 1000
    save_dataframe(outputs["data"], df)
    return {"rows": len(df)}


def test_only_does_not_demand_results_of_the_steps_after_it(tmp_path: Path) -> None:
    write_csv(tmp_path)
    ir = chain_ir(3, threshold=0.0)
    steps = {**STEPS, "features": _stamped_step}
    execute(ir, _opts(tmp_path), steps)
    # s0001's new output changes the keys after it: those are not run, and no error.
    only = execute(ir, _opts(tmp_path, only="s0001"), steps)
    assert only.status == "succeeded"
    assert _status(only) == {
        "ingest": "cached",
        "s0000": "cached",
        "s0001": "ran",
        "s0002": "skipped",
        "gate": "skipped",
        "register": "skipped",
    }
    assert "--only s0001" in only.steps[3].message
    # Selecting the gate or register alone takes their inputs from the cache.
    execute(ir, _opts(tmp_path), steps)
    assert _status(execute(ir, _opts(tmp_path, only="gate"), steps))["gate"] == "ran"
    register = execute(ir, _opts(tmp_path, only="register"), steps)
    assert _status(register)["register"] == "ran" and register.verdicts["gate"]["passed"]


def test_failing_gate_skips_conditional_steps(tmp_path: Path) -> None:
    write_csv(tmp_path)
    failed = execute(chain_ir(1, threshold=99.0), _opts(tmp_path), STEPS)
    assert failed.status == "gate_failed"
    assert _status(failed)["register"] == "skipped"
    assert failed.verdicts["gate"]["passed"] is False
    passed = execute(chain_ir(1, threshold=0.0), _opts(tmp_path), STEPS)
    assert passed.status == "succeeded"
    assert _status(passed)["register"] == "ran"
    events = [r["event"] for r in audit.read(tmp_path / ".mlc")]
    assert events.count("gate.verdict") == 2


def test_step_error_stops_the_run_with_its_message(tmp_path: Path) -> None:
    write_csv(tmp_path)
    result = execute(chain_ir(3, fail_at=1), _opts(tmp_path), STEPS)
    assert result.status == "failed"
    assert "step 's0001': asked to fail" in result.error
    assert _status(result)["s0002"] == "not_run"
    assert _stray_folders(tmp_path) == []


def test_missing_data_file_names_the_step(tmp_path: Path) -> None:
    result = execute(chain_ir(1), _opts(tmp_path), STEPS)
    assert result.status == "failed"
    assert "step 'ingest'" in result.error and "does not exist" in result.error


def test_run_record_lineage_events_and_audit(tmp_path: Path) -> None:
    write_csv(tmp_path)
    result = execute(chain_ir(2), _opts(tmp_path), STEPS)
    record = json.loads(result.record_path.read_text())  # type: ignore[union-attr]
    assert record["status"] == "succeeded"
    assert record["budgets"]["spent"]["wall_seconds"] > 0
    assert [r["run_id"] for r in list_runs(tmp_path / ".mlc")] == [result.run_id]
    events = lineage.read_events(tmp_path / ".mlc", result.run_id)
    kinds = [(e["job"]["name"], e["eventType"]) for e in events]
    assert kinds[:2] == [("chain.ingest", "START"), ("chain.ingest", "COMPLETE")]
    complete = events[-1]
    assert complete["outputs"][0]["name"] == "s0001.data"
    assert (
        complete["outputs"][0]["facets"]["version"]["datasetVersion"]
        == result.steps[-1].hashes["data"]
    )
    assert audit.verify(tmp_path / ".mlc").ok
    events = [r["event"] for r in audit.read(tmp_path / ".mlc")]
    # One `step.outputs` record (the digests of what it wrote) per executed step.
    assert events == ["run.start", *["step.outputs"] * len(result.steps), "run.end"]


_KILL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from support.local_chain import STEPS, chain_ir
from mlc.targets.local.executor import RunOptions, execute
result = execute(chain_ir(6, sleep={sleep}), RunOptions(project_dir=Path({project!r})), STEPS)
print(result.status)
"""


def test_kill_9_mid_run_then_rerun_resumes(tmp_path: Path) -> None:
    write_csv(tmp_path)
    calls = tmp_path / "calls.txt"
    script = tmp_path / "run.py"
    script.write_text(_KILL_SCRIPT.format(tests=str(TESTS), sleep=0.4, project=str(tmp_path)))
    env = {**os.environ, "MLC_TEST_CALLS": str(calls)}
    proc = subprocess.Popen(
        [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = calls.read_text().split() if calls.exists() else []
        if len(done) >= 3:
            break
        time.sleep(0.05)
    time.sleep(0.2)  # land inside the next step, while it writes its temp folder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    finished_before = len(calls.read_text().split())
    assert finished_before < 6
    resumed = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "succeeded"
    # steps committed before the kill come from the cache (the one killed mid-write may have
    # logged its call without committing its entry); the rest run once more
    cached = [line for line in resumed.stderr.splitlines() if "cache hit" in line and " s0" in line]
    assert finished_before - 1 <= len(cached) <= finished_before
    assert len(cached) >= 2
    assert _stray_folders(tmp_path) == []
    killed = [r for r in list_runs(tmp_path / ".mlc") if r["status"] == "interrupted"]
    assert len(killed) == 1
    assert audit.verify(tmp_path / ".mlc").ok


def test_recorded_file_hashes_match_the_bytes_on_disk(tmp_path: Path) -> None:
    # Fresh entries take the payload hash from `_meta.json` instead of reading the payload
    # back: every recorded hash must still be the sha256 of the file as written.
    import hashlib

    write_csv(tmp_path)
    result = execute(chain_ir(2, threshold=0.0), _opts(tmp_path), STEPS)
    assert result.status == "succeeded"
    checked = 0
    for outcome in result.steps:
        record = _index(tmp_path).get(outcome.key)
        assert record is not None
        for rel, recorded in record["files"].items():
            name, _, inner = rel.partition("/")
            data = (Path(outcome.outputs[name]) / inner).read_bytes()
            assert hashlib.sha256(data).hexdigest() == recorded, rel
            checked += 1
        assert set(record["outputs"]) == set(outcome.outputs)
    assert checked >= 2 * len(result.steps)


def test_output_with_several_files_is_hashed_file_by_file(tmp_path: Path) -> None:
    from mlc.runtime import artifacts

    def report(
        params: object, inputs: dict[str, str], outputs: dict[str, str], ctx: object
    ) -> None:
        artifacts.save_text(outputs["data"], "notes.md", "# notes\n")
        artifacts.save_json(outputs["data"], "doc", {"a": 1}, "report")

    write_csv(tmp_path)
    steps = {**STEPS, "features": report}
    first = execute(chain_ir(1), _opts(tmp_path), steps)
    record = _index(tmp_path).get(first.steps[1].key)
    assert record is not None
    assert sorted(record["files"]) == ["data/_meta.json", "data/doc.json", "data/notes.md"]
    (Path(first.steps[1].outputs["data"]) / "notes.md").write_text("# edited\n")
    again = execute(chain_ir(1), _opts(tmp_path), steps)
    assert _status(again) == {"ingest": "cached", "s0000": "recomputed"}


def test_output_without_an_index_line_is_a_leftover(tmp_path: Path) -> None:
    """Folders no index line vouches for (a killed run's) are cleared and the step reruns."""
    write_csv(tmp_path)
    first = execute(chain_ir(2), _opts(tmp_path), STEPS)
    key = first.steps[1].key
    index = tmp_path / ".mlc" / "cache" / "index.jsonl"
    lines = index.read_text().splitlines(keepends=True)
    index.write_text("".join(line for line in lines if json.loads(line)["key"] != key))
    cache = tmp_path / ".mlc" / "cache"
    (cache / ("a" * 64 + ".data")).mkdir()  # a killed step's output folder
    (cache / "index.jsonl.tmp-12345").write_text("{")  # a killed index rewrite
    again = execute(chain_ir(2), _opts(tmp_path), STEPS)
    assert not (cache / ("a" * 64 + ".data")).exists()
    assert not (cache / "index.jsonl.tmp-12345").exists()
    assert _status(again) == {"ingest": "cached", "s0000": "ran", "s0001": "cached"}
    record = json.loads(again.record_path.read_text())  # type: ignore[union-attr]
    assert [s["status"] for s in record["steps"]] == ["cached", "ran", "cached"]
    assert _stray_folders(tmp_path) == []


def test_a_torn_index_line_costs_only_its_entry(tmp_path: Path) -> None:
    """A kill mid-append leaves a line without its end: it is skipped, later lines still count."""
    write_csv(tmp_path)
    first = execute(chain_ir(2), _opts(tmp_path), STEPS)
    index = tmp_path / ".mlc" / "cache" / "index.jsonl"
    lines = index.read_text().splitlines(keepends=True)
    torn = lines[-1][: len(lines[-1]) // 2]
    index.write_text("".join(lines[:-1]) + torn)
    again = execute(chain_ir(2), _opts(tmp_path), STEPS)
    assert _status(again) == {"ingest": "cached", "s0000": "cached", "s0001": "ran"}
    assert [s.hashes for s in again.steps] == [s.hashes for s in first.steps]
    third = execute(chain_ir(2), _opts(tmp_path), STEPS)
    assert set(_status(third).values()) == {"cached"}


def test_the_index_is_compacted_when_dead_lines_pile_up(tmp_path: Path) -> None:
    write_csv(tmp_path)
    for _ in range(4):
        execute(chain_ir(30), _opts(tmp_path, use_cache=False), STEPS)
    index = tmp_path / ".mlc" / "cache" / "index.jsonl"
    before = len(index.read_text().splitlines())
    assert before > 2 * 31 + 100  # every forced run appends a tombstone and a line per step
    again = execute(chain_ir(30), _opts(tmp_path), STEPS)
    assert set(_status(again).values()) == {"cached"}
    assert len(index.read_text().splitlines()) == 31
    assert _stray_folders(tmp_path) == []
