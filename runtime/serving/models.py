"""Loading the tracks' models once at start-up, and the one scoring path every protocol uses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlc.runtime.context import StepContext, StepError
from mlc.runtime.serving.plan import STEP

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlc.runtime.serving.plan import ServingPlan, TrackPlan


@dataclass
class Outputs:
    """Predictions for a batch of rows: labels and probabilities, or regression values."""

    label: list[Any] | None = None
    proba: np.ndarray | None = None
    prediction: list[float] | None = None

    def values(self) -> list[Any]:
        """One answer per row: the label (classification) or the prediction."""
        return list(self.label if self.label is not None else self.prediction or [])


@dataclass
class Track:
    """A loaded model answering under a track name."""

    name: str
    version: str
    chosen_by: str
    task: str
    features: list[str]
    classes: list[Any] = field(default_factory=list)
    score_fn: Callable[[pd.DataFrame], Outputs] | None = None
    # One row's typed values → Outputs (None: a near-tie the batch path decides).
    row_fn: Callable[[Mapping[str, Any]], Outputs | None] | None = None
    row_path: str = "none"
    """Why one-row requests take the batch path, or 'compiled'."""
    row_inline: bool = False
    """Every step of the row path is replayed (tens of microseconds): scored on the event loop."""

    def score(self, frame: pd.DataFrame) -> Outputs:
        assert self.score_fn is not None
        return self.score_fn(frame[self.features])


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


_PROBA_APART = frozenset({"SVC", "NuSVC"})
"""sklearn classifiers whose `predict` does not follow their (Platt-scaled) probabilities."""


def _labels_follow_proba(model: Any) -> bool:
    """Whether `predict` is sklearn's most probable class of `predict_proba` (up to ties)."""
    final = model
    while hasattr(final, "steps"):  # a Pipeline predicts with its last step
        final = final.steps[-1][1]
    kind = type(final)
    return kind.__module__.startswith("sklearn.") and kind.__name__ not in _PROBA_APART


def _sklearn_scorer(model: Any, task: str) -> Callable[[pd.DataFrame], Outputs]:
    import numpy as np

    from_proba = getattr(model, "predict_from_proba", None)
    argmax = from_proba is None and _labels_follow_proba(model)
    classes = np.asarray(getattr(model, "classes_", []))

    def labels(frame: pd.DataFrame, proba: np.ndarray) -> np.ndarray:
        # One pass through the pipeline: the labels come from the probabilities where that is
        # the model's own predict rule, instead of scoring the rows a second time.
        if from_proba is not None:
            return np.asarray(from_proba(proba))
        if not argmax:
            return np.asarray(model.predict(frame))
        found: np.ndarray = classes[proba.argmax(axis=1)]
        if proba.shape[1] > 1:
            # predict decides on scores whose probabilities can round to a tie (a sigmoid of
            # a score of 1e-17 is 0.5): those rows are left to predict itself.
            top = np.sort(proba, axis=1)
            tied = np.flatnonzero(top[:, -1] - top[:, -2] <= 1e-9)
            if len(tied):
                found[tied] = np.asarray(model.predict(frame.iloc[tied]))
        return found

    def score(frame: pd.DataFrame) -> Outputs:
        if task == "classification":
            proba = np.asarray(model.predict_proba(frame), dtype="float64")
            return Outputs(label=labels(frame, proba).tolist(), proba=proba)
        values = np.asarray(model.predict(frame), dtype="float64").ravel()
        return Outputs(prediction=values.tolist())

    return score


def _row_scorer(
    model: Any, task: str, features: list[str]
) -> tuple[Callable[[Mapping[str, Any]], Outputs | None] | None, str]:
    """The compiled one-row path (runtime/rowpath.py) wrapped to give `Outputs` with the labels
    the batch scorer gives, or None and why there is none."""
    import numpy as np

    from mlc.runtime.rowpath import Unsupported, compile_row

    from_proba = getattr(model, "predict_from_proba", None)
    if task == "classification" and from_proba is None and not _labels_follow_proba(model):
        return None, "labels come from predict, not from the probabilities"
    try:
        fn = compile_row(model, features, task)
    except Unsupported as exc:
        return None, str(exc)
    how = "compiled" + (f" (calls {', '.join(fn.called)} as is)" if fn.called else "")
    if task != "classification":
        return (lambda row: Outputs(prediction=[float(fn(row))])), how
    classes = np.asarray(getattr(model, "classes_", []))
    # A one-row request is row 0 of its input, so it takes the first draw, as in batch.
    first = None if from_proba is None else model.draw_stream().random_sample(1)

    def score_row(row: Mapping[str, Any]) -> Outputs | None:
        proba = np.asarray([fn(row)], dtype="float64")
        if from_proba is not None:
            return Outputs(label=[_plain(v) for v in from_proba(proba, first)], proba=proba)
        if proba.shape[1] > 1:
            top = np.sort(proba[0])
            if top[-1] - top[-2] <= 1e-9:
                return None
        return Outputs(label=[_plain(classes[int(proba[0].argmax())])], proba=proba)

    return score_row, how


