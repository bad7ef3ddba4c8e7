"""The precision policy of the update: float32 master weights under bf16 compute, float32 AdamW moments, the
weight-decay mask and Dr. GRPO's constant divisor.

Expected values come from hand computations or float64 references written here, never from the code under test.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from omnir1_jax.models.qwen2_5_omni import completion_logprobs, init_model, prepare_inputs, tiny
from omnir1_jax.rl import grpo_loss
from omnir1_jax.rl.update import LossSpec, grpo_step, make_optimizer

C = 8
SCORER = functools.partial(completion_logprobs, remat=False, temperature=1.0)


def _small():
    return tiny(hidden_size=32, num_layers=1, vision_depth=1, audio_layers=1)


@pytest.fixture(scope="module")
def text_batch():
    cfg = _small()
    rng = np.random.default_rng(0)
    ids = rng.integers(20, 500, (4, 10)).astype(np.int32)
    prompt = prepare_inputs(cfg, input_ids=ids, attention_mask=np.ones_like(ids))
    comp = jnp.asarray(rng.integers(20, 500, (4, C)), jnp.int32)
    cmask = jnp.asarray(np.arange(C)[None, :] < np.array([8, 5, 3, 6])[:, None], jnp.int32)
    adv = jnp.asarray([1.0, -0.5, 0.8, -1.3], jnp.float32)
    return cfg, prompt, comp, cmask, adv


def _step_fraction(cfg, batch, dtype, param_dtype, lr=1e-6):
    """Fraction of stored parameter elements one GRPO step (AdamW at ``lr``) changes; the model after it."""
    _, prompt, comp, cmask, adv = batch
    model = init_model(cfg, seed=3, dtype=dtype, param_dtype=param_dtype)
    before = [np.asarray(x, np.float64) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]
    opt = nnx.Optimizer(model, make_optimizer(lr, weight_decay=0.01, grad_clip=1.0), wrt=nnx.Param)
    grpo_step(model, opt, prompt, comp, cmask, None, None, adv, scorer=SCORER, spec=LossSpec(beta=0.0))
    after = [np.asarray(x, np.float64) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]
    changed = sum(int((a != b).sum()) for a, b in zip(after, before))
    return changed / sum(a.size for a in before), model, opt


def test_bf16_compute_step_changes_the_elements_a_float32_step_changes(text_batch):
    cfg = text_batch[0]
    f32, _, _ = _step_fraction(cfg, text_batch, jnp.float32, jnp.float32)
    mixed, model, opt = _step_fraction(cfg, text_batch, jnp.bfloat16, jnp.float32)
    old, _, _ = _step_fraction(cfg, text_batch, jnp.bfloat16, jnp.bfloat16)  # weights kept in bf16 (before)
    assert f32 > 0.1  # the text path's weights (vision / audio towers get no gradient from a text batch)
    assert abs(mixed - f32) <= 0.01, (mixed, f32)
    assert old < f32 / 5, (old, f32)  # what bf16 storage loses: most 1e-6 updates round away
    assert {x.dtype for x in jax.tree.leaves(nnx.state(model, nnx.Param))} == {jnp.dtype(jnp.float32)}
    assert model.compute_dtype == "bfloat16"
    moments = [x for x in jax.tree.leaves(nnx.state(opt)) if jnp.issubdtype(x.dtype, jnp.floating) and x.ndim]
    assert moments and {x.dtype for x in moments} == {jnp.dtype(jnp.float32)}


def test_compute_view_computes_in_bf16_and_differentiates_to_float32(text_batch):
    cfg, prompt, comp, cmask, _ = text_batch
    master = init_model(cfg, seed=3, dtype=jnp.bfloat16, param_dtype=jnp.float32)
    stored_bf16 = init_model(cfg, seed=3, dtype=jnp.bfloat16)  # built in bf16, then given the masters' values
    nnx.update(stored_bf16, jax.tree.map(lambda x: x.astype(jnp.bfloat16), nnx.state(master, nnx.Param)))
    lp_master = jax.jit(lambda m: SCORER(m, prompt, comp, cmask))(master)
    lp_bf16 = jax.jit(lambda m: SCORER(m, prompt, comp, cmask))(stored_bf16)
    # a bf16 view of float32 masters computes exactly what bf16-stored weights compute
    np.testing.assert_array_equal(np.asarray(lp_master), np.asarray(lp_bf16))
    # one compiled program (op by op, the backward pass compiles each primitive: ~5x slower on a CPU)
    grads = nnx.jit(nnx.grad(lambda m: jnp.sum(SCORER(m, prompt, comp, cmask))))(master)
    assert {x.dtype for x in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}


def _nu_mu(state):
    adam = [
        s
        for s in jax.tree.leaves(state, is_leaf=lambda s: isinstance(s, optax.ScaleByAdamState))
        if isinstance(s, optax.ScaleByAdamState)
    ]
    assert len(adam) == 1
    return adam[0].nu, adam[0].mu


@pytest.mark.parametrize("param_dtype", [jnp.float32, jnp.bfloat16])
def test_second_moment_decays_as_b2_to_the_t_after_one_spike(param_dtype):
    b2, g, steps = 0.999, 1.0, 3000
    tx = make_optimizer(1e-6, b2=b2, weight_decay=0.0, grad_clip=0.0)
    params = {"w": jnp.full((4,), 0.02, param_dtype)}
    state = tx.init(params)

    def one(carry, grad):
        p, s = carry
        u, s = tx.update({"w": jnp.full((4,), grad, param_dtype)}, s, p)
        return (optax.apply_updates(p, u), s), None

    grads = jnp.zeros((steps,), jnp.float32).at[0].set(g)
    (_, state), _ = jax.jit(lambda c, gs: jax.lax.scan(one, c, gs))((params, state), grads)
    nu, mu = _nu_mu(state)
    assert nu["w"].dtype == jnp.float32 and mu["w"].dtype == jnp.float32
    # float64 reference: nu_1 = (1 - b2) g^2, then nu_t = b2 nu_{t-1} under zero gradients
    expected = (1.0 - b2) * g * g * b2 ** (steps - 1)  # 4.97e-5 (a bf16 nu would stay at 1e-3: b2 -> 1.0)
    np.testing.assert_allclose(np.asarray(nu["w"], np.float64), expected, rtol=5e-4)


def test_weight_decay_skips_biases_and_norm_scales():
    lr, wd = 1e-2, 0.1
    model = init_model(_small(), seed=1)
    before = {
        ".".join(map(str, p)): np.asarray(v[...], np.float64) for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))
    }

    params = nnx.state(model, nnx.Param)

    def step(**kw):  # one AdamW step with zero gradients, on the model's own parameter tree
        tx = make_optimizer(lr, weight_decay=wd, grad_clip=1.0, **kw)

        @jax.jit
        def run(p):
            u, _ = tx.update(jax.tree.map(jnp.zeros_like, p), tx.init(p), p)
            return optax.apply_updates(p, u)

        return {".".join(map(str, k)): np.asarray(v[...], np.float64) for k, v in nnx.to_flat_state(run(params))}

    norm = "language_model.layers.0.input_layernorm.weight"
    bias = "language_model.layers.0.self_attn.q_proj.bias"
    kernel = "language_model.layers.0.self_attn.q_proj.kernel"
    embed = "language_model.embed_tokens.weight"
    got = step()
    np.testing.assert_array_equal(got[norm], before[norm])
    np.testing.assert_array_equal(got[bias], before[bias])
    np.testing.assert_allclose(got[kernel], before[kernel] * (1 - lr * wd), rtol=1e-6)
    np.testing.assert_allclose(got[embed], before[embed] * (1 - lr * wd), rtol=1e-6)
    assert np.array_equal(got[norm], np.ones_like(got[norm]))  # a norm scale of 1.0 stays 1.0
    no_embed = step(decay_embeddings=False)
    np.testing.assert_array_equal(no_embed[embed], before[embed])
    np.testing.assert_allclose(no_embed[kernel], before[kernel] * (1 - lr * wd), rtol=1e-6)
    everything = step(decay="all")
    np.testing.assert_allclose(everything[norm], before[norm] * (1 - lr * wd), rtol=1e-6)

    # a non-zero bias (zero at init, where decay could not show): a zero-gradient step leaves it exactly as it is
    flat = dict(nnx.to_flat_state(params))
    key = tuple(int(k) if k.isdigit() else k for k in bias.split("."))
    flat[key] = flat[key].replace(jnp.full_like(flat[key][...], 0.3))
    params = nnx.from_flat_state(list(flat.items()))
    np.testing.assert_array_equal(step()[bias], np.full(before[bias].shape, 0.3, np.float32))


def test_dr_grpo_loss_does_not_move_with_the_padding():
    rng = np.random.default_rng(4)
    lengths = np.array([5, 2, 9, 0, 7, 3])
    adv = np.array([1.0, -0.5, 0.25, 2.0, -1.5, 0.75], np.float32)
    budget = 256
    real = rng.normal(-2, 0.5, (6, 10)).astype(np.float32)
    values = []
    for width in (32, 64, 256):  # the learner's 32-token buckets, and a trajectory padded to 256
        logps = np.zeros((6, width), np.float32)
        logps[:, :10] = real
        mask = (np.arange(width)[None] < lengths[:, None]).astype(np.float32)
        loss, _ = grpo_loss(
            jnp.asarray(logps),
            None,
            None,
            jnp.asarray(adv),
            jnp.asarray(mask),
            beta=0.0,
            agg="seq_mean_token_sum_norm",
            max_len=budget,
        )
        values.append(float(loss))
    # on-policy (ratio 1) without KL each real token contributes -A: loss = -sum_b A_b len_b / (B * budget)
    hand = -float(np.sum(adv * lengths)) / (6 * budget)
    np.testing.assert_allclose(values, [hand] * 3, rtol=1e-6)
    assert abs(hand) > 1e-3
