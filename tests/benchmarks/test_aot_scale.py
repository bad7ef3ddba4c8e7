"""benchmarks/aot_scale.py compiles the tiny config's GRPO update for a TPU v5p 2x2x1 slice (4 chips) with the
real TPU compiler, and the per-chip argument bytes it reports match memory_report's parameters + optimiser state.

Needs ``libtpu`` (requirements-tpu.txt, a separate venv): skipped with a reason when it is not importable.
Runs in a subprocess (with libtpu importable JAX probes for TPUs at start-up). A few minutes of CPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("libtpu") is None,
    reason="libtpu is not installed (pip install -r requirements-tpu.txt in a separate venv)",
)
def test_tiny_update_compiles_for_v5p_and_its_arguments_match_memory_report(tmp_path):
    out = tmp_path / "aot.json"
    env = dict(os.environ, TPU_WORKER_HOSTNAMES="localhost", TPU_ACCELERATOR_TYPE="v5p-8")
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    cmd = [
        sys.executable,
        os.path.join(ROOT, "benchmarks", "aot_scale.py"),
        "--config",
        os.path.join(ROOT, "experiments", "synthetic_cpu.py"),
        "--topology",
        "v5p:2x2x1",
        "--programs",
        "update",
        "--set",
        "mesh.fsdp=4",
        "--set",  # the shapes counted by hand below (the demo's own recipe is smaller)
        "data.s1_max_pixels=12544",
        "--set",
        "grpo.max_new_tokens=176",
        "--prompt-len",
        "256",
        "--json",
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3000, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-4000:]
    (row,) = json.loads(out.read_text())
    assert row["chips"] == 4 and row["mesh"] == {"data": 1, "fsdp": 4, "tensor": 1} and row["fits"]

    from omnir1_jax.config import load_config
    from omnir1_jax.models.qwen2_5_omni import fsdp_tp, memory_report, tiny

    exp = load_config(os.path.join(ROOT, "experiments", "synthetic_cpu.py"))
    cfg = tiny(**dict(exp.model.overrides))
    rep = memory_report(cfg, {"data": 1, "fsdp": 4, "tensor": 1}, fsdp_tp(), param_dtype="float32", opt_dtype="float32")
    # Arguments: policy parameters + AdamW's two moments (memory_report's total) + the frozen reference's
    # parameters + the batch, counted by hand for these shapes: 4 prompts x group 8 = 32 rows of 256
    # prompt and 176 completion tokens; 8 frames of 16 * 28 * 28 px -> a [4, 4, 16] patch grid per prompt
    # (256 patches, 64 tokens).
    chips = 4
    pixels = 4 * 256 * 1176 * 4  # float32 patches, replicated
    layout = (256 + 256 + 1024 * 2 + 1024 + 1024) * 4  # window / reverse index, rot_pos, two segment ids
    positions = 32 * 64 * 4  # placeholder positions of the 32 repeated rows, replicated
    rows = (32 * 256 * 4 * (1 + 1 + 3) + 32 * 4 + 32 * 176 * 4 + 32 * 4) / chips  # ids, mask, 3-D positions,
    # rope deltas, completions, advantages: split over the 4 chips
    expected = rep["total_bytes"] + rep["param_bytes"] + pixels + layout + positions + rows
    arg = row["arg_gb"] * 1e9
    # The TPU pads small arrays to its tiles (e.g. the 32-wide vision kernels): a few per cent more.
    assert expected <= arg <= 1.1 * expected, (arg, expected)
    # The update's outputs are the new parameters and optimiser state, donated in place of the arguments.
    assert row["alias_gb"] * 1e9 >= 0.95 * rep["total_bytes"]
