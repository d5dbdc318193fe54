"""export: the registered model as an ONNX edge package, shipped only when it scores the same.

Reads the registered version (`model_version`), the candidate model (the same bytes as
registered) and the test split; converts the pipeline (`mlc.runtime.onnx_export`), checks
parity on the test rows and on probe rows at the trees' split thresholds, optionally adds a
dynamically quantised graph, measures latency, and writes the `package` folder (`model.onnx`,
`model.quant.onnx`, `prestep.json`, `export.json`) at once (built aside, then renamed). A
graph that fails parity is not written anywhere.

The package is logged to the registered version's MLflow run (`onnx/model.onnx`,
`onnx/export.json`), the version gets the tags `mlc.onnx_sha256` and `mlc.onnx_parity`, and
the export is recorded in the project's lineage (`.mlc/lineage/exports.jsonl`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlc.runtime import artifacts, lineage, onnx_export
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps._data import load_frame, load_model, need, out, split_xy

if TYPE_CHECKING:
    from mlc.compiler.ir.params import ExportParams

STEP = "export"
VERSION = "1"
SHA_TAG = "mlc.onnx_sha256"
PARITY_TAG = "mlc.onnx_parity"


def _log_to_mlflow(doc: dict[str, Any], package: Path, sha: str) -> None:
    """The package files on the registered version's run, and its parity tags."""
    from mlc.runtime.steps.register import (
        _mlflow_chatter_muted,
        _mlflow_uris_restored,
        _store_errors,
    )

    uri = str(doc["tracking_uri"])
    try:
        with _store_errors(uri), _mlflow_chatter_muted(), _mlflow_uris_restored():
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            for name in ("model.onnx", "export.json"):
                client.log_artifact(str(doc["mlflow_run_id"]), str(package / name), "onnx")
            name, version = str(doc["model_name"]), str(doc["version"])
            client.set_model_version_tag(name, version, SHA_TAG, sha)
            client.set_model_version_tag(name, version, PARITY_TAG, "passed")
    except StepError as exc:
        # register's store errors name that step: the same message, under this one.
        first = str(exc).splitlines()[0].split(": ", 1)[-1]
        raise StepError(STEP, first, exc.hint) from None


def run(
    params: ExportParams, inputs: dict[str, str], outputs: dict[str, str], ctx: StepContext
) -> dict[str, Any]:
    """Export, gate, write the `package`; log it to MLflow and lineage."""
    edge = params["edge"]
    if edge is None:
        raise StepError(
            STEP, "deployment.edge is not set", "set deployment.edge (format: onnx) for mode edge"
        )
    if edge["format"] != "onnx":
        raise StepError(STEP, f"edge format '{edge['format']}' is not supported", "format: onnx")
    mv_loc = need(inputs, "model_version", STEP)
    if not artifacts.exists(mv_loc, "model_version.json"):
        raise StepError(
            STEP,
            f"input 'model_version' at {mv_loc} has no model_version document",
            "run the register step first",
        )
    doc = artifacts.load_json(mv_loc, "model_version")
    package = out(outputs, "package", STEP)
    if "://" in package:
        raise StepError(STEP, f"output 'package' {package} is not a local folder", "use a path")
    model = load_model(inputs, "model", STEP, ctx)
    test = load_frame(inputs, "test", STEP)
    x, _ = split_xy(test, params["target"], STEP)
    info = {
        "model_name": doc.get("model_name", params["model_name"]),
        "version": str(doc.get("version")),
        "model_hash": doc.get("model_hash"),
        "model_uri": doc.get("model_uri"),
    }
    report = onnx_export.export_package(
        model,
        x,
        task=params["task"],
        features=list(params["features"]),
        edge=edge,
        contract_columns=dict(params["contract"]["columns"]),
        location=package,
        model_info=info,
    )
    sha = str(report["sha256"]["model.onnx"])
    if doc.get("mlflow_run_id") and doc.get("tracking_uri"):
        _log_to_mlflow(doc, Path(package), sha)
    else:
        ctx.logger.warning("step 'export': model_version has no MLflow run: package not logged")
    lineage.record_export(
        ctx.state,
        model_name=info["model_name"],
        version=info["version"],
        model_hash=info["model_hash"],
        onnx_sha256=sha,
        precision=report["precision"],
        quantized=("quantized" in report),
        run_id=ctx.run_id,
        package=str(Path(package).resolve()),
    )
    parity = report["parity"]
    summary: dict[str, Any] = {
        "model": info["model_name"],
        "version": info["version"],
        "precision": report["precision"],
        "rows": parity["rows"],
        "probe_rows": parity["probe_rows"],
        "onnx_sha256": sha[:12],
        "prestep": len(report["transforms_prestep"]),
    }
    if "max_abs_proba_diff" in parity:
        summary["max_abs_proba_diff"] = parity["max_abs_proba_diff"]
    else:
        summary["max_abs_diff"] = parity["max_abs_diff"]
    if "quantized" in report:
        summary["quantized_bytes"] = report["quantized"]["bytes"]
    return summary
