"""Run by test_qwen2_5_omni_sharded.py in a subprocess with 8 fake CPU devices; prints one JSON line.

Usage: XLA_FLAGS=--xla_force_host_platform_device_count=8 python _sharded_worker.py CHECKPOINT_DIR
"""

import json
import sys

import jax
import numpy as np
from flax import nnx

from omnir1_jax.models.qwen2_5_omni import (
    from_hf,
    fsdp_tp,
    generate,
    init_model,
    make_mesh,
    prepare_inputs,
    repeat_prompt,
    sequence_logprobs,
    tiny,
    to_hf,
)


def prompt_inputs(cfg, rng):
    """Batch of 4 left-padded prompts; row 0 holds a 4x6-patch image (6 tokens)."""
    img = [cfg.vision_start_token_id] + [cfg.image_token_id] * 6 + [cfg.vision_end_token_id]
    rows = [[1, 20, 30] + img + [40, 41], [1, 50, 51, 52, 53], [1, 60, 61, 62, 63, 64, 65], [1, 70]]
    t = max(len(r) for r in rows)
    ids = np.zeros((4, t), np.int64)
    mask = np.zeros((4, t), np.int64)
    for i, r in enumerate(rows):
        ids[i, t - len(r) :] = r
        mask[i, t - len(r) :] = 1
    return dict(
        input_ids=ids,
        attention_mask=mask,
        image_grid_thw=np.array([[1, 4, 6]]),
        pixel_values=rng.standard_normal((24, cfg.vision.patch_dim)).astype(np.float32),
    )


def main(path):
    assert len(jax.devices()) == 8, jax.devices()
    cfg = tiny()
    rng = np.random.default_rng(0)
    to_hf(init_model(cfg, seed=1), path, overwrite=True)
    inputs = prompt_inputs(cfg, rng)
    single = from_hf(path)
    ref = np.asarray(single(**inputs).logits)
    mesh = make_mesh((2, 2, 2))
    with jax.set_mesh(mesh):
        model = from_hf(path, mesh=mesh, sharding=fsdp_tp())
        q = model.language_model.layers[0].self_attn.q_proj.kernel[...]
        logits = np.asarray(model(**inputs).logits)
        group = {k: v[:1] if k in ("input_ids", "attention_mask") else v for k, v in inputs.items()}
        out = generate(model, group, max_new_tokens=8, num_samples=4, key=jax.random.key(0), temperature=1.0)
        tokens = np.asarray(out.tokens)
        prompt = repeat_prompt(prepare_inputs(cfg, **group), 4)
        lp = np.asarray(sequence_logprobs(model, {"prompt": prompt, "completion_ids": tokens}))
        # decode_gather: the decoder's weights gathered over fsdp once, before the token loop; same samples
        gathered = from_hf(path, mesh=mesh, sharding=fsdp_tp(("fsdp",)))
        out_g = generate(gathered, group, max_new_tokens=8, num_samples=4, key=jax.random.key(0), temperature=1.0)
        graph, state = nnx.split(gathered)
        dec = jax.jit(lambda st: nnx.state(nnx.merge(graph, st).decode_weights(), nnx.Param))(state)
        dec_specs = {
            name: tuple(
                getattr(dec, "language_model" if name == "q" else "visual")
                .__getitem__("layers" if name == "q" else "blocks")[0]["self_attn" if name == "q" else "attn"][
                    "q_proj" if name == "q" else "q"
                ]["kernel"]
                .get_value()
                .sharding.spec
            )
            for name in ("q", "vision_q")
        }
        dec_equal = bool(
            np.array_equal(
                np.asarray(dec["language_model"]["layers"][0]["self_attn"]["q_proj"]["kernel"].get_value()),
                np.asarray(q),
            )
        )
    valid = inputs["attention_mask"].astype(bool)
    print(
        json.dumps(
            {
                "q_shard_shape": list(q.addressable_shards[0].data.shape),
                "q_shape": list(q.shape),
                "logit_diff": float(np.abs(logits - ref)[valid].max()),
                "distinct_samples": len({tuple(r) for r in tokens}),
                "logprob_diff": float(np.abs(lp - np.asarray(out.logprobs)).max()),
                "gather_same_tokens": bool(np.array_equal(np.asarray(out_g.tokens), tokens)),
                "gather_logprob_diff": float(np.abs(np.asarray(out_g.logprobs) - np.asarray(out.logprobs)).max()),
                "decode_specs": {k: [list(a) if isinstance(a, tuple) else a for a in v] for k, v in dec_specs.items()},
                "decode_values_equal": dec_equal,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