PARITY = 1e-9
"""Largest difference allowed between the one-row path and the batch path at load."""


def _probe_rows(columns: Mapping[str, Any], features: list[str], count: int = 8) -> list[Any]:
    """Contract-valid rows that vary every column (each allowed value, both bounds, nulls)."""
    rows = []
    base = warmup_row(columns, features)
    for i in range(count):
        row = dict(base)
        for name in features:
            col = columns[name]
            if col.get("allowed"):
                allowed = list(col["allowed"])
                row[name] = allowed[i % len(allowed)]
            elif col["dtype"] in ("int", "float"):
                low, high = col.get("min"), col.get("max")
                lo = float(low) if low is not None else -10.0 * (i + 1)
                hi = float(high) if high is not None else 10.0 * (i + 1) + 1000.0
                value = lo + (hi - lo) * ((i * 37) % 11) / 10.0
                row[name] = round(value) if col["dtype"] == "int" else value
            if col.get("nullable") and i % 3 == 2 and col["dtype"] != "bool":
                row[name] = None
        rows.append(row)
    return rows


def _check_row_path(
    track: Track, columns: Mapping[str, Any], batch: Callable[[pd.DataFrame], Outputs]
) -> None:
    """Keep the one-row path only where it answers like the registered model's batch path
    (`batch`) on probe rows."""
    import numpy as np

    from mlc.runtime.serving.guards import Guard

    if track.row_fn is None:
        return
    guard = Guard(columns, track.features)
    for probe in _probe_rows(columns, track.features):
        data = {name: [value] for name, value in probe.items()}
        typed = guard.row(data)
        if typed is None:
            continue
        want = batch(guard.frame(data)[track.features])
        try:
            got = track.row_fn(typed)
        except Exception as exc:  # any failure of the compiled path leaves the batch path
            track.row_fn = None
            track.row_path = f"failed on a probe row: {_cause(exc)}"
            return
        if got is None:
            continue
        a = np.asarray(want.proba if want.proba is not None else want.prediction, dtype=float)
        b = np.asarray(got.proba if got.proba is not None else got.prediction, dtype=float)
        same_nan = np.isnan(a) == np.isnan(b)
        gap = float(np.nanmax(np.abs(a - b))) if a.size and not np.isnan(a).all() else 0.0
        if not same_nan.all() or gap > PARITY or want.values() != got.values():
            track.row_fn = None
            track.row_path = f"differs from the batch path on a probe row (by {gap:.3g})"
            return


def _bind_prestep_keys(folder: Path, secrets: dict[str, str]) -> None:
    """Keys for the package's pre-step pseudonymisers (the package holds only references)."""
    import json

    from mlc.runtime.steps._data import resolve_secret
    from mlc.runtime.steps._transforms import Pseudonymiser

    path = folder / "prestep.json"
    if not path.is_file():
        return
    for stage in json.loads(path.read_text()).get("stages", []):
        for spec in [stage.get("transform") or {}, *(stage.get("transforms") or [])]:
            if spec.get("class") == "Pseudonymiser":
                ref = str(spec["key_ref"])
                Pseudonymiser(key_ref=ref).bind_key(resolve_secret(ref, secrets, STEP))


def _onnx_scorer(
    folder: str, task: str, secrets: dict[str, str]
) -> tuple[Callable[[pd.DataFrame], Outputs], list[Any]]:
    import json

    import numpy as np

    from mlc.runtime.onnx_export import load_package

    run = load_package(folder)
    _bind_prestep_keys(Path(folder), secrets)
    report = json.loads((Path(folder) / "export.json").read_text())
    classes = list(report.get("classes") or [])

    def score(frame: pd.DataFrame) -> Outputs:
        got = run(frame)
        if task == "classification":
            return Outputs(
                label=[_plain(v) for v in np.asarray(got["label"]).ravel()],
                proba=np.asarray(got["proba"], dtype="float64"),
            )
        return Outputs(prediction=[float(v) for v in np.asarray(got["prediction"]).ravel()])

    return score, classes


