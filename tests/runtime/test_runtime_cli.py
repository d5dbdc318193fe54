"""`python -m mlc.runtime step ...`: the shell entry, its exit codes and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from support import CREDIT
from support.runtime import complete

from mlc.runtime import artifacts
from mlc.runtime.context import StepContext, StepError
from mlc.runtime.steps import get

DATA = Path(__file__).resolve().parents[1] / "runtime_data"


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlc.runtime", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_cli_ingest_then_split(tmp_path: Path) -> None:
    source = {
        "name": "applications",
        "format": "csv",
        "path": "data/applications.csv",
        "delimiter": ",",
        "join_on": [],
    }
    params = tmp_path / "p.json"
    params.write_text(json.dumps(complete("ingest", {"source": source, "engine": "pandas"})))
    done = _cli(
        "step",
        "ingest",
        "--params",
        f"@{params}",
        "--outputs",
        f"dataset={tmp_path / 'raw'}",
        "--project-dir",
        str(CREDIT.parent),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == 2000
    done = _cli(
        "step",
        "split",
        "--params",
        json.dumps(
            complete(
                "split",
                {"method": "stratified", "test_size": 0.25, "seed": 1, "target": "default"},
            )
        ),
        "--inputs",
        f"dataset={tmp_path / 'raw'}",
        "--outputs",
        f"train={tmp_path / 'tr'}",
        f"test={tmp_path / 'te'}",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"method": "stratified", "test": 500, "train": 1500}


def test_cli_missing_data_file_is_exit_1_without_traceback(tmp_path: Path) -> None:
    source = {"name": "x", "format": "csv", "path": "nope/missing.csv", "delimiter": ","}
    params = complete("ingest", {"source": {**source, "join_on": []}})
    done = _cli(
        "step",
        "ingest",
        "--params",
        json.dumps(params),
        "--outputs",
        f"dataset={tmp_path / 'raw'}",
        "--project-dir",
        str(tmp_path),
    )
    assert done.returncode == 1
    assert "data file not found" in done.stderr and "missing.csv" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "raw" / "_meta.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["step", "ingets"], "did you mean 'ingest'"),
        (["step", "ingest", "--params", "{bad"], "not valid JSON"),
        (["step", "ingest", "--params", "@/no/such.json"], "cannot read params file"),
        (["step", "split", "--inputs", "dataset"], "expects name=LOCATION"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_cli_bad_arguments_exit_2(args: list[str], message: str) -> None:
    done = _cli(*args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def _train_inputs(tmp_path: Path) -> dict[str, str]:
    df = pd.read_csv(CREDIT.parent / "data" / "applications.csv").head(300)
    df = df[["age", "income", "debt", "late_payments", "default"]]
    artifacts.save_dataframe(str(tmp_path / "train"), df)
    params = {
        "target": "default",
        "task": "classification",
        "transforms": [{"op": "scale", "columns": ["age", "income", "debt"], "method": "standard"}],
        "derived": [],
        "selection": {"include": None, "exclude": [], "method": "none", "k": None},
        "dtypes": {},
        "pii": [],
    }
    get("features")(
        params,
        {"train": str(tmp_path / "train")},
        {"transform": str(tmp_path / "tf")},
        StepContext(),
    )
    return {"train": str(tmp_path / "train"), "transform": str(tmp_path / "tf")}


def test_unknown_model_name_suggests(tmp_path: Path) -> None:
    inputs = _train_inputs(tmp_path)
    params = complete(
        "train",
        {
            "framework": "sklearn",
            "task": "classification",
            "target": "default",
            "model": {"name": "RandomForestClasifier", "params": {}},
        },
    )
    with pytest.raises(StepError, match="did you mean 'RandomForestClassifier'"):
        get("train")(params, inputs, {"model": str(tmp_path / "m")}, StepContext())
    done = _cli(
        "step",
        "train",
        "--params",
        json.dumps(params),
        "--inputs",
        *[f"{k}={v}" for k, v in inputs.items()],
        "--outputs",
        f"model={tmp_path / 'm'}",
    )
    assert done.returncode == 1 and "unknown model 'RandomForestClasifier'" in done.stderr


def test_custom_entry_point_trains_and_raising_one_is_named(tmp_path: Path) -> None:
    inputs = _train_inputs(tmp_path)
    sys.path.insert(0, str(DATA))
    try:
        base = complete(
            "train",
            {"framework": "custom", "task": "classification", "target": "default", "model": None},
        )
        summary = get("train")(
            {**base, "entry_point": "custom_entry:fit"},
            inputs,
            {"model": str(tmp_path / "m")},
            StepContext(),
        )
        assert summary["framework"] == "custom"
        model = artifacts.load_object(str(tmp_path / "m"))
        assert model.predict(
            artifacts.load_dataframe(inputs["train"]).drop(columns=["default"])
        ).shape == (300,)
        with pytest.raises(StepError, match=r"custom_entry:broken' raised RuntimeError"):
            get("train")(
                {**base, "entry_point": "custom_entry:broken"},
                inputs,
                {"model": str(tmp_path / "m2")},
                StepContext(),
            )
        assert not (tmp_path / "m2" / "_meta.json").exists()
    finally:
        sys.path.remove(str(DATA))


def test_lightning_trains_on_cpu_and_pickles(tmp_path: Path) -> None:
    inputs = _train_inputs(tmp_path)
    params = complete(
        "train",
        {
            "framework": "lightning",
            "task": "classification",
            "target": "default",
            "model": {"name": "tabular_mlp", "params": {"hidden": [16, 8]}},
            "lightning": {
                "max_epochs": 3,
                "batch_size": 64,
                "learning_rate": 0.01,
                "precision": "32-true",
                "accelerator": "cpu",
                "early_stopping": None,
                "module": None,
            },
            "distributed": {"strategy": "none", "devices": 1},
            "seed": 1,
            "max_time": 60,
        },
    )
    summary = get("train")(params, inputs, {"model": str(tmp_path / "m")}, StepContext())
    assert summary["epochs"] == 3 and summary["stopped"] == "max_epochs"
    model = artifacts.load_object(str(tmp_path / "m"))
    x = artifacts.load_dataframe(inputs["train"]).drop(columns=["default"])
    proba = model.predict_proba(x)
    assert proba.shape == (300, 2) and abs(float(proba.sum(axis=1).mean()) - 1) < 1e-5
    assert set(model.predict(x)) <= {0, 1}


def test_missing_value_robustness_fails_the_gate_with_a_reason(tmp_path: Path) -> None:
    inputs = _train_inputs(tmp_path)
    params = complete(
        "train",
        {
            "framework": "sklearn",
            "task": "classification",
            "target": "default",
            "model": {"name": "LogisticRegression", "params": {"max_iter": 300}},
        },
    )
    get("train")(params, inputs, {"model": str(tmp_path / "m")}, StepContext())
    robustness = [
        {"kind": "missing", "features": ["age"], "magnitude": 0.2, "max_drop": 0.05},
        {"kind": "noise", "features": ["income"], "magnitude": 0.1, "max_drop": 0.5},
    ]
    summary = get("evaluate")(
        {
            "metrics": ["accuracy", "f1"],
            "directions": {"accuracy": "higher", "f1": "higher"},
            "task": "classification",
            "target": "default",
            "robustness": robustness,
        },
        {"model": str(tmp_path / "m"), "test": inputs["train"]},
        {"metrics": str(tmp_path / "met"), "predictions": str(tmp_path / "pred")},
        StepContext(),
    )
    assert summary["robustness"][0]["drop"] is None
    assert summary["robustness"][1]["drop"] is not None
    verdict = get("gate")(
        {
            "gates": [],
            "champion": None,
            "fairness": None,
            "robustness": robustness,
            "model_name": "m",
        },
        {"metrics": str(tmp_path / "met")},
        {"verdict": str(tmp_path / "v")},
        StepContext(),
    )
    assert verdict["failed"] == ["robustness missing drop"]
    checks = artifacts.load_json(str(tmp_path / "v"), "verdict")["checks"]
    assert "add an impute transform" in checks[0]["reason"]


@pytest.mark.slow
def test_every_credit_step_through_the_shell_entry(tmp_path: Path) -> None:
    import os

    from support.runtime import SKIP, ir_of

    from mlc.compiler.ir.model import Layer

    small = {"name": "HistGradientBoostingClassifier", "params": {"max_iter": 20}}
    patch = {"tune": {"trials": 2, "parallelism": 1, "model": small}, "train": {"model": small}}
    env = {**os.environ, "MLC_PSEUDONYM_KEY": "shell-key"}
    seen = []
    for step in ir_of(CREDIT).steps:
        if step.layer != Layer.PIPELINE or step.kind.value in SKIP:
            continue
        params_file = tmp_path / f"{step.id}.params.json"
        params_file.write_text(json.dumps({**step.params, **patch.get(step.id, {})}))
        args = [
            "step",
            step.kind.value,
            "--params",
            f"@{params_file}",
            "--project-dir",
            str(CREDIT.parent),
            "--state-dir",
            str(tmp_path / "state"),
        ]
        if step.inputs:
            args += ["--inputs", *[f"{n}={tmp_path / a}" for n, a in step.inputs.items()]]
        args += ["--outputs", *[f"{n}={tmp_path / a}" for n, a in step.outputs.items()]]
        done = subprocess.run(
            [sys.executable, "-m", "mlc.runtime", *args],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert done.returncode == 0, f"{step.id}: {done.stderr}"
        json.loads(done.stdout)
        seen.append(step.kind.value)
    assert seen[-1] == "gate" and len(seen) == 10
    verdict = artifacts.load_json(str(tmp_path / "gate.verdict"), "verdict")
    assert verdict["passed"] is True


def test_budgets_stop_training_cleanly(tmp_path: Path) -> None:
    import time

    from mlc.runtime.context import BudgetExceeded

    inputs = _train_inputs(tmp_path)
    lightning = complete("train", {})["lightning"]
    params = complete(
        "train",
        {
            "framework": "lightning",
            "task": "classification",
            "target": "default",
            "model": {"name": "tabular_mlp", "params": {"hidden": [8]}},
            "lightning": {
                **lightning,
                "max_epochs": 100000,
                "batch_size": 16,
                "accelerator": "cpu",
            },
            "distributed": {"strategy": "none", "devices": 1},
            "seed": 1,
            "max_time": 2,
        },
    )
    summary = get("train")(params, inputs, {"model": str(tmp_path / "m")}, StepContext())
    assert summary["stopped"] == "max_time" and summary["epochs"] < 100000
    assert summary["seconds"] < 60
    late = StepContext(deadline=time.monotonic() - 1)
    with pytest.raises(BudgetExceeded, match="time budget was spent"):
        get("train")(params, inputs, {"model": str(tmp_path / "m2")}, late)
    assert not (tmp_path / "m2" / "_meta.json").exists()
