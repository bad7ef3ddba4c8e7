"""Run by test_qwen2_5_omni_sharded_init.py with 8 fake CPU devices; prints one JSON line.

Builds the tiny Thinker with ``init_model(..., mesh=, sharding=fsdp_tp())`` on a (1, 8, 1) and a (1, 4, 2)
mesh and reports the parameters' shardings, the model's activation constraint and the logits, next to the
same seed built without a mesh.
"""

import json

import jax
import numpy as np
from flax import nnx

from omnir1_jax.models.qwen2_5_omni import (
    abstract_model,
    fsdp_tp,
    init_model,
    make_mesh,
    param_partition_specs,
    tiny,
)
from omnir1_jax.models.qwen2_5_omni.testing import left_padded_image_rows

NAMES = (
    "language_model.embed_tokens.weight",
    "language_model.layers.0.self_attn.q_proj.kernel",
    "language_model.layers.0.self_attn.q_proj.bias",
    "language_model.layers.0.self_attn.k_proj.kernel",
    "language_model.layers.0.self_attn.o_proj.kernel",
    "language_model.layers.1.mlp.down_proj.kernel",
    "language_model.layers.1.input_layernorm.weight",
    "lm_head.kernel",
    "visual.blocks.0.attn.q.kernel",
    "visual.patch_embed.proj.kernel",
    "visual.merger.mlp_0.kernel",
    "audio_tower.conv1.kernel",
)


def inputs(cfg, rng):
    """Two left-padded rows; row 0 holds a 4x6-patch image (6 tokens)."""
    ids, mask = left_padded_image_rows(cfg, ((40, 41, 42, 43), (51, 52, 53, 54)))
    return dict(
        input_ids=ids,
        attention_mask=mask,
        image_grid_thw=np.array([[1, 4, 6]]),
        pixel_values=rng.standard_normal((24, cfg.vision.patch_dim)).astype(np.float32),
    )


def flat(state):
    return {".".join(map(str, p)): v.get_value() for p, v in nnx.to_flat_state(state)}


def spec_list(spec):
    return [list(a) if isinstance(a, tuple) else a for a in spec]


def main():
    assert len(jax.devices()) == 8, jax.devices()
    cfg = tiny(vision_depth=1, audio_layers=1)  # the suite's tiny encoders (tests.train._tiny.TINY_MODEL)
    batch = inputs(cfg, np.random.default_rng(0))
    ref_model = init_model(cfg, seed=3)
    ref = np.asarray(ref_model(**batch).logits)
    valid = batch["attention_mask"].astype(bool)
    ref_params = flat(nnx.state(ref_model))
    out = {}
    for shape in ((1, 8, 1), (1, 4, 2)):
        mesh = make_mesh(shape)
        model = init_model(cfg, seed=3, mesh=mesh, sharding=fsdp_tp())
        params = flat(nnx.state(model))
        specs = flat(param_partition_specs(model, mesh, fsdp_tp()))
        abstract = flat(nnx.state(abstract_model(cfg, mesh=mesh, sharding=fsdp_tp())))
        logits = np.asarray(model(**batch).logits)
        out[str(shape)] = {
            "specs": {n: spec_list(params[n].sharding.spec) for n in NAMES},
            "shard_shapes": {n: list(params[n].addressable_shards[0].data.shape) for n in NAMES},
            "all_named_on_mesh": all(v.sharding.mesh == mesh for v in params.values()),
            "specs_agree": all(params[n].sharding.spec == specs[n] for n in params),
            "abstract_agree": all(abstract[n].sharding == params[n].sharding for n in params),
            "param_diff": max(float(np.abs(np.asarray(params[n]) - np.asarray(ref_params[n])).max()) for n in params),
            "act_spec": spec_list(model.act_sharding.spec),
            "act_mesh_ok": model.act_sharding.mesh == mesh,
            "logit_diff": float(np.abs(logits - ref)[valid].max()),
            "logit_scale": float(np.abs(ref)[valid].max()),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
