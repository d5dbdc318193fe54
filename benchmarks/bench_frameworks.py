"""XGBoost and LightGBM training through mlc's train step against the library called directly.

Set-up (once per work folder): the diabetes example's rows are resampled with small seeded
noise to ROWS rows (within the contract's bounds) and the pipeline runs up to `features`
through the runtime, so both sides read the same train and validation parts and the same
unfitted transform.

Each timed run is a fresh process, mlc and the baseline alternating (a change in the shared
box's load hits both):

- mlc: `python -m mlc.runtime step train` (what a KFP component runs) with the IR's params of
  `+framework=F` on those artifacts: parameters checked against the library, the transform
  fitted, native early stopping on the validation part, the pipeline saved as a hashed
  artifact;
- baseline: pandas reads the same Parquet parts, joblib loads the transform, which is fitted
  and applied, the library's estimator is fitted with the same parameters and the same early
  stopping on the validation rows, and the pipeline is saved with joblib.

    .venv/bin/python benchmarks/bench_frameworks.py [--rows 200000] [--runs 5] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "diabetes"
FRAMEWORKS = ("xgboost", "lightgbm")

_DIRECT = """
import json, sys
import joblib, pandas as pd
from sklearn.pipeline import Pipeline
train_dir, val_dir, transform_dir, framework, params, out = sys.argv[1:7]
params = json.loads(params)
train = pd.read_parquet(f"{train_dir}/data.parquet")
val = pd.read_parquet(f"{val_dir}/data.parquet")
transform = joblib.load(f"{transform_dir}/object.joblib")
x, y = train.drop(columns=["progression"]), train["progression"]
xv, yv = val.drop(columns=["progression"]), val["progression"]
matrix = transform.fit_transform(x, y)
evals = transform.transform(xv)
if framework == "xgboost":
    import xgboost
    model = xgboost.XGBRegressor(**params, random_state=7, early_stopping_rounds=20)
    model.fit(matrix, y, eval_set=[(evals, yv)], verbose=False)
    rounds = model.best_iteration + 1
else:
    import lightgbm
    model = lightgbm.LGBMRegressor(**params, random_state=7, verbose=-1)
    model.fit(matrix, y, eval_X=(evals,), eval_y=(yv,),
              callbacks=[lightgbm.early_stopping(20, verbose=False)])
    rounds = model.best_iteration_
joblib.dump(Pipeline([("transform", transform), ("model", model)]), out)
print(json.dumps({"rounds": rounds}))
"""


def _data(project: Path, rows: int) -> None:
    """ROWS diabetes-shaped rows: the real ones resampled, numbers jittered by 2% (seeded)."""
    import numpy as np
    import pandas as pd

    base = pd.read_csv(EXAMPLE / "data" / "diabetes.csv")
    rng = np.random.default_rng(7)
    frame = base.sample(rows, replace=True, random_state=7).reset_index(drop=True)
    for column in ("age", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6", "progression"):
        jitter = rng.normal(1.0, 0.02, rows)
        frame[column] = (frame[column] * jitter).round(4)
    frame["age"] = frame["age"].clip(0, 120)
    frame["bmi"] = frame["bmi"].clip(10, 70)
    frame["bp"] = frame["bp"].clip(40, 200)
    frame["patient_id"] = range(1, rows + 1)
    frame.to_csv(project / "data" / "diabetes.csv", index=False)


def _prepare(work: Path, rows: int) -> tuple[Path, Path]:
    """The project copy and the artifact root holding the split parts and the transform."""
    from mlc.compiler.api import check
    from mlc.compiler.ir.model import Layer, StepKind
    from mlc.runtime.context import StepContext
    from mlc.runtime.steps import get

    project = work / "diabetes"
    root = work / "artifacts"
    if (work / "ready.json").exists():
        return project, root
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".mlc", "out"))
    _data(project, rows)
    ir = check(project / "mlc.yaml", ("+framework=xgboost",)).ir
    ctx = StepContext(run_id="prep", project_dir=project, state_dir=work / "state")
    for step in ir.steps:
        if step.kind in (StepKind.TRAIN, StepKind.TUNE):
            break
        if step.layer != Layer.PIPELINE:
            continue
        inputs = {n: str(root / a) for n, a in step.inputs.items()}
        outputs = {n: str(root / a) for n, a in step.outputs.items()}
        get(step.kind.value)(step.params, inputs, outputs, ctx)
    (work / "ready.json").write_text(json.dumps({"rows": rows}))
    return project, root


def _timed(cmd: list[str]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed:\n{done.stderr[-3000:]}")
    return wall, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.gettempdir()) / f"mlc-bench-frameworks-{args.rows}"
    project, root = _prepare(work, args.rows)

    from mlc.compiler.api import check
    from mlc.compiler.ir.model import StepKind

    results = {}
    for framework in FRAMEWORKS:
        step = check(project / "mlc.yaml", (f"+framework={framework}",)).ir.first(StepKind.TRAIN)
        params = json.dumps(step.params["model"]["params"])
        parts = {n: str(root / a) for n, a in step.inputs.items()}
        (work / f"{framework}.params.json").write_text(json.dumps(step.params))
        mlc_args = [
            sys.executable, "-m", "mlc.runtime", "step", "train",
            "--params", f"@{work / f'{framework}.params.json'}",
            "--project-dir", str(project), "--state-dir", str(work / "state"), "--inputs",
            *(f"{n}={loc}" for n, loc in parts.items()),
        ]  # fmt: skip
        direct_cmd = [
            sys.executable, "-c", _DIRECT, parts["train"], parts["validation"],
            parts["transform"], framework, params,
        ]  # fmt: skip
        ours, theirs = [], []
        for i in range(args.runs):
            out = work / f"out-{framework}-{i}"
            shutil.rmtree(out, ignore_errors=True)
            wall, a = _timed([*mlc_args, "--outputs", f"model={out / 'model'}"])
            ours.append(wall)
            wall, b = _timed([*direct_cmd, str(work / f"direct-{framework}-{i}.joblib")])
            theirs.append(wall)
            # the same trees on both sides, or the comparison means nothing
            kept = a["rounds"] if framework == "xgboost" else a.get("best_iteration")
            assert kept == b["rounds"], (a, b)
        results[framework] = {
            "mlc_s": round(statistics.median(ours), 3),
            "direct_s": round(statistics.median(theirs), 3),
            "ratio": round(statistics.median(ours) / statistics.median(theirs), 3),
            "rounds": b["rounds"],
        }
        print(framework, json.dumps(results[framework]), flush=True)
    print(json.dumps({"rows": args.rows, "runs": args.runs, "results": results}, indent=2))


if __name__ == "__main__":
    main()
