"""Audio encoder of the Thinker (Whisper-style): conv front end per chunk, chunked attention, pooling, projection.

Shape legend: A audios, M mel bins, C chunks (each <= 2 * n_window mel frames), L frames per padded chunk,
L2 = ceil(L / 2) frames after the stride-2 conv, S valid encoder frames (all chunks), Q audio tokens
(S pooled by 2 per audio), D encoder width, O output width (text hidden size).

Each audio's valid mel frames are cut into chunks of ``2 * n_window`` frames; the convolutions and the
sinusoidal positions restart in every chunk and attention stays inside a chunk. The host (:func:`audio_layout`)
does the ragged cutting; the encoder sees padded chunks and static index arrays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct
from jaxtyping import Array, Bool, Float, Int

from omnir1_jax.models.qwen2_5_omni.config import AudioConfig
from omnir1_jax.models.qwen2_5_omni.layers import _INIT, Embed, LayerNorm, Linear, masked_attention


@struct.dataclass
class AudioLayout:
    """Host-prepared chunks and index arrays for one encoder call."""

    chunks: Float[Array, "C L M"]  # zero-padded mel chunks
    chunk_mask: Bool[Array, "C L"]  # True on real frames
    valid_index: Int[Array, " S"]  # flat index into [C * L2] of frames that exist after the stride-2 conv
    segment: Int[Array, " S"]  # chunk id of each valid frame (attention stays inside a chunk)
    pool_index: Int[Array, " Q"]  # first frame of each averaged pair


def audio_layout(cfg: AudioConfig, input_features, feature_attention_mask) -> tuple[AudioLayout, np.ndarray]:
    """Cut ``input_features`` [A, M, F] (valid frames where ``feature_attention_mask`` [A, F] is 1) into chunks.

    Returns the layout and the mel lengths [A].
    """
    feats = np.asarray(input_features, np.float32)
    mask = np.asarray(feature_attention_mask).astype(bool)
    if feats.ndim != 3 or mask.shape != (feats.shape[0], feats.shape[2]):
        raise ValueError(
            f"input_features {feats.shape} and feature_attention_mask {mask.shape} do not match ([A, M, F] and [A, F])"
        )
    if feats.shape[1] != cfg.num_mel_bins:
        raise ValueError(f"input_features has {feats.shape[1]} mel bins, the model expects {cfg.num_mel_bins}")
    lens = mask.sum(-1).astype(np.int64)
    frames = np.concatenate([feats[a][:, mask[a]].T for a in range(len(lens))], axis=0)  # [sum F, M]
    cw = 2 * cfg.n_window
    chunk_lens = []
    for n in lens.tolist():
        k = -(-n // cw)
        cl = [cw] * k
        if k and n % cw:
            cl[-1] = n % cw
        chunk_lens.extend(cl)
    chunk_lens = np.asarray(chunk_lens, np.int64)
    maxlen = int(chunk_lens.max())
    c = len(chunk_lens)
    chunks = np.zeros((c, maxlen, feats.shape[1]), np.float32)
    cmask = np.zeros((c, maxlen), bool)
    start = 0
    for i, n in enumerate(chunk_lens.tolist()):
        chunks[i, :n] = frames[start : start + n]
        cmask[i, :n] = True
        start += n
    after = (chunk_lens - 1) // 2 + 1
    l2 = (maxlen - 1) // 2 + 1
    valid = np.arange(l2)[None, :] < after[:, None]
    valid_index = np.flatnonzero(valid.reshape(-1)).astype(np.int32)
    segment = np.repeat(np.arange(c), after).astype(np.int32)
    audio_after = (lens - 1) // 2 + 1
    pooled = (audio_after - 2) // 2 + 1
    offsets = np.concatenate([[0], np.cumsum(audio_after)[:-1]])
    pool_index = np.concatenate([off + 2 * np.arange(q) for off, q in zip(offsets, pooled)]).astype(np.int32)
    return AudioLayout(chunks, cmask, valid_index, segment, pool_index), lens


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> np.ndarray:
    """Whisper's fixed positional table [length, channels] (sin half, then cos half), float32."""
    inc = np.log(max_timescale) / (channels // 2 - 1)
    inv = np.exp(np.float32(-inc) * np.arange(channels // 2, dtype=np.float32)).astype(np.float32)
    t = np.arange(length, dtype=np.float32)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


class Conv1d(nnx.Module):
    """torch ``nn.Conv1d`` on [N, L, Cin] inputs; ``kernel`` is [W, Cin, Cout] (torch weight transposed)."""

    def __init__(self, cin: int, cout: int, *, width: int, stride: int, dtype, rngs: nnx.Rngs):
        # The conv front end is small and stays replicated.
        self.kernel = nnx.Param(_INIT(rngs.params(), (width, cin, cout), dtype), logical_axes=(None, None, None))
        self.bias = nnx.Param(jnp.zeros((cout,), dtype), logical_axes=(None,))
        self.stride = stride

    def __call__(self, x):
        k = self.kernel[...]
        y = jax.lax.conv_general_dilated(
            x.astype(k.dtype), k, (self.stride,), [(1, 1)], dimension_numbers=("NWC", "WIO", "NWC")
        )
        return y + self.bias[...]


class AudioAttention(nnx.Module):
    def __init__(self, cfg: AudioConfig, *, dtype, rngs: nnx.Rngs):
        d = cfg.d_model
        self.num_heads, self.head_dim = cfg.encoder_attention_heads, d // cfg.encoder_attention_heads
        self.q_proj = Linear(d, d, use_bias=True, dtype=dtype, rngs=rngs, axes=("embed", "heads"))
        self.k_proj = Linear(d, d, use_bias=False, dtype=dtype, rngs=rngs, axes=("embed", "heads"))
        self.v_proj = Linear(d, d, use_bias=True, dtype=dtype, rngs=rngs, axes=("embed", "heads"))
        self.out_proj = Linear(d, d, use_bias=True, dtype=dtype, rngs=rngs, axes=("heads", "embed"))

    def __call__(self, x, segment):
        s = x.shape[0]
        shape = (1, s, self.num_heads, self.head_dim)
        q, k, v = self.q_proj(x).reshape(shape), self.k_proj(x).reshape(shape), self.v_proj(x).reshape(shape)
        mask = (segment[:, None] == segment[None, :])[None]
        o = masked_attention(q, k, v, mask, scale=self.head_dim**-0.5)
        return self.out_proj(o.reshape(s, -1))


class AudioEncoderLayer(nnx.Module):
    def __init__(self, cfg: AudioConfig, *, dtype, rngs: nnx.Rngs):
        d = cfg.d_model
        self.self_attn = AudioAttention(cfg, dtype=dtype, rngs=rngs)
        self.self_attn_layer_norm = LayerNorm(d, dtype=dtype)
        self.fc1 = Linear(d, cfg.encoder_ffn_dim, use_bias=True, dtype=dtype, rngs=rngs, axes=("embed", "mlp"))
        self.fc2 = Linear(cfg.encoder_ffn_dim, d, use_bias=True, dtype=dtype, rngs=rngs, axes=("mlp", "embed"))
        self.final_layer_norm = LayerNorm(d, dtype=dtype)

    def __call__(self, x, segment):
        x = x + self.self_attn(self.self_attn_layer_norm(x), segment)
        return x + self.fc2(jax.nn.gelu(self.fc1(self.final_layer_norm(x)), approximate=False))


class AudioEncoder(nnx.Module):
    """transformers' ``model.audio_tower``; ``__call__(layout) -> [Q, O]`` audio token embeddings."""

    def __init__(self, cfg: AudioConfig, *, dtype, rngs: nnx.Rngs):
        self.cfg = cfg
        d = cfg.d_model
        self.conv1 = Conv1d(cfg.num_mel_bins, d, width=3, stride=1, dtype=dtype, rngs=rngs)
        self.conv2 = Conv1d(d, d, width=3, stride=2, dtype=dtype, rngs=rngs)
        # Present in checkpoints (begin / end of audio embeddings) but unused by the Thinker's forward.
        self.audio_bos_eos_token = Embed(2, cfg.output_dim, dtype=dtype, rngs=rngs, axes=(None, None))
        self.layers = nnx.List([AudioEncoderLayer(cfg, dtype=dtype, rngs=rngs) for _ in range(cfg.encoder_layers)])
        self.ln_post = LayerNorm(d, dtype=dtype)
        self.proj = Linear(d, cfg.output_dim, use_bias=True, dtype=dtype, rngs=rngs, axes=("mlp", "embed"))

    def __call__(self, layout: AudioLayout) -> Float[Array, "Q O"]:
        m = layout.chunk_mask[..., None]
        x = jax.nn.gelu(self.conv1(layout.chunks), approximate=False) * m.astype(self.conv1.kernel.dtype)
        x = jax.nn.gelu(self.conv2(x), approximate=False)  # [C, L2, D]
        c, l2, d = x.shape
        if l2 > self.cfg.max_source_positions:
            raise ValueError(f"audio chunk of {l2} frames exceeds max_source_positions={self.cfg.max_source_positions}")
        x = x + jnp.asarray(sinusoids(self.cfg.max_source_positions, d)[:l2], x.dtype)[None]
        x = x.reshape(c * l2, d)[layout.valid_index]
        for layer in self.layers:
            x = layer(x, layout.segment)
        x = (x[layout.pool_index] + x[layout.pool_index + 1]) / 2
        return self.proj(self.ln_post(x))
