"""Vision encoder of the Thinker (Qwen2.5-VL ViT): 3-D patch embedding, window attention, 2-D RoPE, 2x2 merger.

Shape legend: P pixel patches (sum of t*h*w over the grids), U merged units (P / m^2), D vision width,
N heads, H head dim, E patch length (C * temporal_patch * patch * patch), O output width (text hidden size).

Data-dependent index arithmetic (window order, attention segments, rotary coordinates) is computed on the host
from the concrete ``grid_thw`` by :func:`vision_layout`; the encoder itself has static shapes and is jittable.

Window attention: tokens are reordered so that every window of ``window_size`` pixels (in merged units) is
contiguous; blocks listed in ``fullatt_block_indexes`` attend within a whole frame group instead. Both are
expressed as segment ids over the reordered sequence.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct
from jaxtyping import Array, Float, Int

from omnir1_jax.models.qwen2_5_omni.config import VisionConfig
from omnir1_jax.models.qwen2_5_omni.layers import Linear, RMSNorm, rotate_half, segment_attention
from omnir1_jax.models.qwen2_5_omni.sharding import constrain
from omnir1_jax.models.qwen2_5_omni.text import MLP


@struct.dataclass
class VisionLayout:
    """Host-computed indices for one encoder call over a list of grids (all int32 arrays)."""

    window_index: Int[Array, " U"]  # merged unit order used inside the encoder
    reverse_index: Int[Array, " U"]  # argsort(window_index): back to prompt order after the merger
    rot_pos: Int[Array, "P 2"]  # (row, col) of each patch, already in window order
    full_segment: Int[Array, " P"]  # frame-group id per reordered patch (full-attention blocks)
    window_segment: Int[Array, " P"]  # window id per reordered patch (window-attention blocks)
    # Longest segment of each kind (static; 0 = unknown, then attention is dense over all P patches).
    max_full: int = struct.field(pytree_node=False, default=0)
    max_window: int = struct.field(pytree_node=False, default=0)


def _segments(cu: np.ndarray, n: int) -> np.ndarray:
    return (np.searchsorted(cu, np.arange(n), side="right") - 1).astype(np.int32)


def vision_layout(cfg: VisionConfig, grid_thw) -> VisionLayout:
    """Compute the window order, attention segments and rotary coordinates for ``grid_thw`` [n, 3]."""
    grid_thw = np.asarray(grid_thw, np.int64).reshape(-1, 3)
    m = cfg.spatial_merge_size
    unit = m * m
    win = cfg.window_size // m // cfg.patch_size
    rot, window_index, cu_win, frame_lens = [], [], [0], []
    offset = 0
    for t, h, w in grid_thw.tolist():
        if h % m or w % m:
            raise ValueError(f"grid_thw ({t}, {h}, {w}): h and w must be multiples of spatial_merge_size={m}")
        # Patches are stored block-major: (row block, col block, row in block, col in block).
        hh, ww = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        hh = hh.reshape(h // m, m, w // m, m).transpose(0, 2, 1, 3).reshape(-1)
        ww = ww.reshape(h // m, m, w // m, m).transpose(0, 2, 1, 3).reshape(-1)
        rot.append(np.tile(np.stack([hh, ww], -1), (t, 1)))
        gh, gw = h // m, w // m
        idx = np.arange(t * gh * gw).reshape(t, gh, gw)
        ph, pw = win - gh % win, win - gw % win
        padded = np.pad(idx, ((0, 0), (0, ph), (0, pw)), constant_values=-1)
        nh, nw = (gh + ph) // win, (gw + pw) // win
        padded = padded.reshape(t, nh, win, nw, win).transpose(0, 1, 3, 2, 4).reshape(t, nh * nw, win * win)
        counts = (padded >= 0).sum(-1).reshape(-1)
        flat = padded.reshape(-1)
        window_index.append(flat[flat >= 0] + offset)
        cu_win.extend((np.cumsum(counts) * unit + cu_win[-1]).tolist())
        frame_lens.extend([h * w] * t)
        offset += t * gh * gw
    window_index = np.concatenate(window_index).astype(np.int32)
    cu_win = np.asarray(cu_win, np.int64)
    cu_win = cu_win[np.concatenate([[True], np.diff(cu_win) != 0])]  # unique_consecutive
    cu_full = np.concatenate([[0], np.cumsum(frame_lens)])
    n = int(cu_full[-1])
    rot = np.concatenate(rot).reshape(-1, unit, 2)[window_index].reshape(n, 2)
    return VisionLayout(
        window_index=window_index,
        reverse_index=np.argsort(window_index).astype(np.int32),
        rot_pos=rot.astype(np.int32),
        full_segment=_segments(cu_full, n),
        window_segment=_segments(cu_win, n),
        max_full=int(np.diff(cu_full).max()) if n else 0,
        max_window=int(np.diff(cu_win).max()) if len(cu_win) > 1 else 0,
    )


class VisionAttention(nnx.Module):
    def __init__(self, cfg: VisionConfig, *, dtype, rngs: nnx.Rngs):
        d = cfg.hidden_size
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.q = Linear(d, d, use_bias=True, dtype=dtype, rngs=rngs, axes=("embed", "heads"))
        self.k = Linear(d, d, use_bias=True, dtype=dtype, rngs=rngs, axes=("embed", "heads"))
        self.v = Linear(d, d, use_bias=True, dtype=dtype, rngs=rngs, axes=("embed", "heads"))
        self.proj = Linear(d, d, use_bias=True, dtype=dtype, rngs=rngs, axes=("heads", "embed"))

    def __call__(self, x, cos, sin, segment, max_segment: int = 0):
        p = x.shape[0]
        shape = (1, p, self.num_heads, self.head_dim)
        q, k, v = self.q(x).reshape(shape), self.k(x).reshape(shape), self.v(x).reshape(shape)
        dt = q.dtype
        c, s = cos[None, :, None, :], sin[None, :, None, :]
        q = (q.astype(jnp.float32) * c + rotate_half(q.astype(jnp.float32)) * s).astype(dt)
        k = (k.astype(jnp.float32) * c + rotate_half(k.astype(jnp.float32)) * s).astype(dt)
        o = segment_attention(q, k, v, segment, scale=self.head_dim**-0.5, max_segment=max_segment)
        return self.proj(o.reshape(p, -1))


class VisionBlock(nnx.Module):
    def __init__(self, cfg: VisionConfig, *, dtype, rngs: nnx.Rngs):
        self.norm1 = RMSNorm(cfg.hidden_size, eps=1e-6, dtype=dtype)
        self.norm2 = RMSNorm(cfg.hidden_size, eps=1e-6, dtype=dtype)
        self.attn = VisionAttention(cfg, dtype=dtype, rngs=rngs)
        self.mlp = MLP(cfg.hidden_size, cfg.intermediate_size, use_bias=True, dtype=dtype, rngs=rngs)

    def __call__(self, x, cos, sin, segment, max_segment: int = 0):
        x = x + self.attn(self.norm1(x), cos, sin, segment, max_segment)
        return x + self.mlp(self.norm2(x))


def _block_call(blk, x, cos, sin, segment, max_segment):
    return blk(x, cos, sin, segment, max_segment)


_remat_block_call = nnx.remat(_block_call, static_argnums=(5,))


class PatchMerger(nnx.Module):
    """RMSNorm, then concatenate each 2x2 block of patches and project with a GELU MLP."""

    def __init__(self, cfg: VisionConfig, *, dtype, rngs: nnx.Rngs):
        d = cfg.hidden_size * cfg.spatial_merge_size**2
        self.hidden = d
        self.ln_q = RMSNorm(cfg.hidden_size, eps=1e-6, dtype=dtype)
        self.mlp_0 = Linear(d, d, use_bias=True, dtype=dtype, rngs=rngs, axes=("embed", "mlp"))
        self.mlp_2 = Linear(d, cfg.out_hidden_size, use_bias=True, dtype=dtype, rngs=rngs, axes=("mlp", "embed"))

    def __call__(self, x):
        x = self.ln_q(x).reshape(-1, self.hidden)
        return self.mlp_2(jax.nn.gelu(self.mlp_0(x), approximate=False))


class PatchEmbed(nnx.Module):
    """Conv3d with kernel = stride = (temporal_patch, patch, patch) on pre-cut patches == one matmul."""

    def __init__(self, cfg: VisionConfig, *, dtype, rngs: nnx.Rngs):
        self.proj = Linear(
            cfg.patch_dim, cfg.hidden_size, use_bias=False, dtype=dtype, rngs=rngs, axes=("patch", "embed")
        )

    def __call__(self, pixels):
        return self.proj(pixels)


class VisionEncoder(nnx.Module):
    """transformers' ``model.visual``; ``__call__(pixels [P, E], layout) -> [U, O]`` in prompt order."""

    def __init__(self, cfg: VisionConfig, *, dtype, rngs: nnx.Rngs):
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg, dtype=dtype, rngs=rngs)
        self.blocks = nnx.List([VisionBlock(cfg, dtype=dtype, rngs=rngs) for _ in range(cfg.depth)])
        self.merger = PatchMerger(cfg, dtype=dtype, rngs=rngs)

    def rotary(self, rot_pos):
        hd = self.cfg.head_dim
        sd = hd // 2
        inv = 1.0 / (np.float32(self.cfg.rope_theta) ** (np.arange(0, sd, 2, dtype=np.float32) / np.float32(sd)))
        f = rot_pos.astype(jnp.float32)[..., None] * jnp.asarray(inv)  # [P, 2, H/4]
        f = jnp.concatenate([f[:, 0], f[:, 1]], axis=-1)
        f = jnp.concatenate([f, f], axis=-1)
        return jnp.cos(f), jnp.sin(f)

    def __call__(
        self, pixels: Float[Array, "P E"], layout: VisionLayout, *, remat=False, act_sharding=None
    ) -> Float[Array, "U O"]:
        """Encode; ``remat`` (truthy) rematerialises each block in the backward pass; ``act_sharding`` constrains
        the [P, D] activations at block boundaries (patches over the batch axes, see :mod:`.sharding`)."""
        unit = self.cfg.spatial_merge_size**2
        x = self.patch_embed(pixels.astype(self.patch_embed.proj.kernel.dtype))
        p, d = x.shape
        x = x.reshape(p // unit, unit, d)[layout.window_index].reshape(p, d)
        cos, sin = self.rotary(layout.rot_pos)
        for i, blk in enumerate(self.blocks):
            full = i in self.cfg.fullatt_block_indexes
            seg = layout.full_segment if full else layout.window_segment
            longest = layout.max_full if full else layout.max_window
            x = constrain(x, act_sharding)
            x = (_remat_block_call if remat else _block_call)(blk, x, cos, sin, seg, longest)
        return self.merger(x)[layout.reverse_index]
