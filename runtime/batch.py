"""Batch scoring with bounded memory: read, check, score and write one record batch at a time.

The input (a CSV file, a Parquet file or a folder of Parquet files) is read in record batches
of `chunk_rows` rows, so an input larger than memory is never held whole: a CSV through
`pyarrow.csv.open_csv`, a streaming reader that reads a block only when the scorer asks for
the next one (`pyarrow.dataset` reads a CSV ahead of a slower consumer, so its memory grew with
the file), Parquet through `pyarrow.dataset`. Each batch is cast to the data contract and
checked with the same pandera schema as the `validate` step; `on_failure` decides what a
failing row does (`stop` the run, `quarantine` it into `quarantine.parquet`, or `warn` and
score it). Predictions are appended to a temp Parquet file in the output folder and renamed to
`predictions.parquet` only when every batch was scored; `drift.json` and `summary.json`
follow, the summary last.

Drift and the regression quantiles are computed on a uniform reservoir sample of the scored
rows (`sample_rows`, seeded), not on every row: exact when the input fits in the sample.

`score_file` is the pandas engine, `score_spark` the Spark one (`mapInPandas` runs the same
per-batch code, so both give the same predictions). Neither knows about steps or artifacts:
the `batch_predict` step and `mlc batch` build on them.

A classifier is scored once per batch: labels are derived from `predict_proba` (the most
probable class, or a fairness-mitigated model's seeded draw, taken by each row's position in
the whole input so that labels do not depend on `chunk_rows` or on Spark's partitions).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlc.runtime.context import StepError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

STEP = "batch_predict"
PREDICTIONS = "predictions.parquet"
QUARANTINE = "quarantine.parquet"
SUMMARY = "summary.json"
DRIFT = "drift.json"
SAMPLE_ROWS = 100_000
"""Rows kept in the reservoir sample that drift and regression quantiles are computed on."""
SEED = 0
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
REASON = "quarantine_reason"
_EXAMPLES = 5


# ---------------------------------------------------------------------------------------------
# reading


def _csv_types(columns: Mapping[str, Any]) -> dict[str, Any]:
    """Column types for the CSV reader: contract columns are read as text and cast by
    `cast_to_contract` (as the validate step does), so that a bad value is a contract failure
    of its row and not a reader error, and so that a block whose first values look numeric
    cannot change the column's type mid-file; bools are parsed by Arrow."""
    import pyarrow as pa

    return {
        name: pa.bool_() if col["dtype"] == "bool" else pa.string() for name, col in columns.items()
    }


class CsvInput:
    """A CSV file read block by block on demand; `schema` and `to_batches` as a dataset's."""

    def __init__(
        self,
        path: str,
        columns: Mapping[str, Any],
        step: str = STEP,
        block_size: int | None = None,
    ) -> None:
        self.path = path
        self.columns = dict(columns)
        self.step = step
        self.block_size = block_size
        reader = self._open()
        self.schema = reader.schema
        reader.close()

    def _open(self) -> Any:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        convert = pacsv.ConvertOptions(
            column_types=_csv_types(self.columns), strings_can_be_null=True
        )
        source: Any = self.path
        try:
            if "://" in self.path:
                import pyarrow.fs as pafs

                fs, where = pafs.FileSystem.from_uri(self.path)
                source = fs.open_input_stream(where)  # compression detected from the name
            read = pacsv.ReadOptions(**({"block_size": self.block_size} if self.block_size else {}))
            return pacsv.open_csv(source, read_options=read, convert_options=convert)
        except (OSError, pa.ArrowInvalid) as exc:
            raise StepError(self.step, f"cannot read batch input {self.path}: {exc}") from exc

    def to_batches(self, batch_size: int | None = None) -> Iterator[pa.RecordBatch]:
        """The file's record batches in order (sized by Arrow's blocks; `record_batches`
        re-cuts them to `batch_size`)."""
        import pyarrow as pa

        reader = self._open()
        try:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except pa.ArrowInvalid as exc:
                    raise StepError(
                        self.step,
                        f"cannot read batch input {self.path}: {exc}",
                        "a column outside the data contract changed type mid-file: add it "
                        "to data.contract.columns (contract columns are read as text)",
                    ) from exc
                yield batch
        finally:
            reader.close()


def open_input(path: str, columns: Mapping[str, Any], step: str = STEP) -> Any:
    """A reader over a .csv file (`CsvInput`), or a `pyarrow.dataset.Dataset` over a .parquet
    file or a folder of Parquet; both have `schema` and `to_batches`."""
    import pyarrow.dataset as ds

    local = "://" not in path
    if local and not os.path.exists(path):
        raise StepError(
            step,
            f"batch input not found: {path}",
            "set deployment.batch.input to a .csv, a .parquet or a folder of Parquet files "
            "(relative paths are against the spec's folder)",
        )
    lower = path.lower().rstrip("/")
    try:
        if lower.endswith((".csv", ".csv.gz")):
            return CsvInput(path, columns, step)
        if lower.endswith((".parquet", ".pq")) or (local and os.path.isdir(path)):
            return ds.dataset(path, format="parquet")
    except (OSError, ValueError) as exc:
        raise StepError(step, f"cannot read batch input {path}: {exc}") from exc
    raise StepError(
        step,
        f"batch input {path} is neither .csv, .parquet nor a folder",
        "use a .csv file, a .parquet file or a folder of Parquet files",
    )


