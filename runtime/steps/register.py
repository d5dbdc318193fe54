"""register: MLflow tracking and model registry.

Logs params, metrics, the spec hash, the data hash and the reports of the run into an MLflow
run; logs the model (the fitted sklearn `Pipeline` from the model artifact) with a signature
built from the data contract and explicit pip requirements; registers it as a new version of
the spec's model and moves the aliases: `challenger` always, `champion` only when the gate
verdict passed and promotion is `auto`. A model already registered (same model hash) is not
registered twice, and its aliases are not moved: the step reports the existing version with
`new_version: false`. The run also carries the hyperparameters training used (fixed and tuned,
as params), the tuning trials (`tuning/trials.json`) and the model card (`model_card/`).
Nothing registered is ever deleted or overwritten; a store that is locked or cannot be written
is a `StepError` naming the store.

Default store: a sqlite file in the project's `.mlc/` with artifacts under `.mlc/mlartifacts`,
set up crash-safely by `mlc.runtime.store` (built aside and renamed into place; a half-migrated
one mended). The MLflow run names the process that started it, so a run a `kill -9` left
`RUNNING` is marked `FAILED` the next time the store is opened; a version registered by a
killed run (tag `mlc.registration` still `pending`) has its aliases and audit records finished
by the next run instead of being skipped as already registered.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts, model_code, store
from mlc.runtime.context import StepContext, StepError

VERSION = "1"
if TYPE_CHECKING:
    from mlc.compiler.ir.params import ContractParams, RegisterParams

STEP = "register"
MODEL_HASH_TAG = "mlc.model_hash"
REGISTRATION_TAG = "mlc.registration"
"""`pending` from `register_model` until aliases and audit records are written, then `complete`."""
CHAMPION = "champion"
CHALLENGER = "challenger"

# Contract dtype -> MLflow column type for the signature.
_MLFLOW_TYPES = {
    "int": "long",
    "float": "double",
    "str": "string",
    "category": "string",
    "bool": "boolean",
    "datetime": "datetime",
}


_sqlite_file = store.sqlite_file


def champion_info(model_name: str, tracking_uri: str) -> dict[str, Any] | None:
    """The current `champion` of `model_name`: version, model hash and run metrics, or None.

    The gate step compares a challenger with it (`ctx.extra["champion_metrics"]`). A local
    sqlite store is read directly (milliseconds, no MLflow import, so a cached rerun stays
    fast); any other store, or a sqlite schema this code does not know, goes through
    `MlflowClient`.
    """
    db = _sqlite_file(tracking_uri)
    if db is not None:
        if not db.exists():
            return None
        store.ensure(tracking_uri)  # a half-migrated store would fail both readers below
        try:
            return _champion_from_sqlite(db, model_name)
        except sqlite3.Error:
            pass
    return _champion_from_client(model_name, tracking_uri)


def _champion_from_sqlite(db: Path, model_name: str) -> dict[str, Any] | None:
    with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=5)) as con:
        row = con.execute(
            "SELECT mv.version, mv.run_id FROM registered_model_aliases a "
            "JOIN model_versions mv ON mv.name = a.name AND mv.version = a.version "
            "WHERE a.name = ? AND a.alias = ?",
            (model_name, CHAMPION),
        ).fetchone()
        if row is None:
            return None
        version, run_id = row
        tag = con.execute(
            "SELECT value FROM model_version_tags WHERE name = ? AND version = ? AND key = ?",
            (model_name, version, MODEL_HASH_TAG),
        ).fetchone()
        metrics = dict(
            con.execute(
                "SELECT key, value FROM latest_metrics WHERE run_uuid = ?", (run_id,)
            ).fetchall()
        )
    return {
        "version": str(version),
        "run_id": run_id,
        "model_hash": tag[0] if tag else None,
        "metrics": {k: float(v) for k, v in sorted(metrics.items())},
    }


def _champion_from_client(model_name: str, tracking_uri: str) -> dict[str, Any] | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        mv = client.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None
    metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
    return {
        "version": str(mv.version),
        "run_id": mv.run_id,
        "model_hash": (mv.tags or {}).get(MODEL_HASH_TAG),
        "metrics": {k: float(v) for k, v in sorted(metrics.items())},
    }


def signature(contract: ContractParams, target: str, task: str) -> Any:
    """An MLflow `ModelSignature` from the data contract: every column but the target in."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    columns = contract["columns"]
    inputs: list[ColSpec | TensorSpec] = [
        ColSpec(_MLFLOW_TYPES.get(col["dtype"], "string"), name, required=not col["nullable"])
        for name, col in sorted(columns.items())
        if name != target
    ]
    out_type = "long" if task == "classification" else "double"
    return ModelSignature(inputs=Schema(inputs), outputs=Schema([ColSpec(out_type, target)]))