def warmup_row(columns: Mapping[str, Any], features: list[str]) -> dict[str, Any]:
    """One row every contract check accepts, to run each model once before readiness."""
    row: dict[str, Any] = {}
    for name in features:
        col = columns[name]
        low, high = col.get("min"), col.get("max")
        if col.get("allowed"):
            row[name] = col["allowed"][0]
        elif col["dtype"] in ("int", "float"):
            value = (
                (low + high) / 2
                if low is not None and high is not None
                else low
                if low is not None
                else high
                if high is not None
                else 0
            )
            row[name] = int(value) if col["dtype"] == "int" else float(value)
        elif col["dtype"] == "bool":
            row[name] = False
        elif col["dtype"] == "datetime":
            row[name] = "2000-01-01T00:00:00"
        else:
            row[name] = "x"
    return row


def _cause(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:300]


def load_track(spec: TrackPlan, plan: ServingPlan) -> Track:
    """Resolve, load, bind secrets and warm up one track; a failure names the track."""
    import pandas as pd

    from mlc.runtime.steps._data import bind_secrets, cast_to_contract
    from mlc.runtime.steps.batch_predict import load_registered, resolve_version

    name, uri, model_name = spec["name"], plan["tracking_uri"], plan["model_name"]
    wanted = f"version {spec['version']}" if spec["version"] else f"alias '{spec['alias']}'"
    where = f"track '{name}' ({model_name} {wanted})"
    columns = plan["contract"]["columns"]
    try:
        version, why = resolve_version(model_name, spec["alias"] or "", spec["version"], uri)
        track = Track(name, version, why, plan["task"], list(plan["features"]))
        model = None
        if not spec["onnx"] or plan.get("row_path", True):
            model = load_registered(model_name, version, uri)
            bind_secrets(model, StepContext(secrets=dict(plan["secrets"])))
        # One-row requests take the compiled row path of the registered model itself (exact,
        # and faster than a graph run); batches take the ONNX package where there is one.
        if model is not None and plan.get("row_path", True):
            track.row_fn, track.row_path = _row_scorer(model, plan["task"], track.features)
            track.row_inline = track.row_path == "compiled"
        elif not plan.get("row_path", True):
            track.row_path = "turned off (--no-row-path)"
        if spec["onnx"]:
            track.score_fn, track.classes = _onnx_scorer(
                spec["onnx"], plan["task"], dict(plan["secrets"])
            )
        else:
            track.classes = [_plain(c) for c in getattr(model, "classes_", [])]
            track.score_fn = _sklearn_scorer(model, plan["task"])
        if plan["task"] == "classification" and not track.classes:
            raise StepError(STEP, "the model has no classes_ (not a fitted classifier)")
        row = pd.DataFrame([warmup_row(columns, track.features)])
        track.score(cast_to_contract(row, {f: columns[f] for f in track.features}))
        if model is not None and track.row_fn is not None:
            _check_row_path(track, columns, _sklearn_scorer(model, plan["task"]))
    except StepError as exc:
        text = str(exc.args[0]).split("\n  hint:")[0].split(": ", 1)[-1]
        raise StepError(STEP, f"{where}: {text}", exc.hint) from None
    except Exception as exc:  # the store, the model and its libraries raise many types
        raise StepError(
            STEP,
            f"{where}: {_cause(exc)}",
            "check the tracking store, the registered version and the secrets it needs",
        ) from None
    return track


def reference_profile(model_name: str, version: str, uri: str) -> dict[str, Any] | None:
    """The reference profile stored with a registered version (its run's
    `reference/profile.json`), or None when it has none or the store cannot say."""
    import tempfile

    from mlc.runtime import profile as profiles

    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        run_id = client.get_model_version(model_name, version).run_id
        if not run_id:
            return None
        with tempfile.TemporaryDirectory(prefix="mlc-profile-") as folder:
            path = client.download_artifacts(run_id, profiles.MLFLOW_PATH, folder)
            return profiles.read(path)
    except Exception:  # no such artifact (an older version), or the store is away
        return None


def load_tracks(plan: ServingPlan) -> dict[str, Track]:
    """Every track of the plan, loaded and warmed up, by name."""
    import logging

    tracks = {spec["name"]: load_track(spec, plan) for spec in plan["tracks"]}
    for track in tracks.values():
        if track.row_fn is None:
            logging.getLogger("mlc.serve").warning(
                "track '%s' (v%s): one-row requests take the batch path: %s",
                track.name,
                track.version,
                track.row_path,
            )
    return tracks
