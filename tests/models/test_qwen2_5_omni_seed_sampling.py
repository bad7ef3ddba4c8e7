"""The seed-parallel sampler: several models' groups from one program equal each model's own ``generate``.

Three tiny Thinkers (one initialisation and two noisy copies of it: three models, one initialiser compile);
prompts with a 4x6-patch image, left-padded to different lengths per model, so the stacked prompts need padding.
Reference: :func:`generate` of each model on its own prompt.
"""

from __future__ import annotations

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omnir1_jax.models.qwen2_5_omni import generate, init_model, prepare_inputs, tiny
from omnir1_jax.models.qwen2_5_omni.testing import left_padded_image_rows
from omnir1_jax.runtime.seed_axis import sample_seeds, stack, stack_prompts

G = 10


def _other_weights(model, seed: int, scale: float = 0.05):
    """A copy of ``model`` with every weight moved by deterministic noise: another model for the same program."""
    rng = np.random.default_rng(seed)
    moved = jax.tree.map(
        lambda x: jnp.asarray(np.asarray(x) + scale * rng.standard_normal(x.shape).astype(x.dtype)),
        nnx.state(model, nnx.Param),
    )
    out = nnx.clone(model)
    nnx.update(out, moved)
    return out


@pytest.fixture(scope="module")
def seeds():
    cfg = tiny(hidden_size=32, num_layers=2, vision_depth=1, audio_layers=1)
    rng = np.random.default_rng(0)
    base = init_model(cfg, seed=0)
    models = [base, _other_weights(base, 1), _other_weights(base, 2)]
    prompts = []
    for rows in (((40,), (51, 52)), ((40, 41, 42), (51,)), ((40,), (51, 52, 53, 54))):
        ids, mask = left_padded_image_rows(cfg, rows)
        prompts.append(
            prepare_inputs(
                cfg,
                input_ids=ids,
                attention_mask=mask,
                image_grid_thw=np.array([[1, 4, 6]]),
                pixel_values=rng.standard_normal((24, cfg.vision.patch_dim)),
            )
        )
    return cfg, models, prompts


def _ref(model, prompt, key, **kw):
    out = generate(model, prompt, max_new_tokens=G, key=key, **kw)
    return np.asarray(out.tokens), np.asarray(out.logprobs), np.asarray(out.lengths)


@pytest.mark.parametrize("greedy", [False, True])
def test_each_seed_samples_what_it_samples_alone(seeds, greedy):
    cfg, models, prompts = seeds
    keys = [jax.random.key(10 + k) for k in range(3)]
    graphdef = nnx.split(models[0])[0]
    states = stack([nnx.split(m)[1] for m in models])
    lengths = {int(np.shape(p.input_ids)[1]) for p in prompts}
    assert len(lengths) > 1  # the prompts differ in length: the stack pads them
    out = sample_seeds(
        states,
        stack_prompts(cfg, prompts),
        jnp.stack(keys),
        graphdef=graphdef,
        max_new_tokens=G,
        num_samples=4,
        greedy=greedy,
        temperature=1.0,
        eos=(7,),
        pad_token_id=0,
    )
    for k, (m, p, key) in enumerate(zip(models, prompts, keys)):
        tokens, logps, lens = _ref(
            m, p, key, num_samples=4, greedy=greedy, temperature=1.0, eos_token_id=7, pad_token_id=0
        )
        np.testing.assert_array_equal(np.asarray(out.tokens[k]), tokens)
        np.testing.assert_array_equal(np.asarray(out.lengths[k]), lens)
        np.testing.assert_allclose(np.asarray(out.logprobs[k]), logps, atol=1e-5)


def test_shared_prompts_for_every_seed(seeds):
    cfg, models, prompts = seeds
    graphdef = nnx.split(models[0])[0]
    states = stack([nnx.split(m)[1] for m in models])
    keys = jnp.stack([jax.random.key(0)] * 3)
    out = sample_seeds(
        states,
        prompts[0],
        keys,
        graphdef=graphdef,
        shared_inputs=True,
        max_new_tokens=G,
        num_samples=1,
        greedy=True,
        eos=(),
        pad_token_id=0,
    )
    for k, m in enumerate(models):
        tokens, _, _ = _ref(m, prompts[0], None, num_samples=1, greedy=True)
        np.testing.assert_array_equal(np.asarray(out.tokens[k]), tokens)
    assert not np.array_equal(np.asarray(out.tokens[0]), np.asarray(out.tokens[1]))  # the models differ


def test_cache_write_is_a_dynamic_update_slice_under_grad_remat_and_vmap():
    from omnir1_jax.models.qwen2_5_omni.text import cache_write

    cache = jnp.arange(24.0, dtype=jnp.float32).reshape(2, 3, 4)
    new = jnp.full((2, 3, 1), 7.0)
    plain = lambda c, n, i: jnp.sum(jnp.sin(jax.lax.dynamic_update_slice_in_dim(c, n, i, 2)))
    ours = lambda c, n, i: jnp.sum(jnp.sin(cache_write(c, n, i, 2)))
    for i in (0, 3):
        for got, want in zip(
            jax.grad(jax.checkpoint(ours), argnums=(0, 1))(cache, new, jnp.int32(i)),
            jax.grad(plain, argnums=(0, 1))(cache, new, i),
        ):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6)
    got = jax.vmap(lambda c, n: cache_write(c, n, jnp.int32(1), 1))(cache, new)
    want = jax.vmap(lambda c, n: jax.lax.dynamic_update_slice_in_dim(c, n, 1, 1))(cache, new)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
