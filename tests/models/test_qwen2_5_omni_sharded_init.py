"""init_model(mesh=, sharding=fsdp_tp()) creates every weight in its NamedSharding (8 fake CPU devices, subprocess).

Expected specs are written by hand from the layout: model width ("embed") over fsdp, heads / MLP / vocabulary
over tensor, norms and the audio conv front end replicated, a mesh axis of size 1 or one that does not divide
the dimension dropped. Tiny config: hidden 64, 4 heads of 16 (2 kv heads), MLP 128, vocabulary 512, vision
width 32 (merger 128), patch 1176.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

EXPECTED = {
    "(1, 8, 1)": {
        "language_model.embed_tokens.weight": ([None, "fsdp"], [512, 8]),
        "language_model.layers.0.self_attn.q_proj.kernel": (["fsdp", None], [8, 64]),
        "language_model.layers.0.self_attn.q_proj.bias": ([None], [64]),
        "language_model.layers.0.self_attn.k_proj.kernel": (["fsdp", None], [8, 32]),
        "language_model.layers.0.self_attn.o_proj.kernel": ([None, "fsdp"], [64, 8]),
        "language_model.layers.1.mlp.down_proj.kernel": ([None, "fsdp"], [128, 8]),
        "language_model.layers.1.input_layernorm.weight": ([None], [64]),
        "lm_head.kernel": (["fsdp", None], [8, 512]),
        "visual.blocks.0.attn.q.kernel": (["fsdp", None], [4, 32]),
        "visual.patch_embed.proj.kernel": ([None, "fsdp"], [1176, 4]),
        "visual.merger.mlp_0.kernel": (["fsdp", None], [16, 128]),
        "audio_tower.conv1.kernel": ([None, None, None], [3, 128, 32]),
    },
    "(1, 4, 2)": {
        "language_model.embed_tokens.weight": (["tensor", "fsdp"], [256, 16]),
        "language_model.layers.0.self_attn.q_proj.kernel": (["fsdp", "tensor"], [16, 32]),
        "language_model.layers.0.self_attn.q_proj.bias": (["tensor"], [32]),
        "language_model.layers.0.self_attn.k_proj.kernel": (["fsdp", "tensor"], [16, 16]),
        "language_model.layers.0.self_attn.o_proj.kernel": (["tensor", "fsdp"], [32, 16]),
        "language_model.layers.1.mlp.down_proj.kernel": (["tensor", "fsdp"], [64, 16]),
        "language_model.layers.1.input_layernorm.weight": ([None], [64]),
        "lm_head.kernel": (["fsdp", "tensor"], [16, 256]),
        "visual.blocks.0.attn.q.kernel": (["fsdp", "tensor"], [8, 16]),
        "visual.patch_embed.proj.kernel": ([None, "fsdp"], [1176, 8]),  # 1176 rows: "patch" is never split
        "visual.merger.mlp_0.kernel": (["fsdp", "tensor"], [32, 64]),
        "audio_tower.conv1.kernel": ([None, None, None], [3, 128, 32]),
    },
}


@pytest.fixture(scope="module")
def result():
    flags = "--xla_force_host_platform_device_count=8 " + os.environ.get("XLA_FLAGS", "")
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    worker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sharded_init_worker.py")
    proc = subprocess.run([sys.executable, worker], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mesh", ["(1, 8, 1)", "(1, 4, 2)"])
def test_init_model_creates_weights_in_their_logical_sharding(result, mesh):
    res = result[mesh]
    for name, (spec, shard_shape) in EXPECTED[mesh].items():
        assert res["specs"][name] == spec, name
        assert res["shard_shapes"][name] == shard_shape, name
    assert res["all_named_on_mesh"]
    # param_partition_specs and abstract_model(mesh=...) give the same layout as the created arrays.
    assert res["specs_agree"] and res["abstract_agree"]
    # The activation constraint is part of the model from construction: rows over data x fsdp, and the tokens
    # over whatever of those axes the rows could not take.
    assert res["act_spec"] == [["data", "fsdp"], ["data", "fsdp"], None] and res["act_mesh_ok"]


@pytest.mark.parametrize("mesh", ["(1, 8, 1)", "(1, 4, 2)"])
def test_sharded_init_equals_unsharded(result, mesh):
    res = result[mesh]
    assert res["param_diff"] == 0.0  # same seed, same values
    assert res["logit_scale"] > 0.1 and res["logit_diff"] <= 1e-5
