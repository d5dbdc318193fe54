"""Adaptive micro-batching: requests to one track scored in one model call, each keeping its rows.

Opt-in (`deployment.serving.max_batch_size` > 1). While no batch of a track is being scored, a
request is scored at once — an idle server adds no latency. While one is, arriving requests
wait for it, at most `max_latency_ms` or until `max_batch_size` rows are waiting, then go
together. A batch is the requests' checked columns concatenated: each request's rows are sliced
back out of the outputs by offset, so nothing of one request (its id, its parameters, its
sampling, its log rows) reaches another. A request with more rows than `max_batch_size` is
scored alone. A failing model call fails every request of that batch with the same error, as it
would have failed each of them alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from mlc.runtime.serving.models import Outputs, Track


@dataclass
class _Pending:
    data: dict[str, list[Any]]
    rows: int
    future: asyncio.Future[tuple[pd.DataFrame, Outputs]]
    queued: float


@dataclass
class _Lane:
    """The waiting requests of one track and whether a batch of it is being scored."""

    pending: list[_Pending] = field(default_factory=list)
    busy: bool = False
    timer: asyncio.TimerHandle | None = None


def slice_outputs(out: Outputs, start: int, stop: int) -> Outputs:
    """The outputs of rows `start:stop` of a batch."""
    from mlc.runtime.serving.models import Outputs

    return Outputs(
        label=None if out.label is None else out.label[start:stop],
        proba=None if out.proba is None else out.proba[start:stop],
        prediction=None if out.prediction is None else out.prediction[start:stop],
    )


class Batcher:
    """Batches per track; `score` is awaited by each request (see the module docstring)."""

    def __init__(
        self,
        pool: Executor,
        build: Callable[[dict[str, list[Any]]], pd.DataFrame],
        max_batch_size: int,
        max_latency_ms: float,
        on_queued: Callable[[Track, float], None] | None = None,
    ) -> None:
        self.pool = pool
        self.build = build
        self.max_rows = max_batch_size
        self.max_wait = max_latency_ms / 1000.0
        self.on_queued = on_queued
        self._lanes: dict[int, _Lane] = {}
        self.batches = 0
        self.batched_requests = 0

    async def score(self, track: Track, data: dict[str, list[Any]], rows: int) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[pd.DataFrame, Outputs]] = loop.create_future()
        lane = self._lanes.setdefault(id(track), _Lane())
        lane.pending.append(_Pending(data, rows, future, time.perf_counter()))
        waiting = sum(p.rows for p in lane.pending)
        if not lane.busy or waiting >= self.max_rows:
            self._flush(track, lane)
        elif lane.timer is None:
            lane.timer = loop.call_later(self.max_wait, self._flush, track, lane)
        return await future

    def _take(self, lane: _Lane) -> list[_Pending]:
        """The oldest waiting requests that fit in one batch (at least one)."""
        taken: list[_Pending] = []
        total = 0
        while lane.pending and (not taken or total + lane.pending[0].rows <= self.max_rows):
            item = lane.pending.pop(0)
            taken.append(item)
            total += item.rows
        return taken

    def _flush(self, track: Track, lane: _Lane) -> None:
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        if not lane.pending:
            return
        batch = self._take(lane)
        lane.busy = True
        self.batches += 1
        self.batched_requests += len(batch)
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self.pool, self._run, track, batch)
        job.add_done_callback(lambda done: self._done(track, lane, batch, done))

    def _run(self, track: Track, batch: list[_Pending]) -> tuple[pd.DataFrame, Outputs]:
        started = time.perf_counter()
        if self.on_queued is not None:
            for item in batch:
                self.on_queued(track, started - item.queued)
        if len(batch) == 1:
            frame = self.build(batch[0].data)
        else:
            names = list(batch[0].data)
            merged = {n: [v for item in batch for v in item.data[n]] for n in names}
            frame = self.build(merged)
        return frame, track.score(frame)

    def _done(
        self, track: Track, lane: _Lane, batch: list[_Pending], done: asyncio.Future[Any]
    ) -> None:
        lane.busy = False
        error = done.exception()
        if error is None:
            frame, out = done.result()
            offset = 0
            for item in batch:
                stop = offset + item.rows
                if not item.future.done():
                    part = frame.iloc[offset:stop].reset_index(drop=True)
                    item.future.set_result((part, slice_outputs(out, offset, stop)))
                offset = stop
        else:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
        if lane.pending:
            self._flush(track, lane)
