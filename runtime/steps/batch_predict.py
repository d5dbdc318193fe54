"""batch_predict: score a batch input with a registered model, in bounded memory.

The model is the registered `params["model_name"]` at the alias `deployment.batch.alias`
(default `champion`) in the tracking store named by the `model_version` input (the register
step's document), or at an explicit version (`ctx.extra["model_version"]`, e.g. from
`mlc batch --model-version`). It is loaded with
`mlflow.sklearn.load_model`, which reads the skops trusted types the register step logged.
Scoring itself is `mlc.runtime.batch` (`score_file` for `engine: pandas`, `score_spark` for
`engine: spark`); this step resolves the model, writes the artifact's `_meta.json` and
publishes a copy to `deployment.batch.output`.

Output `predictions`: a folder with `predictions.parquet`, `quarantine.parquet` (when rows were
quarantined), `drift.json` and `summary.json`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps._data import bind_secrets, out

if TYPE_CHECKING:
    from mlc.compiler.ir.params import BatchPredictParams

STEP = "batch_predict"
VERSION = "1"


@contextlib.contextmanager
def _store_errors(uri: str) -> Iterator[None]:
    """An MLflow failure reading the store is a `StepError` naming the store."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except StepError:
        raise
    except (MlflowException, OSError) as exc:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise StepError(
            STEP,
            f"cannot read the model from the MLflow store {uri}: {first[:300]}",
            "check the store (--tracking-uri) and that the register step ran",
        ) from None


def _tracking_uri(inputs: dict[str, str], ctx: StepContext) -> tuple[str, dict[str, Any]]:
    loc = inputs.get("model_version")
    doc: dict[str, Any] = {}
    if loc and artifacts.exists(loc, "model_version.json"):
        found = artifacts.load_json(loc, "model_version")
        doc = found if isinstance(found, dict) else {}
    return str(doc.get("tracking_uri") or ctx.effective_tracking_uri()), doc


def _aliases(client: Any, name: str) -> tuple[dict[str, str], list[str]]:
    """The registered model's aliases (alias -> version) and its versions."""
    model = client.get_registered_model(name)
    aliases = {str(a): str(v) for a, v in sorted((model.aliases or {}).items())}
    versions = sorted(
        (str(mv.version) for mv in client.search_model_versions(f"name = '{name}'")), key=int
    )
    return aliases, versions


def resolve_version(name: str, alias: str, version: str | None, uri: str) -> tuple[str, str]:
    """The version to score (`version`, else the one `alias` points at) and how it was chosen."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        aliases, versions = _aliases(client, name)
    except MlflowException:
        raise StepError(
            STEP,
            f"no registered model '{name}' in the MLflow store {uri}",
            "run the pipeline (mlc run) so that register creates it, or check --tracking-uri",
        ) from None
    listed = ", ".join(f"{a} -> v{v}" for a, v in aliases.items()) or "none"
    if version is not None:
        if str(version) not in versions:
            raise StepError(
                STEP,
                f"registered model '{name}' has no version {version}",
                f"versions: {', '.join(versions) or 'none'}; aliases: {listed}",
            )
        return str(version), f"version {version} asked for"
    if alias not in aliases:
        raise StepError(
            STEP,
            f"registered model '{name}' has no alias '{alias}'",
            f"aliases: {listed}; versions: {', '.join(versions) or 'none'}; "
            "set deployment.batch.alias, or promote a version to that alias",
        )
    return aliases[alias], f"alias {alias}"


def load_registered(name: str, version: str, uri: str) -> Any:
    """The registered sklearn model, loaded with the skops trusted types it was logged with."""
    import mlflow
    import mlflow.sklearn

    from mlc.runtime.steps.register import _mlflow_chatter_muted, _mlflow_uris_restored

    with _mlflow_chatter_muted(), _mlflow_uris_restored():
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        # By version, not by alias: the alias may move between resolving and loading.
        return mlflow.sklearn.load_model(f"models:/{name}/{version}")


def _publish(folder: Path, target: Path) -> None:
    """Copy the artifact folder to `target` atomically (a sibling temp folder, then rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        shutil.copytree(folder, tmp, ignore=shutil.ignore_patterns(".*.tmp"))
        if target.exists():
            aside = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
            os.replace(target, aside)
            os.replace(tmp, target)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def run(
    params: BatchPredictParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Resolve the registered model, score the batch input, write the `predictions` artifact."""
    from mlc.runtime import batch

    settings = params["batch"]
    if settings is None:
        raise StepError(
            STEP, "deployment.batch is not set", "set deployment.batch.input and output"
        )
    loc = out(outputs, "predictions", STEP)
    model_name = str(params["model_name"])
    alias = settings["alias"]
    wanted = ctx.extra.get("model_version")
    uri, _doc = _tracking_uri(inputs, ctx)
    with _store_errors(uri):
        version, why = resolve_version(
            model_name, alias, str(wanted) if wanted is not None else None, uri
        )
        model = load_registered(model_name, version, uri)
    bind_secrets(model, ctx)
    if "://" not in loc:
        # Rescoring into the folder: until the new `_meta.json` is written last, the old one
        # must not vouch for files that are being replaced.
        (Path(loc) / artifacts.META).unlink(missing_ok=True)
    reference = None
    ref_loc = inputs.get("reference")
    if ref_loc and artifacts.exists(ref_loc):
        # `load_frame` reads a Spark-written dataset folder too
        from mlc.runtime.steps._data import load_frame

        reference = load_frame({"reference": ref_loc}, "reference", STEP)
    else:
        ctx.logger.warning("step '%s': no reference dataset: drift not computed", STEP)
    contract = params["contract"]
    engine = params["engine"]
    input_path = ctx.resolve(str(settings["input"]))
    common: dict[str, Any] = {
        "contract": contract,
        "features": list(params["features"]),
        "task": str(params["task"]),
        "id_column": settings["id_column"],
        "chunk_rows": settings["chunk_rows"],
        "on_failure": str(contract["on_failure"]),
        "model_name": model_name,
        "model_version": version,
        "reference": reference,
        "drift": params["drift"],
        "target": params["target"],
        "step": STEP,
        "log": ctx.logger.warning,
    }
    if engine == "spark":
        summary = batch.score_spark(
            model,
            input_path,
            loc,
            secrets=ctx.secrets,
            spark_settings=params.get("spark"),
            **common,
        )
    else:
        summary = batch.score_file(model, input_path, loc, **common)
    artifacts.write_meta(
        loc,
        "predictions",
        content_hash=summary["hash"],
        rows=summary["rows_scored"],
        rows_in=summary["rows_in"],
        rows_quarantined=summary["rows_quarantined"],
        model_name=model_name,
        model_version=version,
        chosen_by=why,
        engine=engine,
        input=input_path,
    )
    published = None
    target = settings["output"]
    if target:
        resolved = ctx.resolve(str(target))
        if "://" in resolved:
            ctx.logger.warning(
                "step '%s': deployment.batch.output %s is not a local path: not copied "
                "(the predictions are at %s)",
                STEP,
                resolved,
                loc,
            )
        elif Path(resolved).resolve() != Path(loc).resolve():
            _publish(Path(loc), Path(resolved))
            published = resolved
    return {
        "model": model_name,
        "version": version,
        "chosen_by": why,
        "rows_in": summary["rows_in"],
        "rows_scored": summary["rows_scored"],
        "quarantined": summary["rows_quarantined"],
        "drifted": summary["drifted"],
        "rows_per_second": summary["rows_per_second"],
        "published": published,
    }
