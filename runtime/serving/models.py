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
        if spec["onnx"]:
            track.score_fn, track.classes = _onnx_scorer(
                spec["onnx"], plan["task"], dict(plan["secrets"])
            )
        else:
            model = load_registered(model_name, version, uri)
            bind_secrets(model, StepContext(secrets=dict(plan["secrets"])))
            track.classes = [_plain(c) for c in getattr(model, "classes_", [])]
            track.score_fn = _sklearn_scorer(model, plan["task"])
        if plan["task"] == "classification" and not track.classes:
            raise StepError(STEP, "the model has no classes_ (not a fitted classifier)")
        row = pd.DataFrame([warmup_row(columns, track.features)])
        track.score(cast_to_contract(row, {f: columns[f] for f in track.features}))
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
    return {spec["name"]: load_track(spec, plan) for spec in plan["tracks"]}
