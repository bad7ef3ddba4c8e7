#!/usr/bin/env bash
# One-command install: a venv in .venv with every dependency and this package (editable).
# Versions are pinned in requirements.txt; see README "Install" for why the flags are needed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q -U pip setuptools wheel
# sam2 is an sdist: build it against the torch we install (no isolation) and skip its CUDA extension.
SAM2_BUILD_CUDA=0 .venv/bin/python -m pip install -q --no-build-isolation -r requirements.txt
.venv/bin/python -m pip install -q --no-build-isolation --no-deps --config-settings editable_mode=compat -e .
echo "omnir1-jax installed into .venv"
