"""A registered model loads and predicts in a stock MLflow environment without mlc installed.

The separate venv has its own interpreter prefix and sees the installed libraries (MLflow,
scikit-learn, pandas, skops) through a `.pth` line, but not mlc: the editable install's import
hook lives in a `.pth` file of the other venv, which a path line does not run. The test first
proves `import mlc` fails there, then loads the credit champion with `mlflow.pyfunc.load_model`
(what MLServer's and KServe's mlflow runtimes call) and compares its answers with mlc's own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pandas as pd
import pytest
from support import EXAMPLES, REPO

pytestmark = pytest.mark.slow

MLC = str(REPO / ".venv" / "bin" / "mlc")
KEY = "stock-load-key"
FAST = ["tuning.trials=2", "tuning.cv_folds=2", "tuning.parallelism=1"]

LOAD = r"""
import json, sys
import mlflow
import pandas as pd
uri, rows = sys.argv[1], sys.argv[2]
mlflow.set_tracking_uri(uri)
mlflow.set_registry_uri(uri)
model = mlflow.pyfunc.load_model("models:/credit-risk@champion")
frame = pd.read_json(rows, orient="records")
print(json.dumps([int(v) for v in model.predict(frame)]))
"""


def _stock_venv(folder: Path) -> Path:
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    shared = sysconfig.get_paths()["purelib"]
    Path(site, "shared-libraries.pth").write_text(shared + "\n")
    return python


def test_the_registered_model_loads_where_mlc_is_not_installed(tmp_path: Path) -> None:
    project = tmp_path / "credit"
    shutil.copytree(EXAMPLES / "credit", project, ignore=shutil.ignore_patterns(".mlc", "out"))
    env = {**os.environ, "MLC_PSEUDONYM_KEY": KEY}
    ran = subprocess.run(
        [MLC, "run", "mlc.yaml", "-q", *FAST],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]

    python = _stock_venv(tmp_path / "stock")
    clean = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    probe = subprocess.run(
        [str(python), "-c", "import mlc"], capture_output=True, text=True, env=clean, cwd=tmp_path
    )
    assert probe.returncode != 0 and "No module named 'mlc'" in probe.stderr

    rows = pd.read_csv(project / "data" / "applications.csv").head(40).drop(columns=["default"])
    rows_file = tmp_path / "rows.json"
    rows.to_json(rows_file, orient="records")
    uri = f"sqlite:///{project / '.mlc' / 'mlflow.db'}"
    loaded = subprocess.run(
        [str(python), "-c", LOAD, uri, str(rows_file)],
        capture_output=True,
        text=True,
        env=clean,
        cwd=tmp_path,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    stock = json.loads(loaded.stdout.strip().splitlines()[-1])

    from mlc.runtime.context import StepContext
    from mlc.runtime.steps._data import bind_secrets
    from mlc.runtime.steps.batch_predict import load_registered

    model = load_registered("credit-risk", "1", uri)
    bind_secrets(model, StepContext(project_dir=project, secrets={"MLC_PSEUDONYM_KEY": KEY}))
    frame = pd.read_json(rows_file, orient="records")
    assert stock == [int(v) for v in model.predict(frame)]
