"""The drift settings from spec to IR, and the prediction log read as a window of current data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlc.compiler.api import check
from mlc.compiler.api._monitor import _from_log
from mlc.compiler.ir import StepKind
from mlc.runtime.serving.predlog import PredictionLog

REPO = Path(__file__).resolve().parents[2]
CREDIT = REPO / "examples" / "credit" / "mlc.yaml"


def _monitor_step(*overrides: str) -> object:
    result = check(CREDIT, list(overrides), targets=["local", "monitoring"])
    assert result.ok, [d.message for d in result.diagnostics if d.severity.name == "ERROR"]
    step = result.ir.first(StepKind.MONITOR)
    assert step is not None
    return step


def test_the_builder_fills_in_the_test_per_column_type() -> None:
    step = _monitor_step()
    drift = step.params["drift"]  # type: ignore[attr-defined]
    # the defaults: the spec's method (psi) for numbers, chi2 for categories
    assert (drift["method"], drift["numeric"], drift["categorical"]) == ("psi", "psi", "chi2")
    assert step.params["window"] == 86400.0 and step.params["min_rows"] == 100  # type: ignore[attr-defined]
    chosen = _monitor_step(
        "monitoring.drift.numeric=wasserstein", "monitoring.window=2h", "monitoring.min_rows=20"
    )
    drift = chosen.params["drift"]  # type: ignore[attr-defined]
    assert (drift["numeric"], drift["categorical"]) == ("wasserstein", "chi2")
    assert chosen.params["window"] == 7200.0 and chosen.params["min_rows"] == 20  # type: ignore[attr-defined]
    needs = {(r.feature, r.origin) for r in chosen.requires}  # type: ignore[attr-defined]
    assert ("drift.wasserstein", "monitoring.drift.numeric") in needs
    # drift.method keeps working: chi2 asked for scores both kinds of column
    drift = _monitor_step("monitoring.drift.method=chi2").params["drift"]  # type: ignore[attr-defined]
    assert (drift["numeric"], drift["categorical"]) == ("chi2", "chi2")


def test_a_categorical_test_that_needs_numbers_is_refused() -> None:
    from mlc.compiler.diagnostics import DiagnosticError

    with pytest.raises(DiagnosticError, match=r"monitoring\.drift\.categorical"):
        check(CREDIT, ["monitoring.drift.categorical=ks"], targets=["local"])


def _write_log(folder: Path, rows: int, when: float, version: str, start: int = 0) -> None:
    log = PredictionLog(folder, segment_rows=50, segment_seconds=0)
    log.append(
        [
            {
                "request_id": f"r{start + i}",
                "row": 0,
                "time": when,
                "track": "stable",
                "model_version": version,
                "shadow": False,
                "latency_ms": 1.0,
                "x": float(i),
            }
            for i in range(rows)
        ]
    )
    log.close()


def test_the_window_keeps_recent_rows_and_skips_torn_and_foreign_segments(tmp_path: Path) -> None:
    now = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
    folder = tmp_path / "log"
    _write_log(folder, 120, now.timestamp() - 3 * 86400, "1")
    _write_log(folder, 80, now.timestamp() - 600, "2", start=200)
    _write_log(folder, 10, now.timestamp() - 300, "1", start=400)
    (folder / ".seg-000777.parquet.tmp").write_bytes(b"PAR1 torn")
    (folder / "seg-20261201T000000Z-000778.parquet").write_text("{}")
    (folder / "notes.txt").write_text("left by someone")
    pd.DataFrame({"a": [1]}).to_parquet(folder / "seg-20261201T000000Z-000779.parquet")
    frame, served, note = _from_log(
        folder, {"x": {"dtype": "float"}}, None, None, None, window=86400.0, now=now
    )
    assert len(frame) == 90 and frame["x"].tolist() == [*np.arange(80.0), *np.arange(10.0)]
    assert served is not None and served[0] == "2" and "80 of 90" in served[1]
    assert note is not None and "90 of 210 logged row(s) in the window" in note
    assert "1 open or torn segment" in note and "1 file(s) that are not log segments" in note
    assert "2 segment(s) that are not this log's Parquet" in note


def test_a_log_with_nothing_readable_is_a_clear_error(tmp_path: Path) -> None:
    from mlc.compiler.api import MonitorError

    folder = tmp_path / "log"
    folder.mkdir()
    (folder / "seg-20261201T000000Z-000001.parquet").write_text("torn")
    with pytest.raises(MonitorError, match=r"no closed segment.*not this log's Parquet"):
        _from_log(folder, {}, None, None, None)
