#!/usr/bin/env bash
# Create .venv with mlc and every extra, from the committed constraints (what CI tested).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q -U pip setuptools wheel
.venv/bin/python -m pip install -q -c constraints.txt -e '.[all]'
for plugin in tests/plugins/*/; do
  [ -f "$plugin/pyproject.toml" ] && .venv/bin/python -m pip install -q --no-deps -e "$plugin"
done
.venv/bin/python -m pip check
