"""Ad-hoc batch scoring (`mlc batch`): the spec's `batch_predict` step run on a file the caller
names, with the registered model at an alias or version.

A spec without `deployment.mode: batch` scores too: the step's params come from what the IR
says of the model (its name, data contract, label, task, engine) with the batch settings'
defaults from the spec model. Drift is measured against the train part of the project's last
run when one exists.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlc.compiler.api._check import UsageError, check
from mlc.compiler.ir import IRGraph, StepKind


class BatchError(UsageError):
    """Scoring cannot start or stopped on bad input (a missing model, alias or file, a batch
    breaking the data contract under `stop`); the message says which and what would do."""


@dataclass
class BatchResult:
    summary: dict[str, Any]
    """The step's summary (model, version, rows scored and quarantined, drift, rows/s)."""
    output: Path


def batch_params(ir: IRGraph, input_path: str, output: str, alias: str | None) -> dict[str, Any]:
    """The `batch_predict` params for scoring `input_path` into `output`."""
    from mlc.specs.deployment import Batch

    step = ir.first(StepKind.BATCH_PREDICT)
    if step is not None:
        params = dict(step.params)
        settings = dict(params["batch"])
    else:
        register = ir.first(StepKind.REGISTER)
        ingest = ir.first(StepKind.INGEST)
        monitor = ir.first(StepKind.MONITOR)
        if register is None or ingest is None:
            raise BatchError("the spec registers no model: there is nothing to score with")
        reg = register.params
        params = {
            "model_name": reg["model_name"],
            "contract": reg["contract"],
            "target": reg["target"],
            "task": reg["task"],
            "engine": ingest.params["engine"],
            "drift": monitor.params["drift"] if monitor is not None else None,
            "features": [c for c in reg["contract"]["columns"] if c != reg["target"]],
            "secrets": {},
        }
        settings = Batch(schedule="@daily", input=input_path, output=output).model_dump()
    settings.update(input=input_path, output=output)
    if alias is not None:
        settings["alias"] = alias
    params["batch"] = settings
    return params


def _configured(ir: IRGraph) -> str | None:
    """The spec's `tracking.uri`, its `env:` reference resolved.

    Raises:
        BatchError: a reference this environment cannot resolve.
    """
    from mlc.runtime.store import StoreError, configured_uri

    try:
        return configured_uri((ir.settings.get("tracking") or {}).get("uri"))
    except StoreError as exc:
        raise BatchError(str(exc)) from None


def _last_run(ir: IRGraph, state_dir: Path) -> tuple[str | None, str | None]:
    """The train part of the project's newest finished run (for the batch's drift) and the
    tracking store it registered into; (None, None) without one."""
    from mlc.compiler.api._monitor import MonitorError, _artifact_folder
    from mlc.targets.local.executor import list_runs

    runs = [r for r in list_runs(state_dir) if r.get("status") in ("succeeded", "gate_failed")]
    split = ir.first(StepKind.SPLIT)
    if not runs or split is None:
        return None, None
    uri = runs[0].get("tracking_uri")
    try:
        reference = _artifact_folder(ir, runs[0], f"{split.id}.train")
    except MonitorError:
        reference = None
    return reference, str(uri) if uri else None


def batch(
    spec_path: str | Path,
    input_path: str | Path,
    output: str | Path,
    overrides: Sequence[str] = (),
    *,
    alias: str | None = None,
    model_version: str | None = None,
    tracking_uri: str | None = None,
) -> BatchResult:
    """Score `input_path` with the spec's registered model; write the predictions to `output`.

    Raises:
        DiagnosticError: the spec has errors.
        BatchError: scoring cannot start, or the input broke the contract under `stop`.
    """
    from mlc.compiler.diagnostics import DiagnosticError
    from mlc.runtime.context import StepContext, StepError
    from mlc.runtime.steps import get
    from mlc.targets.local import LocalOptions

    result = check(spec_path, overrides, targets=["local"])
    if not result.ok:
        raise DiagnosticError(result.diagnostics)
    options = result.options["local"]
    assert isinstance(options, LocalOptions)
    project = Path(result.loaded.project_dir)
    source = Path(input_path)
    if not source.exists():
        raise BatchError(f"no input at '{input_path}' (a CSV or Parquet file, or a folder)")
    out = Path(output).resolve()
    params = batch_params(result.ir, str(source.resolve()), str(out), alias)
    state_dir = project / options.state_dir
    inputs: dict[str, str] = {}
    reference, run_uri = _last_run(result.ir, state_dir)
    if reference is not None:
        inputs["reference"] = reference
    ctx = StepContext(
        project_dir=project,
        state_dir=state_dir,
        tracking_uri=tracking_uri or options.tracking_uri or _configured(result.ir) or run_uri,
        run_id=f"batch-{time.strftime('%Y%m%dT%H%M%S')}",
        step_id="batch-predict",
        # as `mlc run` does: the values of the spec's secrets that this environment holds
        secrets={n: os.environ[n] for n in sorted(params["secrets"]) if n in os.environ},
    )
    if model_version is not None:
        ctx.extra["model_version"] = model_version
    try:
        summary = get("batch_predict")(params, inputs, {"predictions": str(out)}, ctx)
    except StepError as exc:
        raise BatchError(str(exc)) from None
    return BatchResult(summary, out)
