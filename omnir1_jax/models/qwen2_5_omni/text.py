"""Qwen2 text decoder of the Thinker: GQA attention with q/k/v bias, SwiGLU MLP, multimodal RoPE, KV cache.

Shape legend: B batch, T query tokens, S key/cache tokens, D model width, N query heads, K key/value heads,
G = N/K query heads per key head, H head dim, F MLP width, V vocabulary, A=3 rotary position axes (temporal,
height, width).

Multimodal RoPE (M-RoPE): the H/2 rotary frequencies are split into ``mrope_section`` groups; group i rotates
with position axis ``i % 3``. For text tokens the three axes are equal and this is plain 1-D RoPE.

Speed notes (measured on XLA:CPU, see BENCHMARKS.md "Policy"): q/k/v and gate/up each run as one matmul over
concatenated kernels (:func:`fused_weights`; skipped when a ``tensor`` mesh axis shards those kernels by
columns, where concatenation would need an all-gather), and the KV cache is head-major with keys transposed
(k [B, K, H, S], v [B, K, S, H]) so that both attention matmuls read it in place: a [B, S, K, H] cache was
copied transposed every decode step, and [B, K, S, H] keys made the one-query score matmul ~4x slower.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.custom_batching import custom_vmap
from jaxtyping import Array, Bool, Float, Int

from omnir1_jax.models.qwen2_5_omni.config import TextConfig
from omnir1_jax.models.qwen2_5_omni.layers import Embed, Linear, RMSNorm, apply_rotary, linear
from omnir1_jax.models.qwen2_5_omni.sharding import constrain

KVCache = list  # one (k [B, K, H, S], v [B, K, S, H]) tuple per layer


class FusedWeights(NamedTuple):
    """One decoder layer's concatenated projection weights (see :func:`fused_weights`)."""

    qkv_kernel: Array  # [D, (N + 2K) H]
    qkv_bias: Array  # [(N + 2K) H]
    gate_up_kernel: Array  # [D, 2F]


@functools.cache
def _write_along(axis: int):
    """``dynamic_update_slice_in_dim(cache, new, index, axis)`` whose ``vmap`` with an unbatched index stays an
    in-place dynamic-update-slice (jax batches a dynamic-update-slice as a scatter, which XLA:CPU turns into a
    select and several copies of the whole cache per decode step: 3x the cost of a step). Differentiable: its
    JVP is the plain dynamic-update-slice of the tangents (``custom_vmap`` alone has no autodiff rule, and a
    rematerialised layer passes even a Python-int index in as a traced value)."""

    @custom_vmap
    def write(cache, new, index):
        return jax.lax.dynamic_update_slice_in_dim(cache, new, index, axis)

    @write.def_vmap
    def _batched(axis_size, in_batched, cache, new, index):
        cb, nb, ib = in_batched
        if ib:  # per-instance positions: the generic rule (a scatter)
            return jax.vmap(
                lambda c, n, i: jax.lax.dynamic_update_slice_in_dim(c, n, i, axis),
                in_axes=(0 if cb else None, 0 if nb else None, 0),
            )(cache, new, index), True
        cache = cache if cb else jnp.broadcast_to(cache, (axis_size,) + cache.shape)
        new = new if nb else jnp.broadcast_to(new, (axis_size,) + new.shape)
        return _write_along(axis + 1)(cache, new, index), True

    @jax.custom_jvp
    def differentiable(cache, new, index):
        return write(cache, new, index)

    @differentiable.defjvp
    def _jvp(primals, tangents):
        cache, new, index = primals
        t_cache, t_new, _ = tangents
        return differentiable(cache, new, index), jax.lax.dynamic_update_slice_in_dim(t_cache, t_new, index, axis)

    return differentiable


def cache_write(cache, new, index, axis: int):
    """Write ``new`` into ``cache`` at ``index`` along ``axis`` (the KV-cache update). A Python int index (the
    prefill, the scorer's prompt pass) is a plain dynamic-update-slice; a traced one (the decode loop's position,
    or any index inside a rematerialised layer) goes through :func:`_write_along`, so that the seed-parallel
    sampler's ``vmap`` keeps the write in place."""
    if isinstance(index, int):
        return jax.lax.dynamic_update_slice_in_dim(cache, new, index, axis)
    return _write_along(axis)(cache, new, jnp.asarray(index, jnp.int32))


