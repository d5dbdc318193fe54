"""`mlc init`: a new spec project that validates as written, with a starter per framework.

`--template` picks the training section (and, for a user LightningModule or a Keras builder, the
module beside the spec that it names): `sklearn` (the default), `xgboost`, `lightgbm`,
`lightning` (the built-in MLP), `lightning-module` (your own `LightningModule`) and `keras`.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from mlc.compiler.diagnostics import Diagnostic, DiagnosticError, did_you_mean
from mlc.compiler.output import write_file
from mlc.specs.schema import json_schema_text

_SPEC = """\
# yaml-language-server: $schema=mlc.schema.json
apiVersion: mlc/v1
name: {name}
description: A churn classifier scaffolded by 'mlc init'; edit every section to fit.
owners: [you@example.com]

defaults:
  - _self_
  - env: dev

data:
  sources:
    - {{name: customers, format: csv, path: data/customers.csv}}
  contract:
    columns:
      customer_id: {{dtype: int, unique: true}}
      tenure_months: {{dtype: int, min: 0, max: 240}}
      monthly_spend: {{dtype: float, min: 0}}
      plan: {{dtype: category, allowed: [basic, plus, pro]}}
      churned: {{dtype: int, allowed: [0, 1]}}
  split: {{method: stratified, test_size: 0.25, {validation}seed: 42}}

features:
  target: churned
  transforms:
    - {{op: scale, columns: [tenure_months, monthly_spend]}}
    - {{op: one_hot, columns: [plan]}}
  selection: {{exclude: [customer_id]}}

{training}
evaluation:
  metrics: [roc_auc, accuracy]
  gates:
    - {{metric: roc_auc, op: '>=', threshold: 0.6}}
"""

_TRAINING = {
    "sklearn": """\
training:
  framework: sklearn
  model: {name: LogisticRegression, params: {max_iter: 500}}
""",
    "xgboost": """\
# needs pip install 'mlc[boost]'
training:
  framework: xgboost
  model: {name: XGBClassifier, params: {n_estimators: 300, max_depth: 3, learning_rate: 0.1}}
  boost:
    early_stopping: {patience: 20}  # rounds, on the validation split
""",
    "lightgbm": """\
# needs pip install 'mlc[boost]'
training:
  framework: lightgbm
  model: {name: LGBMClassifier, params: {n_estimators: 300, num_leaves: 15, learning_rate: 0.1}}
  boost:
    early_stopping: {patience: 20}  # rounds, on the validation split
""",
    "lightning": """\
# needs pip install 'mlc[torch]'
training:
  framework: lightning
  model: {name: tabular_mlp, params: {hidden: [64, 32]}}
  lightning:
    max_epochs: 30
    batch_size: 64
    learning_rate: 0.01
    early_stopping: {patience: 5}
""",
    "lightning-module": """\
# needs pip install 'mlc[torch]'; models/net.py is your LightningModule (run mlc with
# PYTHONPATH=. so that it imports); model.params go to its constructor
training:
  framework: lightning
  model: {name: churn_net, params: {width: 32, learning_rate: 0.01}}
  lightning:
    module: models.net:ChurnNet
    max_epochs: 30
    batch_size: 64
    early_stopping: {patience: 5}
""",
    "keras": """\
# needs pip install 'mlc[keras]'; models/keras_model.py builds the network (run mlc with
# PYTHONPATH=. so that it imports); model.params go to the builder
training:
  framework: keras
  model: {name: tabular_mlp, params: {width: 32}}
  keras:
    builder: models.keras_model:build_model
    backend: torch
    epochs: 30
    batch_size: 64
    learning_rate: 0.01
    early_stopping: {patience: 5}
""",
}
TEMPLATES = tuple(_TRAINING)
"""The names `mlc init --template` accepts."""

_MODULE = '''"""The churn model as a LightningModule.

mlc calls ChurnNet(input_dim, output_dim, params) and trains it on (x, y) batches: float32
features and int64 class indices.
"""

import lightning as L
import torch
from torch import nn


class ChurnNet(L.LightningModule):
    def __init__(self, input_dim, output_dim, params):
        super().__init__()
        width = int(params.get("width", 32))
        self.net = nn.Sequential(
            nn.Linear(input_dim, width), nn.ReLU(), nn.Linear(width, output_dim)
        )
        self.learning_rate = float(params.get("learning_rate", 1e-3))

    def forward(self, x):
        return self.net(x)  # logits, one per class

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y), batch_size=len(y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)
'''

_KERAS = '''"""The churn model as a Keras network; mlc calls build_model(input_dim, params) and
compiles it (Adam, the task's loss) when it comes back uncompiled."""

import keras


def build_model(input_dim, params):
    width = int(params.get("width", 32))
    return keras.Sequential(
        [
            keras.Input((input_dim,)),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(2),  # one logit per class
        ]
    )
'''

_DEV = (
    "# Development overlay: merged over mlc.yaml when 'env: dev' is selected.\n"
    "training:\n  seed: 42\n"
)
_PROD = (
    "# Production overlay: select with 'env=prod' on the command line.\ntraining:\n  retries: 2\n"
)


def _sample_csv(rows: int = 400) -> str:
    rng = random.Random(11)
    lines = ["customer_id,tenure_months,monthly_spend,plan,churned"]
    for i in range(rows):
        tenure = rng.randint(0, 72)
        plan = rng.choice(["basic", "plus", "pro"])
        spend = round(rng.uniform(10, 40) * {"basic": 1, "plus": 1.8, "pro": 3}[plan], 2)
        risk = 0.6 - tenure / 100 + (0.2 if plan == "basic" else 0) + rng.uniform(-0.3, 0.3)
        lines.append(f"{1000 + i},{tenure},{spend},{plan},{int(risk > 0.35)}")
    return "\n".join(lines) + "\n"


def scaffold(
    directory: Path, name: str | None = None, force: bool = False, template: str = "sklearn"
) -> list[Path]:
    """Write a spec project into `directory`; refuse to overwrite unless `force`."""
    if template not in _TRAINING:
        raise DiagnosticError(
            [
                Diagnostic(
                    "MLC042",
                    f"unknown template '{template}'",
                    hint=did_you_mean(template, TEMPLATES, "templates"),
                )
            ]
        )
    name = name or re.sub(r"[^a-z0-9-]+", "-", directory.resolve().name.lower()).strip("-")
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,62}", name or ""):
        raise DiagnosticError(
            [
                Diagnostic(
                    "MLC040",
                    f"'{name}' is not a valid system name",
                    hint="lower-case letters, digits and dashes, a letter first: --name NAME",
                )
            ]
        )
    early = "early_stopping" in _TRAINING[template]
    files = {
        "mlc.yaml": _SPEC.format(
            name=name,
            training=_TRAINING[template],
            validation="validation_size: 0.15, " if early else "",
        ),
        "env/dev.yaml": _DEV,
        "env/prod.yaml": _PROD,
        "data/customers.csv": _sample_csv(),
        "mlc.schema.json": json_schema_text(),
        ".gitignore": ".mlc/\nout/\n",
    }
    if template == "lightning-module":
        files["models/__init__.py"] = ""
        files["models/net.py"] = _MODULE
    elif template == "keras":
        files["models/__init__.py"] = ""
        files["models/keras_model.py"] = _KERAS
    existing = [directory / p for p in files if (directory / p).exists()]
    if existing and not force:
        raise DiagnosticError(
            [Diagnostic("MLC041", f"{existing[0]} already exists", hint="use --force to overwrite")]
        )
    written = []
    for rel, content in files.items():
        write_file(directory / rel, content)
        written.append(directory / rel)
    return written
