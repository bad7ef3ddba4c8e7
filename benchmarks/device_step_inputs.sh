#!/usr/bin/env bash
# One run of benchmarks/bench_step_inputs.py on a lent GPU machine, with the machine's own PyTorch, JAX and
# transformers, and the pure-Python packages its image lacks (sam2, hydra-core, omegaconf, antlr4) taken from a
# folder of this checkout.
#
# Prepare here, right before the call (.devsite/ is git-ignored and travels with the call's `carry`; remove it
# afterwards: it holds third-party files):
#     bash benchmarks/device_step_inputs.sh --prepare        # copies them out of .venv into .devsite/
# On the device (the call's command; `carry: [".devsite"]`; name nvidia-h200 for the update's ~80 GB):
#     bash benchmarks/device_step_inputs.sh                  # rows in $OUT/step_inputs.json, log in $OUT
set -uo pipefail
cd "$(dirname "$0")/.."
SITE=.devsite
if [[ "${1:-}" == "--prepare" ]]; then
    src=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    rm -rf "$SITE" && mkdir -p "$SITE"
    for pkg in sam2 hydra omegaconf antlr4; do cp -r "$src/$pkg" "$SITE/"; done
    du -sh "$SITE"
    exit 0
fi
[[ -d "$SITE" ]] || { echo "no $SITE/: run 'bash benchmarks/device_step_inputs.sh --prepare' first" >&2; exit 2; }
out=${OUT:-runs/device}
mkdir -p "$out"
export PYTHONPATH="$PWD/$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c 'import torch, jax, transformers, flax; print("torch", torch.__version__, "jax", jax.__version__,
"transformers", transformers.__version__, "flax", flax.__version__)'
    python3 benchmarks/bench_step_inputs.py --json "$out/step_inputs.json" "$@"
} 2>&1 | tee "$out/step_inputs.log"