def can_fuse() -> bool:
    """Whether concatenating column-parallel kernels is free (no mesh, or a mesh whose ``tensor`` axis is 1)."""
    mesh = jax.sharding.get_abstract_mesh()
    return mesh.empty or dict(mesh.shape).get("tensor", 1) == 1


def mrope_cos_sin(
    position_ids: Int[Array, "3 B T"], cfg: TextConfig
) -> tuple[Float[Array, "B T H"], Float[Array, "B T H"]]:
    """cos / sin tables of M-RoPE for 3-axis position ids (float32)."""
    hd = cfg.head_dim
    inv = 1.0 / (np.float32(cfg.rope_theta) ** (np.arange(0, hd, 2, dtype=np.float32) / np.float32(hd)))
    freqs = position_ids.astype(jnp.float32)[..., None] * jnp.asarray(inv, jnp.float32)  # [3, B, T, H/2]
    parts, off = [], 0
    for i, s in enumerate(cfg.mrope_section):
        parts.append(freqs[i % 3, ..., off : off + s])
        off += s
    f = jnp.concatenate(parts, axis=-1)
    emb = jnp.concatenate([f, f], axis=-1)
    return jnp.cos(emb), jnp.sin(emb)


ATTENTION_IMPLS = ("chunked", "dense", "dot_product")
Q_CHUNK = 512  # queries per chunk of the "chunked" attention


