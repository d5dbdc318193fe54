"""Generated IRs of tiny steps for the local executor's tests (and the subprocess they spawn).

The steps are real: each reads its input DataFrame from Parquet through `mlc.runtime.artifacts`
and writes a new one, like a pipeline step would.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from mlc.compiler.ir import ArtifactType, IRGraph, StepKind
from mlc.compiler.ir.build import IRBuilder
from mlc.runtime import artifacts
from mlc.runtime.context import StepError


def make_frame(rows: int = 1000, cols: int = 10, seed: int = 0) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(rows, cols)), columns=[f"c{i}" for i in range(cols)])


def source_step(
    params: dict[str, Any], inputs: dict[str, str], outputs: dict[str, str], ctx: Any
) -> dict[str, Any]:
    import pandas as pd

    path = ctx.resolve(params["source"]["path"])
    if not Path(path).exists():
        raise StepError(ctx.step_id, f"data file {path} does not exist", "check the path")
    df = pd.read_csv(path)
    digest = artifacts.save_dataframe(outputs["data"], df)
    return {"rows": len(df), "hash": digest}


def add_step(
    params: dict[str, Any], inputs: dict[str, str], outputs: dict[str, str], ctx: Any
) -> dict[str, Any]:
    df = artifacts.load_dataframe(inputs["data"])
    if params.get("sleep"):
        time.sleep(float(params["sleep"]))
    if params.get("fail"):
        raise StepError(ctx.step_id, "asked to fail", "drop 'fail' from the params")
    calls = os.environ.get("MLC_TEST_CALLS")
    if calls:
        with open(calls, "a") as fh:
            fh.write(ctx.step_id + "\n")
    df = df + float(params.get("add", 1))
    artifacts.save_dataframe(outputs["data"], df)
    return {"rows": len(df)}


def gate_step(
    params: dict[str, Any], inputs: dict[str, str], outputs: dict[str, str], ctx: Any
) -> dict[str, Any]:
    df = artifacts.load_dataframe(inputs["data"])
    value = float(df["c0"].mean())
    passed = value >= float(params["threshold"])
    doc = {
        "passed": passed,
        "checks": [
            {
                "name": "c0_mean",
                "value": value,
                "op": ">=",
                "threshold": params["threshold"],
                "passed": passed,
            }
        ],
    }
    artifacts.save_json(outputs["verdict"], "verdict", doc, "verdict", passed=passed)
    return {"passed": passed}


def publish_step(
    params: dict[str, Any], inputs: dict[str, str], outputs: dict[str, str], ctx: Any
) -> dict[str, Any]:
    artifacts.save_json(
        outputs["model_version"], "model_version", {"version": "1"}, "model_version"
    )
    return {"published": True}


STEPS = {
    "ingest": source_step,
    "features": add_step,
    "gate": gate_step,
    "register": publish_step,
}


def chain_ir(
    n: int,
    csv: str = "data.csv",
    sleep: float = 0.0,
    fail_at: int | None = None,
    threshold: float | None = None,
) -> IRGraph:
    """ingest -> n `features` steps -> [gate -> register (when gate.passed)]."""
    b = IRBuilder()
    prev = b.add(
        "ingest",
        StepKind.INGEST,
        "data.sources[0]",
        params={"source": {"format": "csv", "path": csv}},
        outputs={"data": (ArtifactType.DATASET, {})},
    )["data"]
    for i in range(n):
        params: dict[str, Any] = {"add": 1, "index": i}
        if sleep:
            params["sleep"] = sleep
        if fail_at == i:
            params["fail"] = True
        prev = b.add(
            f"s{i:04d}",
            StepKind.FEATURES,
            "features",
            params=params,
            inputs={"data": prev},
            outputs={"data": (ArtifactType.DATASET, {})},
        )["data"]
    if threshold is not None:
        verdict = b.add(
            "gate",
            StepKind.GATE,
            "evaluation.gates",
            params={"threshold": threshold},
            inputs={"data": prev},
            outputs={"verdict": (ArtifactType.VERDICT, {})},
        )["verdict"]
        b.add(
            "register",
            StepKind.REGISTER,
            "governance",
            inputs={"verdict": verdict},
            outputs={"model_version": (ArtifactType.MODEL_VERSION, {})},
            when="gate.passed",
            cache=False,
        )
    return IRGraph("chain", {"spec_hash": "0" * 64}, {}, b.steps, b.artifacts)


def write_csv(folder: Path, rows: int = 200, seed: int = 0) -> Path:
    path = folder / "data.csv"
    make_frame(rows, 10, seed).to_csv(path, index=False)
    return path
