"""Adaptive micro-batching: concurrent requests share model calls, and each gets its own rows."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlc.runtime.serving.batching import Batcher
from mlc.runtime.serving.models import Outputs, Track


class Recorder:
    """A model whose answer for a row is a function of that row alone; it records call sizes."""

    def __init__(self, delay: float = 0.0, fail_on: int | None = None) -> None:
        self.calls: list[int] = []
        self.delay = delay
        self.fail_on = fail_on
        self._lock = threading.Lock()

    def __call__(self, frame: pd.DataFrame) -> Outputs:
        with self._lock:
            self.calls.append(len(frame))
        time.sleep(self.delay)
        if self.fail_on is not None and (frame["x"] == self.fail_on).any():
            raise ValueError(f"cannot score x={self.fail_on}")
        x = frame["x"].to_numpy(dtype="float64")
        proba = np.column_stack([1 / (1 + np.exp(x)), 1 - 1 / (1 + np.exp(x))])
        return Outputs(label=(x > 0).astype(int).tolist(), proba=proba)


def _track(model: Recorder) -> Track:
    return Track("stable", "1", "test", "classification", ["x"], [0, 1], model)


def _batcher(pool: ThreadPoolExecutor, size: int = 16, wait_ms: float = 5.0) -> Batcher:
    return Batcher(pool, lambda data: pd.DataFrame(data), size, wait_ms)


def test_concurrent_requests_are_batched_and_keep_their_rows_apart() -> None:
    model = Recorder(delay=0.01)
    track = _track(model)

    async def main() -> list[Any]:
        with ThreadPoolExecutor(2) as pool:
            batcher = _batcher(pool)
            requests = [
                {"x": [float(i), float(-i), float(i) / 10]} if i % 3 else {"x": [float(i)]}
                for i in range(60)
            ]
            got = await asyncio.gather(*(batcher.score(track, r, len(r["x"])) for r in requests))
            return [requests, got, batcher.batches]

    requests, got, batches = asyncio.run(main())
    assert batches < len(requests)  # requests that arrived together shared model calls
    assert max(model.calls) > 3 and max(model.calls) <= 16
    for request, (frame, out) in zip(requests, got, strict=True):
        x = np.asarray(request["x"])
        assert frame["x"].tolist() == request["x"]
        assert out.label == (x > 0).astype(int).tolist()
        assert out.proba is not None
        np.testing.assert_allclose(out.proba[:, 1], 1 - 1 / (1 + np.exp(x)), atol=1e-15)


def test_an_idle_server_scores_at_once() -> None:
    model = Recorder()
    track = _track(model)

    async def main() -> float:
        with ThreadPoolExecutor(1) as pool:
            batcher = _batcher(pool, wait_ms=500.0)
            start = time.perf_counter()
            for i in range(5):
                await batcher.score(track, {"x": [float(i)]}, 1)
            return time.perf_counter() - start

    elapsed = asyncio.run(main())
    assert model.calls == [1, 1, 1, 1, 1]
    assert elapsed < 2.5  # never the 500 ms wait: each request found the model idle


def test_a_failing_batch_fails_its_requests_and_the_next_batch_runs() -> None:
    model = Recorder(delay=0.01, fail_on=7)
    track = _track(model)

    async def main() -> list[Any]:
        with ThreadPoolExecutor(1) as pool:
            batcher = _batcher(pool, size=4)
            return await asyncio.gather(
                *(batcher.score(track, {"x": [float(i)]}, 1) for i in range(12)),
                return_exceptions=True,
            )

    got = asyncio.run(main())
    failed = [i for i, g in enumerate(got) if isinstance(g, Exception)]
    assert 7 in failed
    assert all(isinstance(got[i], Exception) for i in failed)
    assert len(failed) <= 4  # only the batch that held x=7
    assert [g[1].label for i, g in enumerate(got) if i not in failed] == [
        [int(i > 0)] for i in range(12) if i not in failed
    ]


@pytest.mark.parametrize("rows", [20, 1])
def test_a_request_larger_than_a_batch_goes_alone(rows: int) -> None:
    model = Recorder()
    track = _track(model)

    async def main() -> Any:
        with ThreadPoolExecutor(1) as pool:
            batcher = _batcher(pool, size=8)
            return await batcher.score(track, {"x": [float(i) for i in range(rows)]}, rows)

    frame, out = asyncio.run(main())
    assert model.calls == [rows]
    assert len(out.label) == rows == len(frame)
