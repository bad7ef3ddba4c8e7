"""The same Thinker code on a (data=2, fsdp=2, tensor=2) mesh of 8 fake CPU devices (subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_sharded_logits_and_group_sampling(tmp_path):
    flags = "--xla_force_host_platform_device_count=8 " + os.environ.get("XLA_FLAGS", "")
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sharded_worker.py")
    proc = subprocess.run(
        [sys.executable, worker, str(tmp_path / "ckpt")], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    # q_proj kernel [64, 64] is split over fsdp (rows) and tensor (columns): each device holds a quarter.
    assert res["q_shape"] == [64, 64] and res["q_shard_shape"] == [32, 32]
    assert res["logit_diff"] <= 1e-5
    assert res["distinct_samples"] == 4
    assert res["logprob_diff"] <= 1e-4
    # decode_gather: inside generate the decoder's q_proj kernel is split over tensor only (gathered over fsdp),
    # the vision encoder's keeps its fsdp rows; the values and the sampled group are unchanged
    assert res["decode_specs"] == {"q": [None, "tensor"], "vision_q": ["fsdp", "tensor"]}
    assert res["decode_values_equal"]
    assert res["gather_same_tokens"] and res["gather_logprob_diff"] <= 1e-5
