"""token_logprobs / token_entropy: values, gradients, and no full float32 copy of the logits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omnir1_jax.rl import token_entropy, token_logprobs


@pytest.mark.parametrize("chunk", [None, 1, 4, 7, 100])
def test_token_logprobs_matches_log_softmax(chunk):
    k1, k2 = jax.random.split(jax.random.key(0))
    logits = jax.random.normal(k1, (3, 13, 50)) * 3
    tokens = jax.random.randint(k2, (3, 13), 0, 50)
    ref = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), tokens[..., None], -1)[..., 0]
    np.testing.assert_allclose(token_logprobs(logits, tokens, chunk_size=chunk), ref, atol=1e-5)
    g = jax.grad(lambda x: (token_logprobs(x, tokens, chunk_size=chunk) * jnp.arange(13)).sum())(logits)
    g_ref = jax.grad(
        lambda x: (jnp.take_along_axis(jax.nn.log_softmax(x, -1), tokens[..., None], -1)[..., 0] * jnp.arange(13)).sum()
    )(logits)
    np.testing.assert_allclose(g, g_ref, atol=1e-5)
    p = jax.nn.softmax(logits / 0.7, -1)
    np.testing.assert_allclose(
        token_entropy(logits, chunk_size=chunk, temperature=0.7), -(p * jnp.log(p)).sum(-1), atol=1e-4
    )
    lp_t = jnp.take_along_axis(jax.nn.log_softmax(logits / 0.7, -1), tokens[..., None], -1)[..., 0]
    np.testing.assert_allclose(token_logprobs(logits, tokens, chunk_size=chunk, temperature=0.7), lp_t, atol=1e-5)


def test_bf16_logits_never_materialise_full_float32_copy():
    b, t, v = 2, 64, 256
    logits = jnp.zeros((b, t, v), jnp.bfloat16)
    tokens = jnp.zeros((b, t), jnp.int32)

    def loss(x):
        return token_logprobs(x, tokens, chunk_size=8).sum()

    def biggest_f32(jaxpr):
        biggest = 0
        for eqn in jaxpr.eqns:
            for var in eqn.outvars:
                if getattr(var.aval, "dtype", None) == jnp.float32:
                    biggest = max(biggest, int(np.prod(var.aval.shape)))
            for p in eqn.params.values():
                for inner in p if isinstance(p, (tuple, list)) else [p]:
                    inner = getattr(inner, "jaxpr", inner)  # ClosedJaxpr -> Jaxpr
                    if hasattr(inner, "eqns"):
                        biggest = max(biggest, biggest_f32(inner))
        return biggest

    naive = jax.make_jaxpr(jax.grad(lambda x: jax.nn.log_softmax(x.astype(jnp.float32)).sum()))(logits)
    assert biggest_f32(naive.jaxpr) == b * t * v  # the checker does see a full copy when there is one
    for fn in (loss, jax.grad(loss)):
        closed = jax.make_jaxpr(fn)(logits)
        assert biggest_f32(closed.jaxpr) <= b * 8 * v  # one chunk, never b * t * v
    out = token_logprobs(logits, tokens, chunk_size=8)
    assert out.dtype == jnp.float32 and np.allclose(out, -np.log(v))
