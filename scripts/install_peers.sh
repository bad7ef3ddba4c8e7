#!/usr/bin/env bash
# The peers' environment for benchmarks/peer_grpo.py: tunix (JAX) and TRL (PyTorch, CPU) in .venv-peers,
# separate from the project's .venv (their pins conflict with ours; README "Peers").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv-peers/bin/python ]; then
  "$PY" -m venv .venv-peers
fi
.venv-peers/bin/python -m pip install -q -U pip setuptools wheel
.venv-peers/bin/python -m pip install -q -r requirements-peers.txt
echo "tunix + TRL installed into .venv-peers"