def _keras_backend(model: Any) -> str:
    """The backend a Keras model in the pipeline was trained under (torch when none is)."""
    steps = getattr(model, "steps", None) or []
    last = steps[-1][1] if steps else model
    # a fairness-mitigated model wraps its estimator
    for candidate in (last, getattr(last, "estimator", None)):
        if type(candidate).__module__ == "mlc.runtime.frameworks.keras_model":
            return str(getattr(candidate, "backend", "torch"))
    return "torch"


def pip_requirements(own_types: Sequence[str] = (), keras_backend: str = "torch") -> list[str]:
    """Pinned requirements of a logged model, stated rather than inferred (fast).

    skops loads the saved pipeline; a Lightning model (`own_types` names `MLPEstimator`) also
    needs torch and Lightning. Local version labels (`2.13.0+cpu`) are dropped: an index has
    no such build, and the weights are plain arrays that any build loads. mlc itself is not
    listed (not on an index): the modules the model's own classes need ship with it
    (`code_paths`, see `mlc.runtime.model_code`).
    """
    from importlib.metadata import PackageNotFoundError, version

    dists = ["scikit-learn", "pandas", "numpy", "scipy", "cloudpickle", "mlflow-skinny", "skops"]
    if any(t.startswith("mlc.runtime.lightning_mlp.") for t in own_types):
        dists += ["torch", "lightning"]
    from mlc.runtime.frameworks import extra_requirements

    dists += extra_requirements(own_types, keras_backend)
    reqs = []
    for dist in dists:
        try:
            reqs.append(f"{dist}=={version(dist).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return reqs


def _own_types(model: Any) -> list[str]:
    """Types skops does not trust by default: mlc's own transformers inside the pipeline.

    The model was fitted by this run, so trusting the types it contains is safe here; a model
    from elsewhere never reaches this step.
    """
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def _read_doc(location: str) -> Any:
    """The JSON document of a report/metrics/verdict artifact (the one non-meta JSON file)."""
    folder = Path(location)
    docs = sorted(p for p in folder.glob("*.json") if p.name != artifacts.META)
    if not docs:
        return artifacts.read_meta(location)
    return json.loads(docs[0].read_text())


def metrics_of(doc: Any) -> dict[str, float]:
    """Numeric metrics of an evaluate output (`{"metrics": {...}}` or a flat mapping)."""
    if isinstance(doc, dict) and isinstance(doc.get("metrics"), dict):
        doc = doc["metrics"]
    if not isinstance(doc, dict):
        return {}
    out = {}
    for key, value in doc.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        out[str(key)] = float(value)
    return out


_STORE_WORDS = (
    "sqlite",
    "database",
    "unable to open",
    "permission",
    "read-only",
    "readonly",
    "no such file",
    "not a directory",
)


@contextlib.contextmanager
def _mlflow_chatter_muted() -> Iterator[None]:
    """Keep MLflow's progress lines out of `mlc run`'s one-line-per-step display.

    `register_model` prints "Successfully registered model …" / "Created version …" to stderr
    itself (not through logging), and a new sqlite store logs its table set-up at INFO. Those
    lines are dropped; anything else written meanwhile (warnings) is passed on.
    """
    import io
    import logging
    import sys

    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            yield
    finally:
        logger.setLevel(level)
        for line in captured.getvalue().splitlines(keepends=True):
            if not line.startswith(_MLFLOW_CHATTER):
                sys.stderr.write(line)


@contextlib.contextmanager
def _mlflow_uris_restored() -> Iterator[None]:
    """The step points MLflow's process-wide tracking and registry URIs at its store (the
    fluent `start_run`/`log_model`/`register_model` read them); put back what was there, so
    that code run after it in the same process (another step, a notebook) is not redirected."""
    import mlflow

    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


_MLFLOW_CHATTER = ("Successfully registered model", "Created version", "Registered model '")


@contextlib.contextmanager
def _store_errors(uri: str) -> Iterator[None]:
    """Turn a locked or unwritable store into a `StepError` that names it."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except StepError:
        raise
    except (MlflowException, OSError) as exc:
        text = str(exc)
        lower = text.lower()
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        if "locked" in lower:
            raise StepError(
                STEP,
                f"the MLflow store {uri} is locked by another process: {first[:300]}",
                "close other writers of the store, or pass --tracking-uri with another store",
            ) from None
        if isinstance(exc, OSError) or any(w in lower for w in _STORE_WORDS):
            raise StepError(
                STEP,
                f"the MLflow store {uri} cannot be written: {first[:300]}",
                "check the path and its permissions, or pass --tracking-uri",
            ) from None
        raise StepError(
            STEP, f"MLflow failed: {first[:400]}", "see the MLflow message above"
        ) from None
    except Exception as exc:
        if type(exc).__module__.startswith("sqlalchemy"):
            raise StepError(
                STEP,
                f"the MLflow store {uri} cannot be used: {exc}"[:400],
                "check the store, or pass --tracking-uri",
            ) from None
        raise


def _experiment(client: Any, name: str, ctx: StepContext) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    # The spec's tracking.artifact_location; the embedded store keeps them beside it; a
    # tracking server, by default, where it is configured to (its --default-artifact-root).
    location = ctx.extra.get("artifact_location")
    if location is None and store.sqlite_file(ctx.effective_tracking_uri()) is not None:
        location = (ctx.state / "mlartifacts").resolve().as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def _has_alias(client: Any, name: str, alias: str) -> bool:
    try:
        client.get_model_version_by_alias(name, alias)
    except Exception:  # MlflowException: no such alias
        return False
    return True


def _existing_version(client: Any, name: str, model_hash: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        return None
    found = client.search_model_versions(
        f"name = '{name}' and tags.`{MODEL_HASH_TAG}` = '{model_hash}'"
    )
    return min(found, key=lambda mv: int(mv.version)) if found else None


def _hyperparameters(
    params: RegisterParams, inputs: dict[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """The hyperparameters training used: the spec's fixed ones with the tuned ones over them
    (as the train step merges them), and the names of the tuned ones."""
    model = params["model"]
    fixed = dict(model["params"]) if model is not None else {}
    tuned: dict[str, Any] = {}
    if "params" in inputs and artifacts.exists(inputs["params"]):
        doc = _read_doc(inputs["params"])
        if isinstance(doc, dict):
            found = doc.get("best_params", doc)
            tuned = dict(found) if isinstance(found, dict) else {}
    return {**fixed, **tuned}, sorted(tuned)


def _flat_params(params: RegisterParams, hyper: dict[str, Any]) -> dict[str, str]:
    """MLflow params: what was trained, and every hyperparameter under its own name."""
    out = {
        "model_name": params["model_name"],
        "task": params["task"],
        "target": params["target"],
    }
    model = params["model"]
    if model is not None and model["name"]:
        out["estimator"] = model["name"]
    for key, value in sorted(hyper.items()):
        # a hyperparameter never hides one of the run's own params
        name = key if key not in out else f"param.{key}"
        out[name] = (value if isinstance(value, str) else json.dumps(value))[:500]
    return out


def _trials(params: RegisterParams, inputs: dict[str, str], ctx: StepContext) -> Any:
    """The tuning study's report and its trials (number, state, value, params), or None.

    The tune step's `study` report names the Optuna study; its trials are read from the report
    when it lists them, else from the study's storage (the spec's `tuning.storage`, or the
    state folder's `optuna.db` where the tune step keeps it).
    """
    if "study" not in inputs or not artifacts.exists(inputs["study"]):
        return None
    report = _read_doc(inputs["study"])
    if not isinstance(report, dict):
        return None
    trials = report.get("trials")
    if not isinstance(trials, list) and report.get("study"):
        storage = params["tuning_storage"] or (f"sqlite:///{(ctx.state / 'optuna.db').resolve()}")
        trials = _trials_from_storage(str(report["study"]), storage, ctx)
    return {"study": report, "trials": trials if isinstance(trials, list) else []}


def _trials_from_storage(
    study_name: str, storage: str, ctx: StepContext
) -> list[dict[str, Any]] | None:
    db = _sqlite_file(storage)
    if db is not None and not db.exists():
        ctx.logger.warning("step 'register': no Optuna storage at %s: trials not logged", db)
        return None
    import optuna

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except Exception as exc:  # optuna and SQLAlchemy raise many types; the trials are extra
        ctx.logger.warning(
            "step 'register': cannot read study %s from %s (%s): trials not logged",
            study_name,
            storage,
            exc,
        )
        return None
    return [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "params": dict(sorted(t.params.items())),
            "seconds": t.duration.total_seconds() if t.duration is not None else None,
        }
        for t in study.trials
    ]


def _log_card(inputs: dict[str, str]) -> None:
    """The model card (Markdown and JSON) as run artifacts under `model_card/`."""
    import mlflow

    loc = inputs.get("card")
    if loc is None or not artifacts.exists(loc):
        return
    folder = Path(loc)
    for name in ("card.md", "card.json"):
        if (folder / name).is_file():
            mlflow.log_artifact(str(folder / name), artifact_path="model_card")


def run(
    params: RegisterParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Log the run to MLflow, register the model, move aliases; write the `model_version`."""
    from mlc.runtime import audit, lineage

    for name in ("model", "metrics", "verdict"):
        if name not in inputs or not artifacts.exists(inputs[name]):
            raise StepError(
                STEP,
                f"input '{name}' is missing or incomplete",
                "run the steps before register first",
            )
    if "model_version" not in outputs:
        raise StepError(
            STEP, "missing output 'model_version'", "pass --outputs model_version=LOCATION"
        )
    model_name = params["model_name"]
    verdict = _read_doc(inputs["verdict"])
    passed = bool(verdict.get("passed")) if isinstance(verdict, dict) else False
    promotion = params["promotion"]
    promote = passed and promotion["policy"] == "auto"
    by_rollout = params.get("promote_by") == "rollout"
    model_hash = str(artifacts.read_meta(inputs["model"]).get("hash"))
    metrics = metrics_of(_read_doc(inputs["metrics"]))
    spec_hash = ctx.extra.get("spec_hash")
    data_hash = ctx.extra.get("data_hash")
    code_version = ctx.extra.get("code_version")
    uri = ctx.effective_tracking_uri()
    hyper, tuned_names = _hyperparameters(params, inputs)

    from mlc.runtime.steps._data import load_model

    model = load_model(inputs, "model", STEP, ctx)
    from mlc.runtime import profile as reference_profile

    profile_text = reference_profile.for_step(inputs, params["target"], params["task"], model, STEP)
    try:
        with _store_errors(uri):
            store.ensure(uri, ctx.logger.warning)
    except store.StoreError as exc:
        raise StepError(STEP, str(exc), "or pass --tracking-uri with another store") from None
    with _store_errors(uri), _mlflow_chatter_muted(), _mlflow_uris_restored():
        import mlflow
        import mlflow.sklearn
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment_id = _experiment(client, model_name, ctx)
        store.close_killed_runs(
            uri,
            current_run=ctx.run_id,
            client=client,
            experiment_ids=[experiment_id],
            log=ctx.logger.warning,
        )
        existing = _existing_version(client, model_name, model_hash)
        # Registered by a run killed before it moved the aliases: finish that registration.
        unfinished = existing is not None and (
            (existing.tags or {}).get(REGISTRATION_TAG) == "pending"
        )
        new = existing is None or unfinished
        if unfinished:
            version = str(existing.version)
            run_id = existing.run_id
            registered_source = str(existing.source)
        elif new:
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            tags = {
                "mlc.run_id": ctx.run_id,
                "mlc.spec_hash": str(spec_hash),
                "mlc.data_hash": str(data_hash),
                "mlc.code_version": str(code_version),
                MODEL_HASH_TAG: model_hash,
                "mlc.verdict": "passed" if passed else "failed",
                **store.process_tags(),
            }
            if tuned_names:
                tags["mlc.tuned_params"] = ",".join(tuned_names)
            with mlflow.start_run(
                experiment_id=experiment_id, run_name=ctx.run_id, tags=tags
            ) as active:
                mlflow.log_params(_flat_params(params, hyper))
                if metrics:
                    mlflow.log_metrics(metrics)
                mlflow.log_dict(
                    verdict if isinstance(verdict, dict) else {"verdict": verdict},
                    "reports/verdict.json",
                )
                for report in ("fairness", "explain"):
                    if report in inputs and artifacts.exists(inputs[report]):
                        mlflow.log_dict(_read_doc(inputs[report]), f"reports/{report}.json")
                tuning = _trials(params, inputs, ctx)
                if tuning is not None:
                    mlflow.log_dict(tuning["study"], "tuning/study.json")
                    mlflow.log_dict(tuning["trials"], "tuning/trials.json")
                _log_card(inputs)
                if ctx.extra.get("reason"):
                    mlflow.log_dict(ctx.extra["reason"], "reason/retrain.json")
                if profile_text is not None:
                    mlflow.log_text(profile_text, reference_profile.MLFLOW_PATH)
                own = _own_types(model)
                with tempfile.TemporaryDirectory(prefix="mlc-code-") as code_dir:
                    # mlc's classes inside the model load where mlc is not installed
                    shipped = model_code.stage(model_code.modules_of_types(own), Path(code_dir))
                    info = mlflow.sklearn.log_model(
                        model,
                        name="model",
                        signature=signature(params["contract"], params["target"], params["task"]),
                        pip_requirements=pip_requirements(own, _keras_backend(model)),
                        serialization_format="skops",
                        skops_trusted_types=own,
                        code_paths=[str(shipped)] if shipped is not None else None,
                    )
                run_id = active.info.run_id
            mv = mlflow.register_model(
                info.model_uri,
                model_name,
                tags={
                    MODEL_HASH_TAG: model_hash,
                    "mlc.spec_hash": str(spec_hash),
                    "mlc.data_hash": str(data_hash),
                    "mlc.run_id": ctx.run_id,
                    REGISTRATION_TAG: "pending",
                },
            )
            version = str(mv.version)
            registered_source = str(mv.source)
        if new:
            client.set_registered_model_alias(model_name, CHALLENGER, version)
            aliases = [CHALLENGER]
            # With a canary or blue-green strategy the rollout moves `champion` after judging
            # the version live; the first version has nothing to be judged against.
            if promote and not (by_rollout and _has_alias(client, model_name, CHAMPION)):
                client.set_registered_model_alias(model_name, CHAMPION, version)
                aliases.append(CHAMPION)
        else:
            # The very bytes are registered already: no new version, and its aliases stay
            # where they are (re-pointing them would promote an old version behind a newer one).
            version = str(existing.version)
            run_id = existing.run_id
            current = client.get_model_version(model_name, version)
            aliases = sorted(getattr(current, "aliases", None) or [])

    state = ctx.state
    commit = ctx.extra.get("git_commit")
    if new:
        from mlc.runtime import audit_anchor

        # Digests of the files as MLflow holds them: `mlc audit verify --deep` compares.
        with _store_errors(uri), _mlflow_chatter_muted():
            registered = audit_anchor.model_digests(registered_source, uri)
        audit.append(
            state,
            "registration",
            spec_hash=spec_hash,
            commit=commit,
            details={
                "model": model_name,
                "version": version,
                "run_id": ctx.run_id,
                "mlflow_run_id": run_id,
                "model_hash": model_hash,
                "data_hash": data_hash,
                "tracking_uri": uri,
                "store": audit_anchor.store_name(state, uri),
                "artifacts": registered,
                **({"reason": ctx.extra["reason"]} if ctx.extra.get("reason") else {}),
            },
        )
        lineage.record_model(
            state,
            model_name=model_name,
            version=version,
            run_id=ctx.run_id,
            data_hash=data_hash,
            spec_hash=spec_hash,
            code_version=code_version,
            model_hash=model_hash,
            tracking_uri=uri,
            aliases=aliases,
            reason=ctx.extra.get("reason"),
        )
        audit.append(
            state,
            "promotion",
            spec_hash=spec_hash,
            commit=commit,
            details={
                "model": model_name,
                "version": version,
                "aliases": aliases,
                "policy": promotion["policy"],
                "verdict_passed": passed,
                "pending_approval": (passed and not promote),
                "approvers": list(params["approvers"]),
            },
        )
        # The tracking store's head covers these records: a promotion past it is forged.
        with _store_errors(uri), _mlflow_chatter_muted():
            audit_anchor.anchor(state, uri, experiment_id)
            from mlflow import MlflowClient

            MlflowClient(tracking_uri=uri, registry_uri=uri).set_model_version_tag(
                model_name, version, REGISTRATION_TAG, "complete"
            )
    note = (
        f"registered version {version}"
        if new
        else f"identical to registered version {version} (same model hash): no new version, "
        "aliases unchanged"
    )
    doc = {
        "model_name": model_name,
        "version": version,
        "aliases": aliases,
        "new_version": new,
        "mlflow_run_id": run_id,
        "model_hash": model_hash,
        "spec_hash": spec_hash,
        "data_hash": data_hash,
        "tracking_uri": uri,
        "model_uri": f"models:/{model_name}/{version}",
        "note": note,
    }
    if profile_text is not None:
        artifacts.save_text(outputs["model_version"], reference_profile.FILE, profile_text)
    artifacts.save_json(
        outputs["model_version"],
        "model_version",
        doc,
        "model_version",
        version=version,
        aliases=aliases,
    )
    return {
        "model": model_name,
        "version": version,
        "aliases": aliases,
        "new": new,
        "note": note,
    }
