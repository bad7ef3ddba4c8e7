"""Shared building blocks: linear / norm / embedding modules, masked attention, rotary helpers.

Shape legend: B batch, T query tokens, S key tokens, D model width, N query heads, K key/value heads,
H head dim, F hidden width of an MLP, V vocabulary.

Every parameter carries its logical axis names as ``logical_axes`` metadata (see :mod:`.sharding`); callers
pass them for kernels (``axes=``), norms are never sharded.

Parameter names follow transformers (``weight`` for norms, ``bias``); linear layers store ``kernel`` as
[in, out] (the transpose of torch's ``weight``), which the conversion key table accounts for.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float

_INIT = nnx.initializers.normal(0.02)


class Linear(nnx.Module):
    """``y = x @ kernel + bias`` with kernel [in, out] (torch ``weight.T``); ``axes`` are the kernel's logical names.

    The bias follows the output features, except after a row-parallel projection (output ``"embed"``): it adds
    to the residual stream, which is not split along the width, so it stays replicated.
    """

    def __init__(
        self, in_features: int, out_features: int, *, use_bias: bool, dtype, rngs: nnx.Rngs, axes: tuple = (None, None)
    ):
        self.kernel = nnx.Param(_INIT(rngs.params(), (in_features, out_features), dtype), logical_axes=tuple(axes))
        bias_axes = (None,) if axes[1] == "embed" else (axes[1],)
        self.bias = nnx.Param(jnp.zeros((out_features,), dtype), logical_axes=bias_axes) if use_bias else None

    def __call__(self, x: Float[Array, "... I"]) -> Float[Array, "... O"]:
        b = None if self.bias is None else self.bias[...]
        return linear(x, self.kernel[...], b)


def linear(x: Float[Array, "... I"], kernel: Float[Array, "I O"], bias=None) -> Float[Array, "... O"]:
    """``x @ kernel + bias`` as one 2-D matmul over the flattened leading axes.

    Why 2-D: with a 3-D ``x`` the weight gradient contracts two axes (batch and time); XLA:CPU canonicalises
    that dot by transposing the [B, T, O] cotangent in memory, a strided copy that cost about as much as the
    matmul itself. Over [B*T, I] the same gradient is a plain ``x^T dy`` with no copy.
    """
    lead = x.shape[:-1]
    y = jnp.dot(x.reshape(-1, x.shape[-1]).astype(kernel.dtype), kernel)
    if bias is not None:
        y = y + bias
    return y.reshape(lead + (kernel.shape[-1],))


class Embed(nnx.Module):
    """Token embedding table ``weight`` [V, D] (logical axes ``("vocab", "embed")`` unless given)."""

    def __init__(self, num_embeddings: int, features: int, *, dtype, rngs: nnx.Rngs, axes: tuple = ("vocab", "embed")):
        self.weight = nnx.Param(_INIT(rngs.params(), (num_embeddings, features), dtype), logical_axes=tuple(axes))

    def __call__(self, ids):
        return jnp.take(self.weight[...], ids, axis=0)


class RMSNorm(nnx.Module):
    """``weight * x / sqrt(mean(x^2) + eps)``, normalised in float32 and cast back before the scale."""

    def __init__(self, dim: int, *, eps: float, dtype):
        self.weight = nnx.Param(jnp.ones((dim,), dtype), logical_axes=(None,))
        self.eps = eps

    def __call__(self, x):
        dt = x.dtype
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
        return self.weight[...] * x32.astype(dt)


class LayerNorm(nnx.Module):
    """torch ``nn.LayerNorm`` (eps 1e-5), statistics in float32."""

    def __init__(self, dim: int, *, dtype, eps: float = 1e-5):
        self.weight = nnx.Param(jnp.ones((dim,), dtype), logical_axes=(None,))
        self.bias = nnx.Param(jnp.zeros((dim,), dtype), logical_axes=(None,))
        self.eps = eps

    def __call__(self, x):
        dt = x.dtype
        x32 = x.astype(jnp.float32)
        mu = jnp.mean(x32, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mu), axis=-1, keepdims=True)
        y = (x32 - mu) * jax.lax.rsqrt(var + self.eps)
        return (y * self.weight[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)).astype(dt)


def rotate_half(x):
    h = x.shape[-1] // 2
    return jnp.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def apply_rotary(x: Float[Array, "B T N H"], cos: Float[Array, "B T H"], sin: Float[Array, "B T H"]):
    """Rotate-half RoPE; cos/sin broadcast over heads."""
    return x * cos[..., None, :] + rotate_half(x) * sin[..., None, :]


def segment_attention(
    q: Float[Array, "1 P N H"],
    k: Float[Array, "1 P N H"],
    v: Float[Array, "1 P N H"],
    segment: Array,
    *,
    scale: float,
    max_segment: int = 0,
    chunk: int | None = None,
    dense_below: int = 512,
) -> Float[Array, "1 P N H"]:
    """Attention within segments of a sequence whose segment ids are non-decreasing (contiguous segments).

    With ``max_segment`` (the longest segment, a static int) and P > max(chunk, dense_below) + 2 * max_segment,
    the queries are cut into chunks of ``chunk`` and each chunk attends only to the band of keys within
    ``max_segment`` of it (the
    only keys a query can share a segment with): scores of [P / chunk, N, chunk, chunk + 2 max_segment] instead
    of [N, P, P] (about 150 GB float32 for 24 frames x 8 prompts of video patches). The chunks are independent
    (a batch axis), so they split over devices when the patches are sharded. Otherwise, or with
    ``max_segment=0`` (unknown), the dense masked path. Same result either way (to float rounding). Up to
    ``dense_below + 2 * max_segment`` patches the dense scores are small and one masked matmul is the simpler
    program, so small inputs (tests, the CPU demo) keep it, as they did when chunks were always 512.

    ``chunk`` defaults to ``max_segment`` rounded up to a multiple of 128, within [128, 512] (windows of 64
    patches: 128 queries against 256 keys; frame groups of 512: 512 against 1,536). Each band is cut from the
    chunked keys by whole-chunk shifts and one static slice, never a gather: on a device mesh a shift is a
    neighbour exchange, and its gradient a pad (a gather's would be a scatter-add over all the patches).
    """
    p = q.shape[1]
    L = max_segment
    if chunk is None:
        chunk = min(512, max(128, -(-L // 128) * 128))
    if not L or p <= max(chunk, dense_below) + 2 * L:
        return masked_attention(q, k, v, (segment[:, None] == segment[None, :])[None], scale=scale)
    m = -(-p // chunk)
    pad = m * chunk - p
    n = -(-L // chunk)  # neighbouring chunks a band reaches into on each side
    qc = jnp.pad(q[0], ((0, pad), (0, 0), (0, 0))).reshape((m, chunk) + q.shape[2:])
    sq = jnp.pad(segment, (0, pad), constant_values=-1).reshape(m, chunk)  # padding matches no key (sliced away)

    def bands(x, fill):
        # Band of chunk i: keys [i * chunk - L, (i + 1) * chunk + L) of the unpadded sequence (out of range: fill):
        # the last r rows of chunk i - n, whole chunks i - n + 1 .. i + n - 1, the first r rows of chunk i + n.
        xc = jnp.pad(x, ((0, pad),) + ((0, 0),) * (x.ndim - 1), constant_values=fill)
        xc = xc.reshape((m, chunk) + x.shape[1:])
        r = L - (n - 1) * chunk

        def shift(y, j):  # out[i] = y[i - j], fill where i - j is out of range
            edge = jnp.full((abs(j),) + y.shape[1:], fill, y.dtype)
            return jnp.concatenate([edge, y[: m - j]] if j > 0 else [y[-j:], edge], axis=0)

        parts = (
            [shift(xc[:, chunk - r :], n)]
            + [shift(xc, j) for j in range(n - 1, 0, -1)]
            + [xc]
            + [shift(xc, -j) for j in range(1, n)]
            + [shift(xc[:, :r], -n)]
        )
        return jnp.concatenate(parts, axis=1)  # [m, chunk + 2 L, ...]

    kb, vb = bands(k[0], 0), bands(v[0], 0)
    sk = bands(segment, -2)
    o = masked_attention(qc, kb, vb, sq[:, :, None] == sk[:, None, :], scale=scale)  # chunks as the batch axis
    return o.reshape((1, m * chunk) + q.shape[2:])[:, :p]


def masked_attention(
    q: Float[Array, "B T N H"],
    k: Float[Array, "B S K H"],
    v: Float[Array, "B S K H"],
    mask: Bool[Array, "B T S"],
    *,
    scale: float,
) -> Float[Array, "B T N H"]:
    """Grouped-query softmax attention; ``mask`` True = attend. Scores and softmax in float32.

    A query whose keys are all masked (left padding) gets uniform weights instead of NaN, like transformers'
    ``finfo.min`` additive masks; such rows are padding and never read.
    """
    b, t, n, h = q.shape
    kh = k.shape[2]
    g = n // kh
    qg = q.reshape(b, t, kh, g, h)
    s = jnp.einsum("btkgh,bskh->bkgts", qg, k, preferred_element_type=jnp.float32) * scale
    s = jnp.where(mask[:, None, None, :, :], s, jnp.finfo(jnp.float32).min)
    p = jax.nn.softmax(s, axis=-1).astype(v.dtype)
    o = jnp.einsum("bkgts,bskh->btkgh", p, v)
    return o.reshape(b, t, n, h)
