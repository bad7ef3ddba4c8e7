"""Per-token log-probabilities and entropies from logits, in float32, chunked over time.

Shape legend: B batch, T tokens, V vocabulary.

A full float32 copy of [B, T, V] logits is the largest tensor of a GRPO step for a 150k vocabulary
(B=8, T=1024: 4.9 GB); for lower-precision logits these functions only ever hold a float32 copy of one time
chunk, in the forward and (thanks to ``jax.checkpoint`` on the chunk) in the backward pass. Float32 logits are
used as they are unless ``chunk_size`` is given.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

_DEFAULT_CHUNK_BYTES = 64 * 2**20


def _chunk_len(b: int, t: int, v: int, chunk_size: int | None) -> int:
    if chunk_size is None:
        chunk_size = max(1, _DEFAULT_CHUNK_BYTES // max(1, 4 * b * v))
    return max(1, min(int(chunk_size), t))


def _map_time_chunks(fn, logits, *extra, chunk_size):
    """Apply ``fn(logits_chunk, *extra_chunks) -> [B, c]`` over time chunks; returns [B, T] float32.

    Float32 logits with the default ``chunk_size`` are not chunked: there is no float32 copy to bound, and
    splitting the time axis would copy the whole tensor into chunk-major order (forward and backward)."""
    if chunk_size is None and logits.dtype == jnp.float32:
        return fn(logits, *extra)
    b, t, v = logits.shape
    c = _chunk_len(b, t, v, chunk_size)
    n = math.ceil(t / c)
    pad = n * c - t
    if n == 1:
        return fn(logits, *extra)

    def split(x):
        x = jnp.pad(x, [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2))
        return jnp.moveaxis(x.reshape((b, n, c) + x.shape[2:]), 1, 0)

    out = jax.lax.map(lambda args: jax.checkpoint(fn)(*args), (split(logits),) + tuple(split(e) for e in extra))
    return jnp.moveaxis(out, 0, 1).reshape(b, n * c)[:, :t]


def token_logprobs(
    logits: Float[Array, "B T V"],
    tokens: Int[Array, "B T"],
    *,
    chunk_size: int | None = None,
    temperature: float = 1.0,
) -> Float[Array, "B T"]:
    """``log_softmax(logits / temperature)[b, t, tokens[b, t]]`` in float32, at the same position.

    No shift is applied: to score a sequence, pass ``logits[:, :-1]`` with ``tokens[:, 1:]``.

    Args:
      logits: [B, T, V] in any float dtype (bf16 stays bf16 outside the current chunk).
      tokens: [B, T] integer token ids in ``[0, V)``.
      chunk_size: time steps per float32 chunk; default keeps a chunk near 64 MiB.
      temperature: divide logits by this before the softmax (sampling temperature of the rollout).
    """
    if logits.ndim != 3 or tokens.shape != logits.shape[:2]:
        raise ValueError(f"expected logits [B, T, V] and tokens [B, T], got {logits.shape} and {tokens.shape}")

    def chunk(x, tok):
        x = x.astype(jnp.float32)
        if temperature != 1.0:
            x = x / temperature
        picked = jnp.take_along_axis(x, tok[..., None].astype(jnp.int32), axis=-1)[..., 0]
        return picked - jax.nn.logsumexp(x, axis=-1)

    return _map_time_chunks(chunk, logits, tokens, chunk_size=chunk_size)


def head_token_logprobs(
    hidden: Float[Array, "B T D"],
    kernel: Float[Array, "D V"],
    tokens: Int[Array, "B T"],
    *,
    chunk_size: int = 128,
    temperature: float = 1.0,
) -> Float[Array, "B T"]:
    """:func:`token_logprobs` of ``hidden @ kernel`` without ever holding the [B, T, V] logits.

    The output projection runs inside each time chunk (``chunk_size`` positions, rematerialised in the backward
    pass), so at most one chunk's [B, c, V] logits exist, in float32 for the log-softmax. For a 152k vocabulary
    and 64 rows x 512 tokens the full logits are 10 GB in bfloat16 (20 GB float32).
    """
    if hidden.ndim != 3 or tokens.shape != hidden.shape[:2] or kernel.shape[0] != hidden.shape[2]:
        raise ValueError(
            f"expected hidden [B, T, D], kernel [D, V], tokens [B, T]; got {hidden.shape}, "
            f"{kernel.shape}, {tokens.shape}"
        )

    def chunk(h, tok):
        b, c, d = h.shape
        x = jnp.dot(h.reshape(b * c, d).astype(kernel.dtype), kernel).reshape(b, c, -1).astype(jnp.float32)
        if temperature != 1.0:
            x = x / temperature
        picked = jnp.take_along_axis(x, tok[..., None].astype(jnp.int32), axis=-1)[..., 0]
        return picked - jax.nn.logsumexp(x, axis=-1)

    return _map_time_chunks(chunk, hidden, tokens, chunk_size=max(1, int(chunk_size)))


def token_entropy(
    logits: Float[Array, "B T V"], *, chunk_size: int | None = None, temperature: float = 1.0
) -> Float[Array, "B T"]:
    """Entropy of ``softmax(logits / temperature)`` per position, float32, chunked like :func:`token_logprobs`."""
    if logits.ndim != 3:
        raise ValueError(f"expected logits [B, T, V], got {logits.shape}")

    def chunk(x):
        x = x.astype(jnp.float32)
        if temperature != 1.0:
            x = x / temperature
        logp = jax.nn.log_softmax(x, axis=-1)
        return -jnp.sum(jnp.exp(logp) * logp, axis=-1)

    return _map_time_chunks(chunk, logits, chunk_size=chunk_size)
