"""`mlc init`: a new spec project that validates as written."""

from __future__ import annotations

import random
import re
from pathlib import Path

from mlc.compiler.diagnostics import Diagnostic, DiagnosticError
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
  split: {{method: stratified, test_size: 0.25, seed: 42}}

features:
  target: churned
  transforms:
    - {{op: scale, columns: [tenure_months, monthly_spend]}}
    - {{op: one_hot, columns: [plan]}}
  selection: {{exclude: [customer_id]}}

training:
  framework: sklearn
  model: {{name: LogisticRegression, params: {{max_iter: 500}}}}

evaluation:
  metrics: [roc_auc, accuracy]
  gates:
    - {{metric: roc_auc, op: '>=', threshold: 0.6}}
"""

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


def scaffold(directory: Path, name: str | None = None, force: bool = False) -> list[Path]:
    """Write a spec project into `directory`; refuse to overwrite unless `force`."""
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
    files = {
        "mlc.yaml": _SPEC.format(name=name),
        "env/dev.yaml": _DEV,
        "env/prod.yaml": _PROD,
        "data/customers.csv": _sample_csv(),
        "mlc.schema.json": json_schema_text(),
        ".gitignore": ".mlc/\nout/\n",
    }
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
