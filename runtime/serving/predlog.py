"""The prediction log: sampled rows appended off the request path into Parquet segments.

Requests put their rows on a queue; one writer thread appends them to the open segment
`.seg-<seq>.parquet.tmp` and closes it after `segment_rows` rows or `segment_seconds` seconds:
the file is flushed, fsynced and renamed to `seg-<start>-<seq>.parquet`. Only those names are
data, so a segment torn by a crash (no Parquet footer, still `.tmp`) is never read.
`read_log` reads the closed segments.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

SEGMENT = re.compile(r"^seg-(\d{8}T\d{6}Z)-(\d{6})\.parquet$")
BASE_COLUMNS = ("request_id", "row", "time", "track", "model_version", "shadow", "latency_ms")
"""`row` is the row's index within its request: (request_id, row) names one scored row."""
_STOP = object()
BATCH_ROWS = 4096
"""Most rows the writer takes off the queue for one table (one row group)."""


WORKER_SEQS = 100_000
"""Segment numbers per server worker: worker `i` numbers its segments from `i * WORKER_SEQS`,
so the workers of one `mlc serve --workers N` share a folder without a name in common."""


def _seq_after(folder: Path, worker: int = 0) -> int:
    """The next segment number of `worker`: segments of earlier runs in the folder are kept."""
    seqs = [int(m.group(2)) for p in folder.iterdir() if (m := SEGMENT.match(p.name))]
    tmps = [
        int(p.name[5:11])
        for p in folder.iterdir()
        if re.match(r"^\.seg-\d{6}\.parquet\.tmp$", p.name)
    ]
    low, high = worker * WORKER_SEQS, (worker + 1) * WORKER_SEQS
    mine = [n for n in (*seqs, *tmps) if low <= n < high]
    return max(mine, default=low - 1) + 1