def record_batches(dataset: Any, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """The rows of `open_input`'s reader in order, `chunk_rows` per batch (the last may be
    shorter).

    Arrow cuts batches at file and block boundaries; they are re-cut here so that a batch is
    exactly `chunk_rows` rows, holding at most two batches' worth at a time.
    """
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in dataset.to_batches(batch_size=chunk_rows):
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        held += batch.num_rows
        while held >= chunk_rows:
            table = pa.Table.from_batches(pending).combine_chunks()
            yield from table.slice(0, chunk_rows).to_batches(max_chunksize=chunk_rows)
            rest = table.slice(chunk_rows)
            pending = rest.to_batches() if rest.num_rows else []
            held = rest.num_rows
    if held:
        yield from pa.Table.from_batches(pending).combine_chunks().to_batches()


# ---------------------------------------------------------------------------------------------
# checking and scoring one batch


class BatchScorer:
    """Cast, check and score one pandas batch; picklable, so Spark workers run the same code."""

    def __init__(
        self,
        model: Any,
        *,
        contract: Mapping[str, Any],
        features: Sequence[str],
        task: str,
        id_column: str | None,
        on_failure: str,
        model_name: str,
        model_version: str,
        target: str | None = None,
        step: str = STEP,
    ) -> None:
        self.model = model
        self.columns = {name: col for name, col in contract["columns"].items() if name != target}
        self.features = list(features)
        self.task = task
        self.id_column = id_column
        self.id_name = id_column or "row"
        self.on_failure = on_failure
        self.model_name = model_name
        self.model_version = str(model_version)
        self.step = step
        self.classes: list[Any] = (
            list(getattr(model, "classes_", [])) if task == "classification" else []
        )
        if task == "classification" and not self.classes:
            raise StepError(
                step,
                f"model {model_name} v{model_version} has no classes_ (not a fitted classifier)",
                "register a fitted classifier, or set training.task: regression",
            )
        self._schema: Any = None
        self._out_schema: Any = None
        # The mitigated model's draw stream and the input row it stands at: consecutive
        # batches continue it instead of skipping from row 0 again.
        self._stream: Any = None
        self._stream_row = 0

    @property
    def proba_columns(self) -> list[str]:
        from mlc.runtime.steps._data import value_text

        return [f"proba_{value_text(c)}" for c in self.classes]

    @property
    def output_columns(self) -> list[str]:
        return [self.id_name, "prediction", *self.proba_columns, "model_name", "model_version"]

    def check_columns(self, names: Sequence[str]) -> None:
        """The input holds every feature and the id column; else a `StepError` naming them."""
        present = set(names)
        wanted = [*self.features, *([self.id_column] if self.id_column else [])]
        missing = [c for c in wanted if c not in present]
        if missing:
            raise StepError(
                self.step,
                "batch input lacks column(s) " + ", ".join(missing),
                "the input has: " + ", ".join(names),
            )

    def schema(self) -> Any:
        if self._schema is None:
            from mlc.runtime.steps.validate import build_schema

            self._schema = build_schema(self.columns)
        return self._schema

    def _failures(self, raw: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
        from mlc.runtime.steps._data import cast_to_contract
        from mlc.runtime.steps.validate import _coerce_numeric, _pandera_failures

        df = cast_to_contract(raw, self.columns)
        failures = _coerce_numeric(df, self.columns)
        # A value that is not a number fails its dtype once; pandera then also sees the NaN it
        # became (not nullable, wrong dtype): those echoes of the same value are dropped.
        coerced = {(f["column"], f["index"]) for f in failures}
        failures += [
            f
            for f in _pandera_failures(df, self.schema())
            if (f["column"], f["index"]) not in coerced
        ]
        return df, failures

    def check(self, raw: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, Any]], list[int]]:
        """The cast batch, its failures (`column`, `check`, `failure_case`, `index`) and the
        positions of failing rows. `raw` has a 0..n-1 index."""
        df, failures = self._failures(raw)
        bad = sorted({int(f["index"]) for f in failures if f["index"] is not None})
        if bad and any(f["index"] is None for f in failures):
            # A non-number in an int column fails its rows and also the column's dtype (it
            # became float): check the other rows again, so that only a failure no row
            # explains stays table-level.
            keep = raw.drop(index=bad)
            again_df, again = self._failures(keep)
            table = [f for f in again if f["index"] is None]
            more = {int(f["index"]) for f in again if f["index"] is not None}
            failures = [f for f in failures if f["index"] is not None] + table
            failures += [f for f in again if f["index"] is not None]
            bad = sorted(set(bad) | more)
            if self.on_failure == "quarantine":
                df = again_df
        return df, failures, bad

    def score(self, df: pd.DataFrame, ids: Any, first_row: int) -> pd.DataFrame:
        """The output columns for the rows of `df`, whose index is each row's position in its
        batch; the batch starts at row `first_row` of the input."""
        import numpy as np
        import pandas as pd

        x = df[self.features]
        out: dict[str, Any] = {self.id_name: np.asarray(ids)}
        try:
            if self.task == "classification":
                proba = np.asarray(self.model.predict_proba(x), dtype="float64")
                rows = first_row + np.asarray(df.index, dtype="int64")
                out["prediction"] = self._labels(x, proba, rows)
                for i, name in enumerate(self.proba_columns):
                    out[name] = proba[:, i]
            else:
                out["prediction"] = np.asarray(self.model.predict(x), dtype="float64")
        except Exception as exc:  # estimators raise many types on data they cannot take
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StepError(
                self.step,
                f"model {self.model_name} v{self.model_version} could not score rows "
                f"{first_row}..{first_row + len(df) - 1}: {first[:300]}",
                "check the input against the data contract (data.contract), or use "
                "on_failure: quarantine to set failing rows aside",
            ) from None
        out["model_name"] = self.model_name
        out["model_version"] = self.model_version
        return pd.DataFrame(out, index=df.index)

    def _labels(self, x: pd.DataFrame, proba: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The model's `predict` labels, derived from `proba` instead of scoring again."""
        import numpy as np

        model = self.model
        if hasattr(model, "predict_from_proba"):
            return np.asarray(model.predict_from_proba(proba, self._draws(rows)))
        if not _labels_follow_proba(model):
            return np.asarray(model.predict(x))
        labels: np.ndarray = np.asarray(model.classes_)[proba.argmax(axis=1)]
        if proba.shape[1] > 1:
            # predict decides on scores whose probabilities can round to a tie (a sigmoid of
            # a score of 1e-17 is 0.5): those rows are left to predict itself.
            top = np.sort(proba, axis=1)
            tied = np.flatnonzero(top[:, -1] - top[:, -2] <= 1e-9)
            if len(tied):
                labels[tied] = np.asarray(model.predict(x.iloc[tied]))
        return labels

    def _draws(self, rows: np.ndarray) -> np.ndarray:
        """The mitigated model's draws for input rows `rows` (increasing): a row's draw is
        that of its position in the whole input, so labels do not depend on the batching."""
        import numpy as np

        if not len(rows):
            return np.empty(0)
        start, stop = int(rows[0]), int(rows[-1]) + 1
        if self._stream is None or start < self._stream_row:
            self._stream, self._stream_row = self.model.draw_stream(start), start
        while start > self._stream_row:  # rows skipped since the last batch (quarantined)
            step = min(start - self._stream_row, 1 << 20)
            self._stream.random_sample(step)
            self._stream_row += step
        draws: np.ndarray = np.asarray(self._stream.random_sample(stop - start))
        self._stream_row = stop
        picked: np.ndarray = draws[rows - start]
        return picked

    def arrow(self, frame: pd.DataFrame) -> pa.Table:
        """`frame` as an Arrow table with the first batch's schema (so every batch matches)."""
        import pyarrow as pa

        if self._out_schema is None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            self._out_schema = table.schema.remove_metadata()
            return table.replace_schema_metadata(None)
        return pa.Table.from_pandas(frame, schema=self._out_schema, preserve_index=False)


# Classifiers whose predict_proba is fitted apart from predict (Platt scaling by internal
# cross-validation), so the most probable class is not always the predicted one.
_PROBA_APART = frozenset({"SVC", "NuSVC"})


def _labels_follow_proba(model: Any) -> bool:
    """Whether `predict` is the most probable class of `predict_proba` (up to ties)."""
    final = model
    while hasattr(final, "steps"):  # a Pipeline predicts with its last step
        final = final.steps[-1][1]
    return type(final).__name__ not in _PROBA_APART


def _ids(scorer: BatchScorer, raw: pd.DataFrame, df: pd.DataFrame, first_row: int) -> Any:
    import numpy as np

    if scorer.id_column is None:
        return np.arange(first_row, first_row + len(raw), dtype="int64")
    source = df if scorer.id_column in df.columns else raw
    return source[scorer.id_column].to_numpy()


def _reasons(failures: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    by_row: dict[int, set[str]] = defaultdict(set)
    for f in failures:
        if f["index"] is not None:
            by_row[int(f["index"])].add(f"{f['column']}: {f['check']}")
    return {row: "; ".join(sorted(texts)) for row, texts in by_row.items()}


class _Checks:
    """Failures of all batches, by (column, check), with a few examples and row ids each."""

    def __init__(self) -> None:
        self.count: dict[tuple[str, str], int] = defaultdict(int)
        self.examples: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.rows: dict[tuple[str, str], list[Any]] = defaultdict(list)

    def add(self, failures: Sequence[Mapping[str, Any]], ids: Any) -> None:
        for f in failures:
            key = (str(f["column"]), str(f["check"]))
            self.count[key] += 1
            if len(self.examples[key]) < _EXAMPLES:
                self.examples[key].add(str(f["failure_case"]))
            if f["index"] is not None and len(self.rows[key]) < _EXAMPLES:
                self.rows[key].append(_plain(ids[int(f["index"])]))

    def report(self, columns: Mapping[str, Any]) -> list[dict[str, Any]]:
        from mlc.runtime.steps.validate import _describe

        out = []
        for key in sorted(self.count):
            column, check = key
            examples = sorted(self.examples[key])
            message = _describe(column, check, examples, columns)
            # _describe counts the examples it is given; the real count is kept here
            n = self.count[key]
            message = message.rsplit(" (", 1)[0] + f" ({n} row{'' if n == 1 else 's'})"
            out.append(
                {
                    "column": column,
                    "check": check,
                    "count": self.count[key],
                    "examples": examples,
                    "row_ids": self.rows[key],
                    "message": message,
                }
            )
        return out


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


# ---------------------------------------------------------------------------------------------
# the reservoir sample


class Reservoir:
    """A uniform sample of at most `size` rows of everything `add`ed (Algorithm R, seeded)."""

    def __init__(self, size: int = SAMPLE_ROWS, seed: int = SEED) -> None:
        import numpy as np

        self.size = size
        self.seen = 0
        self.rng = np.random.default_rng(seed)
        self.columns: dict[str, np.ndarray] = {}

    def add(self, frame: pd.DataFrame) -> None:
        import numpy as np

        n = len(frame)
        if n == 0:
            return
        arrays = {c: _numpy(frame[c]) for c in frame.columns}
        fill = max(0, min(self.size - self.seen, n))
        if fill:
            for c, a in arrays.items():
                head = a[:fill]
                self.columns[c] = (
                    np.concatenate([self.columns[c], head]) if c in self.columns else head.copy()
                )
        rest = n - fill
        if rest:
            seen = self.seen + fill + np.arange(rest)
            slots = self.rng.integers(0, seen + 1)
            take = slots < self.size
            rows = np.flatnonzero(take) + fill
            chosen = slots[take]
            # Later rows replace earlier ones in the same slot (sequential Algorithm R).
            slot, last = np.unique(chosen[::-1], return_index=True)
            rows = rows[::-1][last]
            for c, a in arrays.items():
                target = self.columns[c]
                if target.dtype != a.dtype:
                    target = target.astype(object)
                target[slot] = a[rows]
                self.columns[c] = target
        self.seen += n

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.columns)

    @property
    def exact(self) -> bool:
        return self.seen <= self.size


def _numpy(series: pd.Series) -> np.ndarray:
    import numpy as np
    import pandas as pd

    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        if isinstance(series.dtype, pd.api.extensions.ExtensionDtype):
            return np.asarray(series.to_numpy(dtype="float64", na_value=float("nan")))
        return np.asarray(series.to_numpy())
    return np.asarray(series.astype(object).where(series.notna(), None).to_numpy(dtype=object))


# ---------------------------------------------------------------------------------------------
# summary, drift, files


def _distribution(
    task: str, counts: Mapping[Any, int], sample: pd.DataFrame, stats: Mapping[str, float]
) -> dict[str, Any]:
    import numpy as np

    from mlc.runtime.steps._data import value_text

    if task == "classification":
        total = sum(counts.values())
        return {
            "counts": {value_text(k): int(v) for k, v in sorted(counts.items(), key=str)},
            "shares": {
                value_text(k): (v / total if total else 0.0)
                for k, v in sorted(counts.items(), key=str)
            },
        }
    values = (
        sample["prediction"].to_numpy(dtype=float)
        if "prediction" in sample
        else np.array([], dtype=float)
    )
    n = stats.get("n", 0.0)
    return {
        "mean": stats["sum"] / n if n else None,
        "min": stats.get("min"),
        "max": stats.get("max"),
        "quantiles": {str(q): float(np.quantile(values, q)) for q in QUANTILES}
        if len(values)
        else {},
    }


def drift_report(
    reference: pd.DataFrame | None,
    sample: pd.DataFrame,
    features: Sequence[str],
    drift: Mapping[str, Any] | None,
    model: Any,
    sampled: Mapping[str, Any],
) -> dict[str, Any]:
    """Drift of the scored sample against the training reference (runtime.drift statistics)."""
    from mlc.runtime.drift import add_derived, feature_drift

    method = str(drift["method"]) if drift else "psi"
    threshold = float(drift["threshold"]) if drift else 0.2
    watched = list(drift["features"]) if drift and drift["features"] else list(features)
    if reference is None or sample.empty:
        rows: list[dict[str, Any]] = []
    else:
        try:
            rows = feature_drift(
                add_derived(reference, model),
                add_derived(sample.drop(columns=["prediction"], errors="ignore"), model),
                watched,
                method,
                threshold,
            )
        except ValueError as exc:
            raise StepError(STEP, f"drift: {exc}", "set monitoring.drift.method") from exc
    return {
        "method": method,
        "threshold": threshold,
        "drift": rows,
        "drifted": [r["feature"] for r in rows if r["drifted"]],
        "missing": [r["feature"] for r in rows if r.get("missing")],
        "rows_reference": 0 if reference is None else len(reference),
        **sampled,
    }


def _write_json(folder: Path, name: str, doc: Any) -> None:
    tmp = folder / f".{name}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, folder / name)


def file_hash(path: Path) -> str:
    """sha256 of a file, or of a folder's data files in name order, read in blocks."""
    digest = hashlib.sha256()
    files = (
        [path]
        if path.is_file()
        else sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
    )
    for f in files:
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def _replace(tmp: Path, final: Path) -> None:
    """Move `tmp` (file or folder) onto `final`, replacing what is there."""
    if final.is_dir() and not final.is_symlink():
        aside = final.with_name(f".{final.name}.{uuid.uuid4().hex}.old")
        os.replace(final, aside)
        os.replace(tmp, final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(tmp, final)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _stop(scorer: BatchScorer, checks: _Checks, rows: int, where: str) -> StepError:
    report = checks.report(scorer.columns)
    named = "; ".join(
        f"{c['message']}, rows {', '.join(map(str, c['row_ids']))}"
        if c["row_ids"]
        else c["message"]
        for c in report
    )
    return StepError(
        scorer.step,
        f"data contract failed on {rows} row(s) of {where} "
        f"(on_failure: stop, nothing written): {named}",
        "fix the input, or set data.contract.on_failure: quarantine to score the other rows",
    )


# ---------------------------------------------------------------------------------------------
# pandas engine


def score_file(
    model: Any,
    input_path: str,
    output_dir: str,
    *,
    contract: Mapping[str, Any],
    features: Sequence[str],
    task: str,
    id_column: str | None,
    chunk_rows: int,
    on_failure: str,
    model_name: str,
    model_version: str,
    reference: pd.DataFrame | None = None,
    drift: Mapping[str, Any] | None = None,
    target: str | None = None,
    sample_rows: int = SAMPLE_ROWS,
    step: str = STEP,
    log: Any = None,
) -> dict[str, Any]:
    """Score `input_path` batch by batch into `output_dir`; return the summary.

    Writes `predictions.parquet`, `quarantine.parquet` (quarantined rows, when there are
    any), `drift.json` and `summary.json` (last). A failure leaves no new predictions file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if chunk_rows < 1:
        raise StepError(step, f"chunk_rows must be at least 1, not {chunk_rows}")
    started = time.monotonic()
    scorer = BatchScorer(
        model,
        contract=contract,
        features=features,
        task=task,
        id_column=id_column,
        on_failure=on_failure,
        model_name=model_name,
        model_version=model_version,
        target=target,
        step=step,
    )
    dataset = open_input(input_path, scorer.columns, step)
    scorer.check_columns(dataset.schema.names)
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    tmp_pred = folder / f".{PREDICTIONS}.{token}.tmp"
    tmp_quar = folder / f".{QUARANTINE}.{token}.tmp"
    writer: Any = None
    qwriter: Any = None
    checks = _Checks()
    reservoir = Reservoir(sample_rows)
    counts: dict[Any, int] = defaultdict(int)
    stats = {"n": 0.0, "sum": 0.0}
    rows_in = scored = quarantined = failing = batches = 0
    try:
        for batch in record_batches(dataset, chunk_rows):
            batches += 1
            raw = batch.to_pandas()
            df, failures, bad = scorer.check(raw)
            ids = _ids(scorer, raw, df, rows_in)
            checks.add(failures, ids)
            failing += len(bad)
            table_level = [f for f in failures if f["index"] is None]
            if failures and on_failure == "stop":
                raise _stop(
                    scorer,
                    checks,
                    len(bad),
                    f"the batch of rows {rows_in}..{rows_in + len(raw) - 1}",
                )
            if table_level and on_failure == "quarantine":
                raise StepError(
                    step,
                    "data contract failures that no row can be quarantined for: "
                    + ", ".join(sorted({f"{f['column']}: {f['check']}" for f in table_level})),
                    "fix the input or the contract (data.contract.columns)",
                )
            if failures and on_failure == "warn" and log is not None:
                log(
                    "step '%s': %d row(s) of batch %d fail the data contract (on_failure: warn)",
                    step,
                    len(bad),
                    batches,
                )
            if bad and on_failure == "quarantine":
                reasons = _reasons(failures)
                qtable = pa.Table.from_batches([batch]).take(pa.array(bad, type=pa.int64()))
                if scorer.id_column is None:
                    qtable = qtable.add_column(
                        0, scorer.id_name, pa.array(ids[bad], type=pa.int64())
                    )
                qtable = qtable.append_column(REASON, pa.array([reasons[i] for i in bad]))
                if qwriter is None:
                    qwriter = pq.ParquetWriter(str(tmp_quar), qtable.schema)
                qwriter.write_table(qtable.cast(qwriter.schema))
                quarantined += len(bad)
                skip = set(bad)
                keep = [i for i in range(len(raw)) if i not in skip]
                df = df.loc[keep]
                ids = ids[keep]
            if len(df):
                out = scorer.score(df, ids, rows_in)
                table = scorer.arrow(out)
                if writer is None:
                    writer = pq.ParquetWriter(str(tmp_pred), table.schema)
                writer.write_table(table)
                scored += len(out)
                _tally(task, out["prediction"], counts, stats)
                sample = df[[c for c in _sample_columns(scorer, drift) if c in df.columns]]
                reservoir.add(
                    sample.assign(prediction=out["prediction"].to_numpy()).reset_index(drop=True)
                )
            rows_in += len(raw)
        if writer is None:
            if rows_in and on_failure == "quarantine":
                raise StepError(
                    step,
                    f"every row of {input_path} failed the data contract: "
                    + "; ".join(c["message"] for c in checks.report(scorer.columns)),
                    "fix the input or the contract (data.contract.columns)",
                )
            writer = pq.ParquetWriter(str(tmp_pred), _empty_schema(scorer))
        writer.close()
        writer = None
        if qwriter is not None:
            qwriter.close()
            qwriter = None
    except BaseException:
        for w in (writer, qwriter):
            if w is not None:
                with contextlib.suppress(Exception):
                    w.close()
        _remove(tmp_pred)
        _remove(tmp_quar)
        raise
    content_hash = file_hash(tmp_pred)
    os.replace(tmp_pred, folder / PREDICTIONS)
    if quarantined:
        os.replace(tmp_quar, folder / QUARANTINE)
    else:
        _remove(folder / QUARANTINE)  # a stale one from an earlier run would mislead
    return _finish(
        scorer,
        folder,
        engine="pandas",
        input_path=input_path,
        started=started,
        rows_in=rows_in,
        scored=scored,
        quarantined=quarantined,
        failing=failing,
        batches=batches,
        chunk_rows=chunk_rows,
        checks=checks,
        counts=counts,
        stats=stats,
        reservoir=reservoir,
        reference=reference,
        drift=drift,
        content_hash=content_hash,
    )


def _sample_columns(scorer: BatchScorer, drift: Mapping[str, Any] | None) -> list[str]:
    watched = list(drift["features"]) if drift and drift["features"] else []
    return list(dict.fromkeys([*scorer.features, *watched]))


def _tally(
    task: str, prediction: pd.Series, counts: dict[Any, int], stats: dict[str, float]
) -> None:
    if task == "classification":
        for value, n in prediction.value_counts().items():
            counts[_plain(value)] += int(n)
        return
    values = prediction.to_numpy(dtype=float)
    if not len(values):
        return
    stats["n"] += len(values)
    stats["sum"] += float(values.sum())
    stats["min"] = min(stats.get("min", float("inf")), float(values.min()))
    stats["max"] = max(stats.get("max", float("-inf")), float(values.max()))


def _empty_schema(scorer: BatchScorer) -> Any:
    import pyarrow as pa

    if scorer._out_schema is not None:
        return scorer._out_schema
    fields = [pa.field(scorer.id_name, pa.int64() if scorer.id_column is None else pa.string())]
    fields.append(
        pa.field(
            "prediction", pa.float64() if scorer.task != "classification" else _label_type(scorer)
        )
    )
    fields += [pa.field(name, pa.float64()) for name in scorer.proba_columns]
    fields += [pa.field("model_name", pa.string()), pa.field("model_version", pa.string())]
    return pa.schema(fields)


def _label_type(scorer: BatchScorer) -> Any:
    import numpy as np
    import pyarrow as pa

    return pa.from_numpy_dtype(np.asarray(scorer.classes).dtype) if scorer.classes else pa.string()


def _finish(
    scorer: BatchScorer,
    folder: Path,
    *,
    engine: str,
    input_path: str,
    started: float,
    rows_in: int,
    scored: int,
    quarantined: int,
    failing: int,
    batches: int | None,
    chunk_rows: int,
    checks: _Checks,
    counts: Mapping[Any, int],
    stats: Mapping[str, float],
    reservoir: Reservoir,
    reference: pd.DataFrame | None,
    drift: Mapping[str, Any] | None,
    content_hash: str,
) -> dict[str, Any]:
    sample = reservoir.frame()
    how = (
        "all scored rows"
        if reservoir.exact
        else f"uniform reservoir sample of {reservoir.size} of {reservoir.seen} rows (seed {SEED})"
    )
    sampled = {"sample_rows": len(sample), "rows_scored": reservoir.seen, "sample": how}
    drift_doc = drift_report(reference, sample, scorer.features, drift, scorer.model, sampled)
    _write_json(folder, DRIFT, drift_doc)
    seconds = time.monotonic() - started
    summary = {
        "engine": engine,
        "input": input_path,
        "model_name": scorer.model_name,
        "model_version": scorer.model_version,
        "task": scorer.task,
        "on_failure": scorer.on_failure,
        "rows_in": rows_in,
        "rows_scored": scored,
        "rows_quarantined": quarantined,
        "rows_failing_contract": failing,
        "batches": batches,
        "chunk_rows": chunk_rows,
        "seconds": round(seconds, 4),
        "rows_per_second": round(rows_in / seconds, 1) if seconds > 0 else None,
        "checks": checks.report(scorer.columns),
        "prediction_distribution": {
            **_distribution(scorer.task, counts, sample, stats),
            "quantiles_from": how,
        },
        "drifted": drift_doc["drifted"],
        "drift_sample": how,
        "files": {
            "predictions": PREDICTIONS,
            "quarantine": QUARANTINE if quarantined else None,
            "drift": DRIFT,
        },
        "hash": content_hash,
    }
    _write_json(folder, SUMMARY, summary)
    return summary


# ---------------------------------------------------------------------------------------------
# Spark engine


def _spark(settings: Mapping[str, Any] | None, step: str) -> Any:
    # session() also points mapInPandas's Python workers at this interpreter
    from mlc.runtime.spark.session import session

    return session(settings, step)


def _spark_type(arrow_type: Any) -> Any:
    import pyarrow as pa
    from pyspark.sql import types as T

    if pa.types.is_boolean(arrow_type):
        return T.BooleanType()
    if pa.types.is_integer(arrow_type):
        return T.LongType()
    if pa.types.is_floating(arrow_type):
        return T.DoubleType()
    return T.StringType()


def _id_type(scorer: BatchScorer, schema: Any) -> Any:
    """The Spark type of the row id: what the pandas engine writes for it (the contract's
    cast type for a contract column, else the type as read)."""
    from pyspark.sql import types as T

    if scorer.id_column is None:
        return T.LongType()
    col = scorer.columns.get(scorer.id_column)
    if col is None:
        return schema[scorer.id_column].dataType
    dtype = col["dtype"]
    if dtype == "int":
        return T.DoubleType() if col["nullable"] else T.LongType()
    return {
        "float": T.DoubleType(),
        "bool": T.BooleanType(),
        "datetime": T.TimestampType(),
    }.get(dtype, T.StringType())


def _read_spark(spark: Any, path: str, columns: Mapping[str, Any], step: str) -> Any:
    from pyspark.sql import types as T

    lower = path.lower().rstrip("/")
    try:
        if lower.endswith((".csv", ".csv.gz")):
            header = open_input(path, columns, step).schema.names
            # The pandas engine's reading: contract columns as text (cast per batch), bools
            # parsed; other columns are text here too.
            fields = [
                T.StructField(
                    n,
                    T.BooleanType()
                    if n in columns and columns[n]["dtype"] == "bool"
                    else T.StringType(),
                )
                for n in header
            ]
            return spark.read.csv(path, header=True, schema=T.StructType(fields))
        open_input(path, columns, step)
        return spark.read.parquet(path)
    except StepError:
        raise
    except Exception as exc:  # pyspark raises AnalysisException and py4j errors alike
        raise StepError(
            step, f"spark could not read batch input {path}: {str(exc).splitlines()[0]}"
        ) from exc


def _spark_batches(
    scorer_bytes: bytes,
    offsets: Mapping[int, int],
    raw_names: Sequence[str],
    secrets: Mapping[str, str],
) -> Any:
    """The `mapInPandas` function: every pandas batch of a partition through `BatchScorer`.

    Row numbers continue from `offsets[partition]` (the rows of the partitions before it).
    Keys of keyed transforms are never pickled, so a worker binds them again from `secrets`.
    """

    def run(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import io

        import joblib
        import pandas as pd
        from pyspark import TaskContext

        from mlc.runtime.context import StepContext
        from mlc.runtime.steps._data import bind_secrets

        scorer: BatchScorer = joblib.load(io.BytesIO(scorer_bytes))
        bind_secrets(scorer.model, StepContext(secrets=dict(secrets)))
        context = TaskContext.get()
        row = offsets.get(context.partitionId() if context else 0, 0)
        for raw in frames:
            raw = raw.reset_index(drop=True)
            n = len(raw)
            df, failures, bad = scorer.check(raw)
            ids = _ids(scorer, raw, df, row)
            reasons = _reasons(failures)
            table = sorted({f"{f['column']}: {f['check']}" for f in failures if f["index"] is None})
            failing = set(range(n)) if table else set(bad)
            if scorer.on_failure == "warn":
                keep = list(range(n))
            elif table:
                keep = []
            else:
                keep = [i for i in range(n) if i not in failing]
            out = raw[list(raw_names)].copy()
            out["__mlc_id"] = ids
            scored = scorer.score(df.loc[keep], ids[keep], row) if keep else None
            for name in scorer.output_columns[1:]:
                values: list[Any] = [None] * n
                if scored is not None:
                    for i, v in zip(keep, scored[name].tolist(), strict=True):
                        values[i] = v
                out[f"__mlc_{name}"] = pd.Series(values, dtype=object)
            out[REASON] = [
                "; ".join([*table, *([reasons[i]] if i in reasons else [])]) or None
                for i in range(n)
            ]
            out["__mlc_failing"] = [i in failing for i in range(n)]
            out["__mlc_table"] = bool(table)
            out["__mlc_scored"] = [False] * n
            out.loc[keep, "__mlc_scored"] = True
            row += n
            yield out

    return run


def score_spark(
    model: Any,
    input_path: str,
    output_dir: str,
    *,
    contract: Mapping[str, Any],
    features: Sequence[str],
    task: str,
    id_column: str | None,
    chunk_rows: int,
    on_failure: str,
    model_name: str,
    model_version: str,
    reference: pd.DataFrame | None = None,
    drift: Mapping[str, Any] | None = None,
    target: str | None = None,
    sample_rows: int = SAMPLE_ROWS,
    step: str = STEP,
    log: Any = None,
    secrets: Mapping[str, str] | None = None,
    spark_settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`score_file` on Spark: read with Spark, score with `mapInPandas`, write with Spark.

    `spark_settings` is `data.spark` (`{"master", "conf"}`); `MLC_SPARK_MASTER` overrides it.

    The predictions are a Parquet folder `predictions.parquet` (Spark's part files), written to
    a temp folder and renamed; quarantined rows likewise to `quarantine.parquet`.
    """
    started = time.monotonic()
    scorer = BatchScorer(
        model,
        contract=contract,
        features=features,
        task=task,
        id_column=id_column,
        on_failure=on_failure,
        model_name=model_name,
        model_version=model_version,
        target=target,
        step=step,
    )
    spark = _spark(spark_settings, step)
    previous = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch", None)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(chunk_rows))
    try:
        return _score_spark(
            spark,
            scorer,
            input_path,
            output_dir,
            started=started,
            chunk_rows=chunk_rows,
            sample_rows=sample_rows,
            reference=reference,
            drift=drift,
            log=log,
            secrets=secrets or {},
        )
    finally:
        if previous is None:
            spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
        else:
            spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", previous)


def _score_spark(
    spark: Any,
    scorer: BatchScorer,
    input_path: str,
    output_dir: str,
    *,
    started: float,
    chunk_rows: int,
    sample_rows: int,
    reference: pd.DataFrame | None,
    drift: Mapping[str, Any] | None,
    log: Any,
    secrets: Mapping[str, str],
) -> dict[str, Any]:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from mlc.runtime import artifacts

    step, task, id_column, on_failure = (
        scorer.step,
        scorer.task,
        scorer.id_column,
        scorer.on_failure,
    )
    sdf = _read_spark(spark, input_path, scorer.columns, step)
    raw_names = list(sdf.columns)
    scorer.check_columns(raw_names)
    counted = sdf.groupBy(F.spark_partition_id().alias("p")).count().collect()
    per_part = {int(r["p"]): int(r["count"]) for r in counted}
    offsets, total = {}, 0
    for part in sorted(per_part):
        offsets[part] = total
        total += per_part[part]

    id_field = T.StructField("__mlc_id", _id_type(scorer, sdf.schema))
    if task == "classification":
        pred_type = _spark_type(_label_type(scorer))
        extra = [T.StructField(f"__mlc_{n}", T.DoubleType()) for n in scorer.proba_columns]
    else:
        pred_type, extra = T.DoubleType(), []
    out_schema = T.StructType(
        [
            *sdf.schema.fields,
            id_field,
            T.StructField("__mlc_prediction", pred_type),
            *extra,
            T.StructField("__mlc_model_name", T.StringType()),
            T.StructField("__mlc_model_version", T.StringType()),
            T.StructField(REASON, T.StringType()),
            T.StructField("__mlc_failing", T.BooleanType()),
            T.StructField("__mlc_table", T.BooleanType()),
            T.StructField("__mlc_scored", T.BooleanType()),
        ]
    )
    fn = _spark_batches(artifacts.dump_object(scorer), offsets, raw_names, secrets)
    result = sdf.mapInPandas(fn, schema=out_schema).persist()
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    tmp_pred = folder / f".{PREDICTIONS}.{token}.tmp"
    tmp_quar = folder / f".{QUARANTINE}.{token}.tmp"
    failing_col, scored_col = F.col("__mlc_failing"), F.col("__mlc_scored")
    try:
        try:
            agg = result.agg(
                F.count(F.lit(1)).alias("rows"),
                F.sum(failing_col.cast("long")).alias("failing"),
                F.sum(scored_col.cast("long")).alias("scored"),
                F.max(F.col("__mlc_table").cast("long")).alias("table"),
            ).collect()[0]
        except Exception as exc:  # a StepError raised in a worker arrives as a py4j error
            text = str(exc)
            marker = f"step '{step}':"
            if marker in text:
                message = text[text.index(marker) + len(marker) :].strip().splitlines()[0]
                raise StepError(step, message) from None
            raise
        rows_in = int(agg["rows"] or 0)
        failing = int(agg["failing"] or 0)
        scored = int(agg["scored"] or 0)
        checks = _spark_checks(result, scorer)
        if failing and on_failure == "stop":
            raise _stop(scorer, checks, failing, input_path)
        if on_failure == "quarantine" and (agg["table"] or (rows_in and not scored)):
            raise StepError(
                step,
                f"data contract failures in {input_path} that no row can be quarantined for, "
                "or every row failed: "
                + "; ".join(c["message"] for c in checks.report(scorer.columns)),
                "fix the input or the contract (data.contract.columns)",
            )
        if failing and on_failure == "warn" and log is not None:
            log("step '%s': %d row(s) fail the data contract (on_failure: warn)", step, failing)
        kept = result.filter(scored_col)
        names = scorer.output_columns
        kept.select(
            F.col("__mlc_id").alias(scorer.id_name),
            *[F.col(f"__mlc_{n}").alias(n) for n in names[1:]],
        ).write.mode("overwrite").parquet(str(tmp_pred))
        quarantined = 0
        if failing and on_failure == "quarantine":
            bad = result.filter(failing_col)
            quarantined = failing
            cols = [F.col(c) for c in raw_names]
            if id_column is None:
                cols.insert(0, F.col("__mlc_id").alias(scorer.id_name))
            bad.select(*cols, F.col(REASON)).write.mode("overwrite").parquet(str(tmp_quar))
        counts: dict[Any, int] = {}
        stats: dict[str, float] = {"n": 0.0, "sum": 0.0}
        pred = F.col("__mlc_prediction")
        if task == "classification":
            for r in kept.groupBy(pred.alias("p")).count().collect():
                counts[_plain(r["p"])] = int(r["count"])
        else:
            s = kept.agg(
                F.count(pred).alias("n"),
                F.sum(pred).alias("s"),
                F.min(pred).alias("lo"),
                F.max(pred).alias("hi"),
            ).collect()[0]
            if s["n"]:
                stats = {
                    "n": float(s["n"]),
                    "sum": float(s["s"]),
                    "min": float(s["lo"]),
                    "max": float(s["hi"]),
                }
        wanted = [c for c in _sample_columns(scorer, drift) if c in raw_names]
        picked = kept
        if scored > sample_rows:
            # Spark's Bernoulli sample, a little over the size and cut: uniform, not exact.
            fraction = min(1.0, 1.2 * sample_rows / scored)
            picked = kept.sample(False, fraction, seed=SEED).limit(sample_rows)
        sample_raw = picked.select(*wanted, "__mlc_prediction").toPandas()
        from mlc.runtime.steps._data import cast_to_contract

        sample = cast_to_contract(sample_raw.drop(columns=["__mlc_prediction"]), scorer.columns)
        reservoir = Reservoir(sample_rows)
        reservoir.add(sample.assign(prediction=sample_raw["__mlc_prediction"].to_numpy()))
        reservoir.seen = scored
    except BaseException:
        _remove(tmp_pred)
        _remove(tmp_quar)
        raise
    finally:
        result.unpersist()
    content_hash = file_hash(tmp_pred)
    _replace(tmp_pred, folder / PREDICTIONS)
    if quarantined:
        _replace(tmp_quar, folder / QUARANTINE)
    else:
        _remove(folder / QUARANTINE)
    return _finish(
        scorer,
        folder,
        engine="spark",
        input_path=input_path,
        started=started,
        rows_in=rows_in,
        scored=scored,
        quarantined=quarantined,
        failing=failing,
        batches=None,
        chunk_rows=chunk_rows,
        checks=checks,
        counts=counts,
        stats=stats,
        reservoir=reservoir,
        reference=reference,
        drift=drift,
        content_hash=content_hash,
    )


def _spark_checks(result: Any, scorer: BatchScorer) -> _Checks:
    """Failure counts by check from the reasons column (examples are not carried back)."""
    from pyspark.sql import functions as F

    checks = _Checks()
    failing = result.filter(F.col(REASON).isNotNull())
    exploded = failing.select(
        F.col("__mlc_id").alias("id"), F.explode(F.split(F.col(REASON), "; ")).alias("r")
    )
    for r in (
        exploded.groupBy("r")
        .agg(F.count(F.lit(1)).alias("n"), F.slice(F.collect_list("id"), 1, _EXAMPLES).alias("ids"))
        .collect()
    ):
        column, _, check = str(r["r"]).partition(": ")
        key = (column, check)
        checks.count[key] = int(r["n"])
        checks.rows[key] = [_plain(i) for i in r["ids"]]
    return checks