def gqa_attention(
    q: Float[Array, "B T N H"],
    k: Float[Array, "B K H S"],
    v: Float[Array, "B K S H"],
    mask: Bool[Array, "B T S"],
    *,
    scale: float,
    impl: str = "chunked",
    q_chunk: int = Q_CHUNK,
) -> Float[Array, "B T N H"]:
    """Grouped-query softmax attention over head-major keys (transposed) / values; ``mask`` True = attend.

    ``impl``: ``dense`` materialises the [B, K, G*T, S] float32 scores at once; ``chunked`` (default) does the
    same per chunk of ``q_chunk`` queries under ``lax.map`` with each chunk rematerialised in the backward pass,
    so at most one chunk's scores exist (every query still sees all S keys: the result is the dense one; for
    T <= q_chunk it *is* the dense path); ``dot_product`` is ``jax.nn.dot_product_attention`` with the
    backend's implementation (cuDNN's fused kernel where it applies on GPU, XLA elsewhere).
    """
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"attention impl must be one of {ATTENTION_IMPLS}, got {impl!r}")
    if impl == "dot_product":
        o = jax.nn.dot_product_attention(
            q, k.transpose(0, 3, 1, 2), v.transpose(0, 2, 1, 3), mask=mask[:, None], scale=scale
        )
        return o.astype(q.dtype)
    b, t, n, h = q.shape
    if impl == "dense" or t <= q_chunk:
        return _gqa_dense(q, k, v, mask, scale=scale)
    c = -(-t // -(-t // q_chunk))  # equal chunks of at most q_chunk
    m = -(-t // c)
    pad = m * c - t
    qs = jnp.pad(q, ((0, 0), (0, pad), (0, 0), (0, 0))).reshape(b, m, c, n, h).swapaxes(0, 1)
    ms = jnp.pad(mask, ((0, 0), (0, pad), (0, 0))).reshape(b, m, c, -1).swapaxes(0, 1)
    body = jax.checkpoint(lambda xs: _gqa_dense(xs[0], k, v, xs[1], scale=scale))
    o = jax.lax.map(body, (qs, ms))
    return o.swapaxes(0, 1).reshape(b, m * c, n, h)[:, :t]


def _gqa_dense(q, k, v, mask, *, scale):
    """Scores and softmax in float32; a query whose keys are all masked (left padding) gets uniform weights
    instead of NaN, like transformers' ``finfo.min`` additive masks (such rows are padding, never read). The
    G query heads of a key head and the T queries form one [G*T, H] x [H, S] matmul per (batch, key head)."""
    b, t, n, h = q.shape
    kh = k.shape[1]
    g = n // kh
    qg = q.reshape(b, t, kh, g, h).transpose(0, 2, 3, 1, 4).reshape(b, kh, g * t, h)
    s = jnp.einsum("bkqh,bkhs->bkqs", qg, k, preferred_element_type=jnp.float32) * scale
    s = s.reshape(b, kh, g, t, -1)
    s = jnp.where(mask[:, None, None, :, :], s, jnp.finfo(jnp.float32).min)
    p = jax.nn.softmax(s, axis=-1).astype(v.dtype).reshape(b, kh, g * t, -1)
    o = jnp.einsum("bkqs,bksh->bkqh", p, v)
    return o.reshape(b, kh, g, t, h).transpose(0, 3, 1, 2, 4).reshape(b, t, n, h)


class Attention(nnx.Module):
    def __init__(self, cfg: TextConfig, *, dtype, rngs: nnx.Rngs, attention: str = "chunked"):
        d, n, k, h = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.num_heads, self.num_kv_heads, self.head_dim = n, k, h
        self.attention = attention  # gqa_attention's impl
        self.q_proj = Linear(d, n * h, use_bias=True, dtype=dtype, rngs=rngs, axes=("embed", "heads"))
        self.k_proj = Linear(d, k * h, use_bias=True, dtype=dtype, rngs=rngs, axes=("embed", "heads"))
        self.v_proj = Linear(d, k * h, use_bias=True, dtype=dtype, rngs=rngs, axes=("embed", "heads"))
        self.o_proj = Linear(n * h, d, use_bias=False, dtype=dtype, rngs=rngs, axes=("heads", "embed"))

    def fused(self) -> tuple[Array, Array]:
        """q/k/v kernels and biases concatenated along the output axis."""
        ps = (self.q_proj, self.k_proj, self.v_proj)
        return (
            jnp.concatenate([p.kernel[...] for p in ps], axis=1),
            jnp.concatenate([p.bias[...] for p in ps], axis=0),
        )

    def __call__(self, x, cos, sin, mask, cache=None, write_index=None, fused: FusedWeights | None = None):
        b, t, _ = x.shape
        n, kh, hd = self.num_heads, self.num_kv_heads, self.head_dim
        if fused is None and can_fuse():
            fused = FusedWeights(*self.fused(), None)
        if fused is not None:
            qkv = linear(x, fused.qkv_kernel, fused.qkv_bias)
            q, k, v = jnp.split(qkv, [n * hd, (n + kh) * hd], axis=-1)
        else:
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        q = q.reshape(b, t, n, hd)
        k = k.reshape(b, t, kh, hd)
        v = v.reshape(b, t, kh, hd)
        cos, sin = cos.astype(q.dtype), sin.astype(q.dtype)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        k, v = k.transpose(0, 2, 3, 1), v.transpose(0, 2, 1, 3)  # k [B, K, H, T], v [B, K, T, H]
        if cache is not None and write_index is None:  # read-only prefix, attended before the new tokens
            k = jnp.concatenate([cache[0].astype(k.dtype), k], axis=3)
            v = jnp.concatenate([cache[1].astype(v.dtype), v], axis=2)
        elif cache is not None:
            ck, cv = cache
            k = cache_write(ck, k.astype(ck.dtype), write_index, 3)
            v = cache_write(cv, v.astype(cv.dtype), write_index, 2)
            cache = (k, v)
        o = gqa_attention(q, k, v, mask, scale=hd**-0.5, impl=self.attention)
        return self.o_proj(o.reshape(b, t, -1)), cache


class MLP(nnx.Module):
    """SwiGLU: ``down(silu(gate(x)) * up(x))``."""

    def __init__(self, d: int, f: int, *, use_bias: bool, dtype, rngs: nnx.Rngs):
        self.gate_proj = Linear(d, f, use_bias=use_bias, dtype=dtype, rngs=rngs, axes=("embed", "mlp"))
        self.up_proj = Linear(d, f, use_bias=use_bias, dtype=dtype, rngs=rngs, axes=("embed", "mlp"))
        self.down_proj = Linear(f, d, use_bias=use_bias, dtype=dtype, rngs=rngs, axes=("mlp", "embed"))

    def fused(self) -> Array:
        """gate / up kernels concatenated along the output axis (bias-free MLPs only)."""
        return jnp.concatenate([self.gate_proj.kernel[...], self.up_proj.kernel[...]], axis=1)

    def __call__(self, x, gate_up_kernel=None):
        if gate_up_kernel is None and self.gate_proj.bias is None and can_fuse():
            gate_up_kernel = self.fused()
        if gate_up_kernel is not None:
            gate, up = jnp.split(linear(x, gate_up_kernel), 2, axis=-1)
        else:
            gate, up = self.gate_proj(x), self.up_proj(x)
        return self.down_proj(jax.nn.silu(gate) * up)


class DecoderLayer(nnx.Module):
    def __init__(self, cfg: TextConfig, *, dtype, rngs: nnx.Rngs, attention: str = "chunked"):
        self.self_attn = Attention(cfg, dtype=dtype, rngs=rngs, attention=attention)
        self.mlp = MLP(cfg.hidden_size, cfg.intermediate_size, use_bias=False, dtype=dtype, rngs=rngs)
        self.input_layernorm = RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps, dtype=dtype)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps, dtype=dtype)

    def __call__(self, x, cos, sin, mask, cache=None, write_index=None, fused: FusedWeights | None = None):
        h, cache = self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, write_index, fused)
        x = x + h
        x = x + self.mlp(self.post_attention_layernorm(x), None if fused is None else fused.gate_up_kernel)
        return x, cache


