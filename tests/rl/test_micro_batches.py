"""Gradient accumulation (``LossSpec.micro_batches``, ``nll_grads(micro_batches=)``) equals the full-batch gradient.

Tiny Thinker in float32; 2 prompts (one with a 4x6-patch image) x group 4 = 8 rows with ragged completion
masks (one row empty). Reference: the same loss on the whole batch in one piece (``micro_batches=1``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from omnir1_jax.models.qwen2_5_omni import (
    completion_logprobs,
    group_completion_logprobs,
    init_model,
    prepare_inputs,
    repeat_prompt,
    tiny,
)
from omnir1_jax.models.qwen2_5_omni.testing import left_padded_image_rows
from omnir1_jax.rl.update import LossSpec, grpo_grads, nll_grads, score

GROUP, C = 4, 6


@pytest.fixture(scope="module")
def batch():
    cfg = tiny(vision_depth=1, audio_layers=1)
    rng = np.random.default_rng(0)
    ids, mask = left_padded_image_rows(cfg, ((40,), (51, 52)))
    prompt = repeat_prompt(
        prepare_inputs(
            cfg,
            input_ids=ids,
            attention_mask=mask,
            image_grid_thw=np.array([[1, 4, 6]]),
            pixel_values=rng.standard_normal((24, cfg.vision.patch_dim)),
        ),
        GROUP,
    )
    r = 2 * GROUP
    comp = jnp.asarray(rng.integers(20, 500, (r, C)), jnp.int32)
    lengths = np.array([6, 3, 0, 5, 1, 6, 2, 4])
    cmask = jnp.asarray(np.arange(C)[None, :] < lengths[:, None], jnp.int32)
    model = init_model(cfg, seed=5)
    plain = functools.partial(completion_logprobs, remat=False, temperature=1.0)
    lp = score(model, prompt, comp, cmask, scorer=plain)
    old = lp + jnp.asarray(rng.normal(0, 0.3, (r, C)), jnp.float32)  # off-policy: some ratios clip
    ref = lp + jnp.asarray(rng.normal(0, 0.2, (r, C)), jnp.float32)
    adv = jnp.asarray(rng.normal(0, 1, (r,)), jnp.float32)
    return model, prompt, comp, cmask, old, ref, adv


def _leaves(tree):
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


def _max_diff(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(_leaves(a), _leaves(b)))


SCORERS = {
    "group": functools.partial(group_completion_logprobs, group_size=GROUP, remat=False, temperature=1.0),
    "plain": functools.partial(completion_logprobs, remat=True, temperature=1.0),
}


@pytest.mark.parametrize("agg", ["seq_mean_token_mean", "token_mean", "seq_mean_token_sum_norm"])
@pytest.mark.parametrize("scorer,micro", [("group", 2), ("plain", 4)])
def test_grpo_gradient_accumulation_equals_full_batch(batch, agg, scorer, micro):
    model, prompt, comp, cmask, old, ref, adv = batch
    fn = SCORERS[scorer]
    full_g, full_m = grpo_grads(model, prompt, comp, cmask, old, ref, adv, scorer=fn, spec=LossSpec(agg=agg))
    acc_g, acc_m = grpo_grads(
        model, prompt, comp, cmask, old, ref, adv, scorer=fn, spec=LossSpec(agg=agg, micro_batches=micro)
    )
    assert jax.tree.structure(full_g) == jax.tree.structure(acc_g)
    scale = max(float(np.abs(x).max()) for x in _leaves(full_g))
    assert scale > 1e-3  # a gradient worth comparing
    assert _max_diff(full_g, acc_g) <= 1e-5
    assert full_m["clip_frac"] > 0  # the clip is active in this batch
    for k in full_m:
        np.testing.assert_allclose(float(acc_m[k]), float(full_m[k]), rtol=1e-5, atol=1e-6, err_msg=k)


def test_nll_gradient_accumulation_equals_full_batch(batch):
    model, prompt, comp, cmask = batch[:4]
    fn = SCORERS["group"]
    full_g, full_l = nll_grads(model, prompt, comp, cmask, scorer=fn)
    acc_g, acc_l = nll_grads(model, prompt, comp, cmask, scorer=fn, micro_batches=2)
    assert _max_diff(full_g, acc_g) <= 1e-5
    np.testing.assert_allclose(float(acc_l), float(full_l), rtol=1e-6)
    # The accumulated gradient is usable by the optimiser as it is (same State structure as nnx.grad's).
    assert isinstance(acc_g, nnx.State)


def test_micro_batches_must_divide_the_rows(batch):
    model, prompt, comp, cmask, old, ref, adv = batch
    with pytest.raises(ValueError, match="micro_batches=3 must be >= 1 and divide the batch of 8 rows"):
        grpo_grads(model, prompt, comp, cmask, old, ref, adv, scorer=SCORERS["plain"], spec=LossSpec(micro_batches=3))


def test_weighted_nll_is_the_weighted_token_mean(batch):
    """``weights`` (``sft.think_weight``): the loss is sum(w * nll) / sum(w) over the masked tokens, computed here
    from the scorer's log-probs in numpy; a row weighted 0 drops out of the gradient (= the loss without it)."""
    model, prompt, comp, cmask = batch[:4]
    fn = SCORERS["group"]
    lp = np.asarray(score(model, prompt, comp, cmask, scorer=fn), np.float64)
    m = np.asarray(cmask, np.float64)
    w = np.random.default_rng(3).uniform(0.5, 10.0, m.shape)
    want = -(lp * m * w).sum() / (m * w).sum()
    g, loss = nll_grads(model, prompt, comp, cmask, scorer=fn, weights=jnp.asarray(w, jnp.float32))
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    acc_g, acc_l = nll_grads(model, prompt, comp, cmask, scorer=fn, micro_batches=2, weights=jnp.asarray(w))
    np.testing.assert_allclose(float(acc_l), want, rtol=1e-5)
    assert _max_diff(g, acc_g) <= 1e-5
    # Row 0 weighted 0: the gradient equals the plain token mean's with row 0 masked out.
    w0 = np.ones_like(m)
    w0[0] = 0.0
    g0, l0 = nll_grads(model, prompt, comp, cmask, scorer=fn, weights=jnp.asarray(w0, jnp.float32))
    cut = cmask.at[0].set(0)
    gc, lc = nll_grads(model, prompt, comp, cut, scorer=fn)
    np.testing.assert_allclose(float(l0), -(lp * m)[1:].sum() / m[1:].sum(), rtol=1e-5)
    np.testing.assert_allclose(float(l0), float(lc), rtol=1e-5)
    assert _max_diff(g0, gc) <= 1e-5