class PredictionLog:
    """Queue and writer thread for one log folder."""

    def __init__(
        self,
        path: str | Path,
        *,
        segment_rows: int,
        segment_seconds: float,
        on_error: Any = None,
        worker: int = 0,
    ) -> None:
        self.remote: str | None = None
        if "://" in str(path) and not str(path).startswith("file://"):
            # a bucket: segments are written here, then uploaded whole once closed (an object
            # appears only complete, so a kill never leaves a torn one in the bucket)
            self.remote = str(path).rstrip("/")
            self.folder = Path(tempfile.mkdtemp(prefix="mlc-predlog-"))
        else:
            self.folder = Path(str(path).removeprefix("file://"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.segment_rows = max(1, int(segment_rows))
        self.segment_seconds = float(segment_seconds)
        self._queue: queue.Queue[Any] = queue.Queue()
        self._seq = _seq_after(self.folder, worker)
        if self.remote is not None:
            self._seq = max(self._seq, _remote_seq_after(self.remote, worker))
        self._unsent: list[Path] = []
        self._writer: Any = None
        self._schema: pa.Schema | None = None
        self._tmp: Path | None = None
        self._start = 0.0
        self._rows = 0
        self._on_error = on_error
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="mlc-predlog", daemon=True)
        self._thread.start()

    def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Queue rows for writing; never blocks on the disk."""
        if rows:
            self._queue.put(rows)

    def append_later(self, make_rows: Callable[[], Sequence[Mapping[str, Any]]]) -> None:
        """Queue a function giving the rows: they are built on the writer thread, off the
        request path."""
        self._queue.put(make_rows)

    def close(self) -> None:
        """Write everything queued, close the open segment and stop the writer."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while True:
            timeout = None
            if self._writer is not None and self.segment_seconds > 0:
                timeout = max(0.0, self._start + self.segment_seconds - time.time())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                self._guarded(self._close_segment)
                continue
            batch, stop = self._drain(item)
            if batch:
                self._guarded(lambda rows=batch: self._write(rows))
            if stop:
                self._guarded(self._close_segment)
                return

    def _drain(self, item: Any) -> tuple[list[Mapping[str, Any]], bool]:
        """The rows of `item` and of what else is queued now (up to `BATCH_ROWS`): one table
        per batch, not one per request; and whether the stop came."""
        batch: list[Mapping[str, Any]] = []
        while True:
            if item is _STOP:
                return batch, True
            try:
                batch.extend(item() if callable(item) else item)
            except Exception as exc:  # a row that cannot be built is reported, not fatal
                if self._on_error is not None:
                    self._on_error(exc)
            if len(batch) >= BATCH_ROWS:
                return batch, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False

    def _guarded(self, fn: Any) -> None:
        # A full disk must not stop serving: the writer reports and goes on.
        try:
            fn()
        except Exception as exc:  # pyarrow and the OS raise many types
            if self._on_error is not None:
                self._on_error(exc)
            self._abandon()

    def _abandon(self) -> None:
        with contextlib.suppress(Exception):
            if self._writer is not None:
                self._writer.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
        self._writer, self._schema, self._tmp, self._rows = None, None, None, 0

    def _table(self, rows: list[Mapping[str, Any]]) -> pa.Table:
        import pyarrow as pa

        names = list(rows[0])
        return pa.table({n: [r.get(n) for r in rows] for n in names})

    def _write(self, rows: list[Mapping[str, Any]]) -> None:
        import pyarrow as pa

        while rows:
            room = self.segment_rows - self._rows
            head, rows = rows[:room], rows[room:]
            table = self._table(head)
            if self._writer is not None and self._schema is not None:
                try:
                    table = table.cast(self._schema)
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                    # A column changed type (e.g. nulls first seen): a new segment, a new schema.
                    self._close_segment()
            if self._writer is None:
                self._open(table.schema)
            self._writer.write_table(table)
            self._rows += len(head)
            if self._rows >= self.segment_rows:
                self._close_segment()

    def _open(self, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        self._tmp = self.folder / f".seg-{self._seq:06d}.parquet.tmp"
        self._schema = schema
        self._writer = pq.ParquetWriter(str(self._tmp), schema)
        self._start = time.time()
        self._rows = 0

    def _close_segment(self) -> None:
        if self._writer is None or self._tmp is None:
            return
        self._writer.close()
        with open(self._tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._start))
        final = self.folder / f"seg-{stamp}-{self._seq:06d}.parquet"
        os.replace(self._tmp, final)
        if self.remote is not None:
            self._unsent.append(final)
            self._upload()
        self.written += self._rows
        self._seq += 1
        self._writer, self._schema, self._tmp, self._rows = None, None, None, 0

    def _upload(self) -> None:
        """Send the closed segments not sent yet; one that fails stays for the next close."""
        import fsspec

        fs, root = fsspec.core.url_to_fs(self.remote)
        fs.makedirs(root, exist_ok=True)
        while self._unsent:
            local = self._unsent[0]
            fs.put_file(str(local), f"{root}/{local.name}")
            local.unlink()
            self._unsent.pop(0)


def _remote_seq_after(uri: str, worker: int) -> int:
    import fsspec

    fs, root = fsspec.core.url_to_fs(uri)
    try:
        names = [Path(p).name for p in fs.ls(root, detail=False)]
    except FileNotFoundError:
        names = []
    low, high = worker * WORKER_SEQS, (worker + 1) * WORKER_SEQS
    mine = [int(m.group(2)) for n in names if (m := SEGMENT.match(n))]
    return max([n for n in mine if low <= n < high], default=low - 1) + 1


def local_copy(path: str | Path, dest: str | Path | None = None) -> Path:
    """The log as a local folder: `path` itself, or for a bucket URI its closed segments
    downloaded into `dest` (a new temporary folder by default)."""
    text = str(path)
    if "://" not in text or text.startswith("file://"):
        return Path(text.removeprefix("file://"))
    import fsspec

    fs, root = fsspec.core.url_to_fs(text)
    folder = Path(dest) if dest is not None else Path(tempfile.mkdtemp(prefix="mlc-predlog-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        listed = fs.ls(root, detail=False)
    except FileNotFoundError:
        listed = []
    for remote in listed:
        name = Path(remote).name
        if SEGMENT.match(name) and not (folder / name).exists():
            part = folder / f".{name}.download"
            fs.get_file(remote, str(part))
            os.replace(part, folder / name)
    return folder


def segments(path: str | Path) -> list[Path]:
    """The closed segments in the folder, in the order they were closed (by time, then
    number: the workers of one server number theirs apart)."""
    folder = Path(path)
    if not folder.is_dir():
        return []
    found = [
        (m.group(1), int(m.group(2)), p) for p in folder.iterdir() if (m := SEGMENT.match(p.name))
    ]
    return [p for _, _, p in sorted(found)]


def read_log(path: str | Path) -> pd.DataFrame:
    """Every row of the closed segments (open or torn `.tmp` segments are not data)."""
    import pandas as pd
    import pyarrow.parquet as pq

    frames = [pq.read_table(p).to_pandas() for p in segments(local_copy(path))]
    if not frames:
        return pd.DataFrame(columns=list(BASE_COLUMNS))
    return pd.concat(frames, ignore_index=True)