def _layer_call(layer, x, cos, sin, mask, cache, write_index, fused):
    return layer(x, cos, sin, mask, cache, write_index, fused)


# Remat policies: True / "full" saves nothing inside a layer (recompute it all in the backward pass); "dots"
# keeps the outputs of matmuls without batch dimensions (the projections) and recomputes the rest.
_REMAT = {
    "full": nnx.remat(_layer_call),
    "dots": nnx.remat(_layer_call, policy=jax.checkpoint_policies.dots_with_no_batch_dims_saveable),
}


def remat_call(remat):
    """The layer call for a ``remat`` setting (False / None: no rematerialisation; True = "full"; "dots")."""
    if not remat:
        return _layer_call
    key = "full" if remat is True else remat
    if key not in _REMAT:
        raise ValueError(f"remat must be a bool, 'full' or 'dots', got {remat!r}")
    return _REMAT[key]


class TextModel(nnx.Module):
    """Embedding, decoder stack and final norm (transformers' ``model.language_model``)."""

    def __init__(self, cfg: TextConfig, *, dtype, rngs: nnx.Rngs, attention: str = "chunked"):
        self.cfg = cfg
        self.embed_tokens = Embed(cfg.vocab_size, cfg.hidden_size, dtype=dtype, rngs=rngs)
        self.layers = nnx.List(
            [DecoderLayer(cfg, dtype=dtype, rngs=rngs, attention=attention) for _ in range(cfg.num_hidden_layers)]
        )
        self.norm = RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps, dtype=dtype)

    def fused_weights(self) -> list[FusedWeights] | None:
        """Per-layer concatenated q/k/v and gate/up weights, or None where :func:`can_fuse` is False.

        Decoding computes these once outside its loop and passes them as ``fused=`` (otherwise every step would
        concatenate); training needs nothing: each layer concatenates on the fly and the gradient splits back.
        """
        if not can_fuse():
            return None
        return [FusedWeights(*layer.self_attn.fused(), layer.mlp.fused()) for layer in self.layers]

    def __call__(
        self,
        embeds: Float[Array, "B T D"],
        position_ids: Int[Array, "3 B T"],
        mask: Bool[Array, "B T S"],
        *,
        caches: KVCache | None = None,
        write_index=None,
        remat: bool = False,
        act_sharding=None,
        fused: list[FusedWeights] | None = None,
    ) -> tuple[Float[Array, "B T D"], KVCache | None]:
        """Run the stack. With ``caches`` (k [B, K, H, S], v [B, K, S, H] per layer) new keys/values are written at
        ``write_index`` and attention runs over the whole cache (``mask`` is then [B, T, S]). With ``caches`` and
        ``write_index=None`` the caches are a read-only prefix of S tokens that the T new ones attend to before
        themselves (``mask`` [B, T, S + T]); they are returned unchanged.

        ``remat=True`` (or ``"full"``) rematerialises each layer in the backward pass, ``"dots"`` keeps its matmul
        outputs (:func:`remat_call`); ``fused`` is :meth:`fused_weights`.
        """
        cos, sin = mrope_cos_sin(position_ids, self.cfg)
        call = remat_call(remat)
        x = embeds
        new_caches = [] if caches is not None else None
        for i, layer in enumerate(self.layers):
            x = constrain(x, act_sharding)
            cache = None if caches is None else caches[i]
            fw = None if fused is None else fused[i]
            x, cache = call(layer, x, cos, sin, mask, cache, write_index, fw)
            if caches is not None:
                new_caches.append(cache)
        return self.norm(x), new_caches


def causal_padding_mask(attention_mask: Bool[Array, "B T"]) -> Bool[Array, "B T T"]:
    """Causal mask that also hides padding keys."""
    t = attention_mask.shape[1]
    causal = jnp.tril(jnp.ones((t, t), bool))
    return causal[None] & attention_mask[:, None, :].astype(bool)
