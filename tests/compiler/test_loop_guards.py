"""`mlc loop`'s guards without a pipeline run: the lock, interrupted passes, cooldown and caps,
and the training data it builds (source rows plus labelled production rows, deduplicated)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlc.compiler.api import check
from mlc.compiler.api._loop import (
    LoopBusy,
    _hold,
    _locked,
    _Pass,
    _production_rows,
    _training_data,
    history,
)

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


def test_a_second_pass_is_refused_and_a_killed_one_leaves_no_lock(tmp_path: Path) -> None:
    folder = tmp_path / "loop"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path;"
            "from mlc.compiler.api._loop import _locked\n"
            "with _locked(Path(sys.argv[1])):\n print('held', flush=True); time.sleep(60)",
            str(folder),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LoopBusy, match=f"pid {holder.pid}"), _locked(folder):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with _locked(folder):  # the kernel dropped the dead holder's lock
        assert (folder / "lock").read_text() == str(os.getpid())


def test_a_pass_killed_midway_is_recorded_as_interrupted(tmp_path: Path) -> None:
    killed = _Pass(tmp_path, NOW, "abc")
    (tmp_path / "loop").mkdir()
    killed.phase("retrain", retrain_started=NOW.isoformat())
    later = _Pass(tmp_path, NOW + dt.timedelta(minutes=5), "abc")
    found = later.recover()
    assert found is not None and found["outcome"] == "interrupted"
    assert found["summary"] == "killed during retrain"
    assert not (tmp_path / "loop" / "state.json").exists()
    assert history(tmp_path)[-1]["attempt"] == killed.attempt
    events = [json.loads(line)["event"] for line in (tmp_path / "audit.jsonl").open()]
    assert events == ["loop.interrupted"]


def _record(when: dt.datetime, retrained: bool = True) -> dict[str, object]:
    return {"when": when.isoformat(), "retrained": retrained, "outcome": "registered"}


def test_cooldown_and_the_monthly_run_cap(credit_copy: Path) -> None:
    spec = credit_copy
    cool = ["+feedback.retrain={cooldown:2h,max_runs_per_month:2}"]
    result = check(spec, cool, targets=["local"])
    assert result.ok, result.diagnostics
    held, facts = _hold(spec, cool, result, [_record(NOW - dt.timedelta(hours=1))], NOW)
    assert held == "cooling down until 2026-12-02T13:00:00+00:00"
    assert facts["since_last_retrain_s"] == 3600.0
    two = [_record(NOW - dt.timedelta(hours=5)), _record(NOW - dt.timedelta(hours=3))]
    held, facts = _hold(spec, cool, result, two, NOW)
    assert held == "2 retrain(s) this month, the cap is 2"
    last_month = [_record(dt.datetime(2026, 11, 30, tzinfo=dt.UTC))] * 5
    assert _hold(spec, cool, result, last_month, NOW)[0] is None
    # a pass killed while retraining counts for the cooldown
    interrupted = [{"outcome": "interrupted", "retrain_started": NOW.isoformat()}]
    assert str(_hold(spec, cool, result, interrupted, NOW)[0]).startswith("cooling down")


def test_the_usd_cap_uses_the_cost_estimate(credit_copy: Path) -> None:
    from mlc.compiler.cost.report import cost_report

    capped = ["+feedback.retrain={cooldown:0,max_usd_per_month:0.000001}"]
    result = check(credit_copy, capped, targets=["local"])
    per_run = cost_report(credit_copy, capped, targets=["local"]).estimate.per_run_usd
    assert per_run > 0
    held, facts = _hold(credit_copy, capped, result, [], NOW)
    assert held is not None and "over the $1e-06 cap" in held
    assert facts["usd_per_run"] == round(per_run, 4)


def test_training_rows_join_labels_and_the_newest_row_of_a_key_wins(
    credit_copy: Path, tmp_path: Path
) -> None:
    from mlc.runtime.serving.predlog import PredictionLog

    result = check(credit_copy, [], targets=["local"])
    source = pd.read_csv(credit_copy.parent / "data" / "applications.csv")
    log = PredictionLog(tmp_path / "log", segment_rows=10, segment_seconds=3600)
    rows = []
    for i in range(20):
        row = source.iloc[i].drop(labels=["default"]).to_dict()
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        row["income"] = float(row["income"]) * 2
        rows.append(
            {
                "request_id": f"r{i}",
                "row": 0,
                "time": NOW.timestamp() - 60,
                "track": "stable",
                "model_version": "1",
                "shadow": False,
                "latency_ms": 1.0,
                **row,
            }
        )
    log.append(rows)
    log.close()
    labels = tmp_path / "labels.parquet"
    # labels for 15 of them, one arriving twice (the later one counts); one for an unknown id
    pd.DataFrame(
        {
            "request_id": [*(f"r{i}" for i in range(15)), "r3", "unknown"],
            "row": 0,
            "default": [*([0] * 15), 1, 1],
        }
    ).to_parquet(labels)
    columns = dict(result.spec.data.contract.columns)
    production = _production_rows(tmp_path / "log", labels, columns, "default", 86400, NOW)
    assert len(production) == 15
    third = production[production["applicant_id"] == source["applicant_id"][3]]
    assert int(third["default"].iloc[0]) == 1
    overrides, counts = _training_data(result, production, tmp_path / "data")
    assert counts["source_rows"] == len(source)
    assert counts["production_rows"] == 15
    assert counts["duplicates_dropped"] == 15  # same applicant ids: the logged rows replace them
    assert counts["training_rows"] == len(source)
    combined = pd.read_csv(counts["data_file"])
    first = combined[combined["applicant_id"] == source["applicant_id"][0]].iloc[0]
    assert first["income"] == pytest.approx(source["income"][0] * 2)
    assert combined["age"].dtype == source["age"].dtype
    assert overrides == [f"data.sources.0.path={counts['data_file']}"]
    # outside the window: nothing
    late = NOW + dt.timedelta(days=3)
    assert _production_rows(tmp_path / "log", labels, columns, "default", 86400, late).empty
