"""`mlc cache info` / `mlc cache gc` on real cache entries written by the local executor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.local_chain import STEPS, chain_ir, make_frame

from mlc.targets.local.cache import CacheIndex
from mlc.targets.local.executor import RunError, RunOptions, execute
from mlc.targets.local.gc import cache_info, collect_garbage
from mlc.targets.local.journal import run_lock


def _run(project: Path, csv: str) -> dict[str, str]:
    result = execute(chain_ir(3, csv=csv), RunOptions(project_dir=project, quiet=True), STEPS)
    assert result.status == "succeeded", result.error
    return {s.step_id: s.status for s in result.steps}


@pytest.fixture
def two_configs(tmp_path: Path) -> Path:
    # Two datasets: every entry of the first run differs from every entry of the second.
    make_frame(200, 10, seed=1).to_csv(tmp_path / "a.csv", index=False)
    make_frame(200, 10, seed=2).to_csv(tmp_path / "b.csv", index=False)
    _run(tmp_path, "a.csv")
    _run(tmp_path, "b.csv")
    return tmp_path


def test_gc_keeps_what_recent_runs_used_and_drops_the_rest(two_configs: Path) -> None:
    state = two_configs / ".mlc"
    cache = state / "cache"
    layout_1 = cache / ("ab" * 32)  # a folder an older cache layout left
    layout_1.mkdir()
    (layout_1 / "payload").write_bytes(b"x" * 1000)
    before = cache_info(state)
    assert before.entries == 8 and before.removed_folders == [layout_1.name]

    dry = collect_garbage(state, keep_runs=1, dry_run=True)
    assert dry.dropped_entries == 4 and dry.kept_entries == 4 and layout_1.exists()
    assert len(CacheIndex(str(cache)).entries) == 8  # a dry run changes nothing

    report = collect_garbage(state, keep_runs=1)
    assert report.dropped_entries == 4 and report.kept_entries == 4
    assert report.freed_bytes > 1000 and not layout_1.exists()
    index = CacheIndex(str(cache))
    assert len(index.entries) == 4
    on_disk = {p.name for p in cache.iterdir() if p.is_dir()}
    assert on_disk == index.live_folders()
    # The newest configuration is still a full hit; the dropped one runs again.
    assert set(_run(two_configs, "b.csv").values()) == {"cached"}
    assert set(_run(two_configs, "a.csv").values()) == {"ran"}


def test_gc_with_no_runs_kept_empties_the_cache(two_configs: Path) -> None:
    report = collect_garbage(two_configs / ".mlc", keep_runs=0)
    assert report.kept_entries == 0 and report.dropped_entries == 8
    cache = two_configs / ".mlc" / "cache"
    assert not [p for p in cache.iterdir() if p.is_dir()]
    assert (cache / "index.jsonl").read_bytes() == b""


def test_gc_waits_for_no_run(two_configs: Path) -> None:
    state = two_configs / ".mlc"
    with run_lock(state), pytest.raises(RunError, match="another 'mlc run'"):
        collect_garbage(state)


def test_cache_commands(two_configs: Path) -> None:
    def mlc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from mlc.compiler.cli import main; main()", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=two_configs,
        )

    info = mlc("cache", "info", "--json")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["entries"] == 8
    gc = mlc("cache", "gc", "--keep-runs", "1")
    assert gc.returncode == 0, gc.stderr
    assert "dropped 4 of 8 entries" in gc.stdout
    bad = mlc("cache", "gc", "--keep-runs", "-1")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    # `mlc runs` into a pipe: whole run ids (the table is not squeezed to 80 columns).
    table = mlc("runs")
    assert table.returncode == 0, table.stderr
    ids = [p.stem for p in (two_configs / ".mlc" / "runs").glob("*.json")]
    assert len(ids) == 2 and all(run_id in table.stdout for run_id in ids)


def test_run_ids_sort_by_start_time_within_a_second() -> None:
    import time

    from mlc.targets.local.journal import new_run_id

    ids = []
    for _ in range(5):
        ids.append(new_run_id())
        time.sleep(0.002)
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_gc_where_nothing_ran_changes_nothing(tmp_path: Path) -> None:
    report = collect_garbage(tmp_path / ".mlc")
    assert report.entries == 0 and report.dropped_entries == 0
    assert not (tmp_path / ".mlc").exists()
