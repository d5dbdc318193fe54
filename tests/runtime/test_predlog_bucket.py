"""The prediction log under a bucket URI (fsspec): only closed segments are uploaded."""

from __future__ import annotations

import time


def test_a_bucket_log_uploads_closed_segments_only() -> None:
    """A log under a URI (fsspec; `memory://` here) holds only whole, closed segments."""
    import fsspec

    from mlc.runtime.serving.predlog import PredictionLog, local_copy, read_log

    uri = "memory://mlc-test/predictions"
    log = PredictionLog(uri, segment_rows=3, segment_seconds=3600)
    rows = [
        {
            "request_id": f"r{i}",
            "row": 0,
            "time": 1.0,
            "track": "stable",
            "model_version": "1",
            "shadow": False,
            "latency_ms": 1.0,
            "x": float(i),
        }
        for i in range(7)
    ]
    log.append(rows)
    deadline = time.monotonic() + 10
    fs = fsspec.filesystem("memory")
    while not fs.exists("/mlc-test/predictions") or len(fs.ls("/mlc-test/predictions")) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # two closed segments of 3 rows are in the bucket; the open one (1 row) is not
    assert sorted(read_log(uri)["x"]) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    log.close()
    assert sorted(read_log(uri)["x"]) == [float(i) for i in range(7)]
    assert len(list(local_copy(uri).glob("seg-*.parquet"))) == 3
    fs.rm("/mlc-test", recursive=True)
