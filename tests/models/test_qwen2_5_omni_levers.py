"""The memory levers compute the same values as the dense paths they replace (forward and gradient).

- text attention: ``chunked`` (query chunks under lax.map + checkpoint) and ``dot_product``
  (jax.nn.dot_product_attention) vs ``dense`` (the [B, K, G*T, S] scores at once), with left padding and a
  read-only prefix mask;
- vision attention: ``segment_attention`` in key bands vs the dense [P, P] segment mask, on the segments that
  ``vision_layout`` computes for a real grid (windows and frame groups);
- ``head_token_logprobs`` (lm_head inside the time chunks) vs ``token_logprobs`` of the full logits;
- remat policies: the gradient of the decoder is the same with no remat, ``full`` and ``dots``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from omnir1_jax.models.qwen2_5_omni import init_model, prepare_inputs, tiny
from omnir1_jax.models.qwen2_5_omni.layers import masked_attention, segment_attention
from omnir1_jax.models.qwen2_5_omni.text import gqa_attention
from omnir1_jax.models.qwen2_5_omni.vision import vision_layout
from omnir1_jax.rl import head_token_logprobs, token_logprobs


def _attn_inputs(seed=0, b=2, t=11, s=15, n=4, kh=2, h=8):
    rng = np.random.default_rng(seed)
    q = jnp.asarray(rng.standard_normal((b, t, n, h)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((b, kh, h, s)), jnp.float32)
    v = jnp.asarray(rng.standard_normal((b, kh, s, h)), jnp.float32)
    # A prefix of s - t keys then causal over the t new ones; row 1 has 3 left-padded keys.
    causal = np.arange(s)[None, :] <= (s - t) + np.arange(t)[:, None]
    valid = np.ones((b, s), bool)
    valid[1, :3] = False
    return q, k, v, jnp.asarray(causal[None] & valid[:, None, :])


@pytest.mark.parametrize("impl,q_chunk", [("chunked", 4), ("chunked", 5), ("dot_product", 512)])
def test_text_attention_impls_equal_dense(impl, q_chunk):
    q, k, v, mask = _attn_inputs()
    w = jnp.asarray(np.random.default_rng(1).standard_normal(q.shape), jnp.float32)

    def f(impl, q, k, v):
        return jnp.sum(gqa_attention(q, k, v, mask, scale=0.3, impl=impl, q_chunk=q_chunk) * w)

    ref, ref_g = jax.value_and_grad(lambda *a: f("dense", *a), argnums=(0, 1, 2))(q, k, v)
    got, got_g = jax.value_and_grad(lambda *a: f(impl, *a), argnums=(0, 1, 2))(q, k, v)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(got_g, ref_g):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_text_attention_rejects_unknown_impl():
    q, k, v, mask = _attn_inputs()
    with pytest.raises(ValueError, match="attention impl must be one of"):
        gqa_attention(q, k, v, mask, scale=1.0, impl="flash")


def test_banded_segment_attention_equals_dense_on_vision_segments():
    cfg = tiny().vision
    layout = vision_layout(cfg, np.array([[2, 8, 12], [2, 4, 6]]))  # two videos: several windows, 2 frame groups
    p = layout.full_segment.shape[0]
    assert layout.max_full == 8 * 12 and layout.max_window == 16  # 4x4 patches per (2x2-unit) window
    rng = np.random.default_rng(2)
    q, k, v = (jnp.asarray(rng.standard_normal((1, p, 2, 8)), jnp.float32) for _ in range(3))
    w = jnp.asarray(rng.standard_normal(q.shape), jnp.float32)
    for seg, longest in ((layout.full_segment, layout.max_full), (layout.window_segment, layout.max_window)):
        seg = jnp.asarray(seg)

        def dense(q, k, v):
            return jnp.sum(masked_attention(q, k, v, (seg[:, None] == seg[None, :])[None], scale=0.35) * w)

        ref, ref_g = jax.value_and_grad(dense, argnums=(0, 1, 2))(q, k, v)
        # chunks shorter than, equal to and longer than the longest segment (bands over 1 to 6 neighbour chunks)
        for chunk in (16, 32):

            def banded(q, k, v):
                return jnp.sum(
                    segment_attention(q, k, v, seg, scale=0.35, max_segment=longest, chunk=chunk, dense_below=0) * w
                )

            assert p > chunk + 2 * longest  # the banded path is the one taken
            got, got_g = jax.value_and_grad(banded, argnums=(0, 1, 2))(q, k, v)
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
            for a, b in zip(got_g, ref_g):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_head_token_logprobs_equal_full_logits():
    rng = np.random.default_rng(3)
    h = jnp.asarray(rng.standard_normal((3, 10, 16)), jnp.float32)
    kernel = jnp.asarray(rng.standard_normal((16, 40)) * 0.3, jnp.float32)
    tok = jnp.asarray(rng.integers(0, 40, (3, 10)), jnp.int32)
    ref = token_logprobs(jnp.einsum("btd,dv->btv", h, kernel), tok, temperature=0.7)
    # Hand check of one entry: log_softmax(logits / T)[token].
    row = np.asarray(jnp.einsum("d,dv->v", h[1, 4], kernel)) / 0.7
    hand = row[int(tok[1, 4])] - np.log(np.exp(row - row.max()).sum()) - row.max()
    np.testing.assert_allclose(float(ref[1, 4]), hand, rtol=1e-5)
    got = head_token_logprobs(h, kernel, tok, chunk_size=3, temperature=0.7)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    g_ref = jax.grad(lambda k: token_logprobs(jnp.einsum("btd,dv->btv", h, k), tok).sum())(kernel)
    g_got = jax.grad(lambda k: head_token_logprobs(h, k, tok, chunk_size=4).sum())(kernel)
    np.testing.assert_allclose(g_got, g_ref, rtol=1e-5, atol=1e-5)


def test_remat_policies_give_the_same_gradient():
    cfg = tiny()
    model = init_model(cfg, seed=4)
    ids = np.array([[1, 20, 21, 22, 23, 24, 25, 26]])
    inputs = prepare_inputs(cfg, input_ids=ids, attention_mask=np.ones_like(ids))

    def grads(remat):
        def loss(m):
            return jnp.sum(jnp.square(m.hidden_states(inputs, remat=remat)))

        return jax.tree.leaves(nnx.grad(loss)(model))

    ref = grads(False)
    for remat in (True, "dots"):
        for a, b in zip(grads(remat), ref):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="remat must be"):
        grads("sometimes")


def test_decode_layout_drops_the_gathered_axes():
    from omnir1_jax.models.qwen2_5_omni.sharding import ShardingConfig, fsdp_tp

    assert fsdp_tp().decode_layout() is None  # no gather: weights stay as they are while decoding
    dec = fsdp_tp(("fsdp",)).decode_layout()
    # by hand from fsdp_tp's table: "embed" loses fsdp, ("data", "fsdp") keeps data, tensor rules stay
    assert dict(dec.rules) == {
        "vocab": "tensor",
        "embed": None,
        "heads": "tensor",
        "mlp": "tensor",
        "batch": ("data",),
        "length": ("data",),
        "cache_heads": "tensor",
    }
    assert dec.decode_gather == () and dec.act_btd == fsdp_tp().act_btd
    with pytest.raises(ValueError, match="decode_gather.*'fsdpp'"):
        ShardingConfig(decode_gather=("fsdpp",))
