"""The train step's entry under DDP across two "nodes" on this machine's CPU (gloo).

Each node runs the command of the TrainJob the kfp target emits (`sh -ec …`, which starts
`python3 -m mlc.runtime step train`, the entry `mlc run` uses), with the variables Kubeflow
Trainer's torch runtime sets (`PET_NODE_RANK`, `PET_MASTER_ADDR`, `PET_MASTER_PORT`) and those
the launcher fills in; each node spawns its ranks, node 0's output is the step's model. Here the
two nodes are two processes on 127.0.0.1, one rank each.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from support.runtime import complete
from support.tools import REPO

from mlc.compiler.api import compile_spec
from mlc.runtime import artifacts
from mlc.runtime.context import StepContext
from mlc.runtime.steps import get

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_two_nodes_train_one_model_that_loads_like_a_single_process_one(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    rng = np.random.default_rng(0)
    n = 400
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = (a - b > 0).astype(int)
    frame = pd.DataFrame({"a": a, "b": b, "y": y})
    artifacts.save_dataframe(str(tmp_path / "train"), frame)
    get("features")(
        {
            "target": "y",
            "task": "classification",
            "transforms": [{"op": "scale", "columns": ["a", "b"], "method": "standard"}],
            "derived": [],
            "selection": {"include": None, "exclude": [], "method": "none", "k": None},
            "dtypes": {},
            "pii": [],
        },
        {"train": str(tmp_path / "train")},
        {"transform": str(tmp_path / "transform")},
        StepContext(),
    )
    params = complete(
        "train",
        {
            "framework": "lightning",
            "task": "classification",
            "target": "y",
            "model": {"name": "tabular_mlp", "params": {"hidden": [16]}},
            "lightning": {
                "max_epochs": 3,
                "batch_size": 50,
                "learning_rate": 0.05,
                "precision": "32-true",
                "accelerator": "cpu",
                "early_stopping": None,
                "module": None,
            },
            "distributed": {"strategy": "ddp", "devices": 1},
            "max_time": None,
            "seed": 3,
        },
    )
    # The node command of the TrainJob for a two-node Lightning spec, as the launcher submits it
    compile_spec(
        REPO / "examples" / "diabetes" / "mlc.yaml",
        ["kfp"],
        tmp_path / "out",
        ["training.resources.nodes=2", "+training.distributed.strategy=ddp"],
    )
    package = yaml.safe_load_all((tmp_path / "out" / "kfp" / "pipeline.yaml").read_text())
    source = next(package)["deploymentSpec"]["executors"]["exec-train"]["container"]["command"]
    text = source[-1]
    start = text.index("mlc_json.loads('") + len("mlc_json.loads(")
    trainer = json.loads(ast.literal_eval(text[start : text.index("')\n", start) + 1]))["spec"][
        "trainer"
    ]
    fixed = {e["name"]: e["value"] for e in trainer["env"] if e.get("value")}
    assert fixed == {"MLC_NUM_NODES": "2"}
    # the launcher's work folder: the step's inputs under in/ (this spec also has validation)
    work = tmp_path / "work"
    for name in ("train", "transform"):
        shutil.copytree(tmp_path / name, work / "in" / name)
    shutil.copytree(tmp_path / "train", work / "in" / "validation")
    port = _free_port()
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            **fixed,
            "MLC_PARAMS": json.dumps(params),
            "MLC_WORKDIR": str(work),
            "MLC_PROJECT_DIR": str(tmp_path),
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / f'mlflow-{rank}.db'}",
            "PET_NNODES": "2",
            "PET_NODE_RANK": str(rank),
            "PET_MASTER_ADDR": "127.0.0.1",
            "PET_MASTER_PORT": str(port),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "OMP_NUM_THREADS": "1",
        }
        procs.append(
            subprocess.Popen(
                trainer["command"],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]

    models = [artifacts.load_object(str(work / f"node-{r}" / "model")) for r in range(2)]
    # DDP kept the ranks in step: both nodes end with the same weights
    weights = [m.named_steps["model"].module_.state_dict() for m in models]
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert np.array_equal(weights[0][key].numpy(), weights[1][key].numpy()), key
    # ... and not the weights of one process on all rows: each rank trained on its half
    get("train")(
        params,
        {
            "train": str(tmp_path / "train"),
            "transform": str(tmp_path / "transform"),
            "validation": str(tmp_path / "train"),
        },
        {"model": str(tmp_path / "single")},
        StepContext(project_dir=tmp_path, state_dir=tmp_path / "state-single"),
    )
    single = artifacts.load_object(str(tmp_path / "single"))
    alone = single.named_steps["model"].module_.state_dict()
    assert not all(np.array_equal(alone[k].numpy(), weights[0][k].numpy()) for k in alone)
    # node 0's model is the step's model: it loads and scores like any trained pipeline
    model = models[0]
    x = frame[["a", "b"]]
    proba = model.predict_proba(x)
    assert proba.shape == (n, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert (model.predict(x) == y).mean() > 0.85
    assert model.named_steps["model"].epochs_ == 3
