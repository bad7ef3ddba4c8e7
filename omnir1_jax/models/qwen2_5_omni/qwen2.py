"""Load a Hugging Face ``Qwen2ForCausalLM`` directory (a Qwen2 / Qwen2.5 text model) into the Thinker's text path.

The Thinker's text decoder *is* a Qwen2 decoder: the same modules (q/k/v with bias, o without, SwiGLU MLP,
RMSNorm, tied or separate ``lm_head``) under the same checkpoint keys (``model.layers...``, ``model.norm``,
``model.embed_tokens``, ``lm_head``), and on text-only inputs its multimodal RoPE is plain 1-D RoPE (the three
position axes are equal). So a text model loads into a Thinker whose ``language_model`` and ``lm_head`` hold its
weights and whose vision / audio towers are built at the smallest valid shapes and never run: a text-only
prompt (``input_ids`` + ``attention_mask``, no pixels or audio) never reaches them. Logits equal transformers'
``Qwen2ForCausalLM`` on the same ids (``tests/models/test_qwen2_text.py``, float32, 1e-4).

    policy = from_hf_qwen2("checkpoints/Qwen2.5-0.5B")          # a Qwen2_5OmniThinker
    policy(input_ids=ids, attention_mask=mask).logits

Positions: ours are ``cumsum(attention_mask) - 1`` (left padding does not shift a row's positions), as
transformers' ``generate`` computes them; transformers' plain forward without ``position_ids`` uses
``0 .. T-1`` for every row, so the two agree on unpadded rows.

The placeholder token ids of the unused towers (image, video, audio, their start / end markers) are set to the
text vocabulary's last ids; they only matter when media inputs are given, which a text model never gets.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from omnir1_jax.models.qwen2_5_omni.config import AudioConfig, ConfigError, Qwen2_5OmniConfig, TextConfig, VisionConfig
from omnir1_jax.models.qwen2_5_omni.convert import _TO_FLAX, _hf_shape, flax_name, hf_key
from omnir1_jax.models.qwen2_5_omni.safetensors_io import CheckpointError, SafetensorsDir
from omnir1_jax.models.qwen2_5_omni.sharding import ShardingConfig
from omnir1_jax.models.qwen2_5_omni.thinker import Qwen2_5OmniThinker, init_model

__all__ = ["config_from_qwen2", "from_hf_qwen2"]

_TEXT_PREFIXES = ("language_model.", "lm_head.")


def _rope_section(head_dim: int) -> tuple[int, int, int]:
    """An M-RoPE split of the ``head_dim / 2`` frequencies (any split is 1-D RoPE on text)."""
    half = head_dim // 2
    return (half - 2 * (half // 3), half // 3, half // 3)


def config_from_qwen2(d: Mapping[str, Any], *, source: str = "config.json") -> Qwen2_5OmniConfig:
    """The Thinker config of a ``Qwen2ForCausalLM`` ``config.json`` dict (``model_type`` ``qwen2``): its text
    decoder, minimal unused encoders, placeholder ids at the top of the vocabulary."""
    if d.get("model_type") != "qwen2":
        raise ConfigError(
            f"{source}: model_type={d.get('model_type')!r}, expected 'qwen2' (a Qwen2ForCausalLM "
            "directory; a Qwen2.5-Omni checkpoint loads with from_hf)"
        )
    if d.get("use_sliding_window"):
        raise ConfigError(f"{source}: use_sliding_window=true is not supported (full attention only)")
    rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        raise ConfigError(f"{source}: rope_type={rope.get('rope_type')!r} is not supported (default RoPE only)")
    try:
        heads = int(d["num_attention_heads"])
        hidden = int(d["hidden_size"])
        vocab = int(d["vocab_size"])
        text = TextConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=int(d["intermediate_size"]),
            num_hidden_layers=int(d["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=int(d.get("num_key_value_heads") or heads),
            rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
            rope_theta=float(rope.get("rope_theta", d.get("rope_theta", 10000.0))),
            mrope_section=_rope_section(hidden // heads),
            max_position_embeddings=int(d.get("max_position_embeddings", 32768)),
            tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
        )
    except KeyError as e:
        raise ConfigError(f"{source}: missing field {e.args[0]!r}") from None
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    if vocab < 8:
        raise ConfigError(f"{source}: vocab_size={vocab} is too small (>= 8 ids needed for the unused placeholders)")
    top = vocab - 1
    return Qwen2_5OmniConfig(
        text=text,
        vision=VisionConfig(
            depth=1,
            hidden_size=8,
            intermediate_size=8,
            num_heads=1,
            window_size=28,
            out_hidden_size=hidden,
            fullatt_block_indexes=(0,),
        ),
        audio=AudioConfig(
            num_mel_bins=8,
            encoder_layers=1,
            encoder_attention_heads=1,
            encoder_ffn_dim=8,
            d_model=8,
            n_window=4,
            output_dim=hidden,
        ),
        image_token_id=top,
        video_token_id=top - 1,
        audio_token_id=top - 2,
        vision_start_token_id=top - 3,
        vision_end_token_id=top - 4,
        audio_start_token_id=top - 5,
        audio_end_token_id=top - 6,
        user_token_id=top - 7,
    )


def from_hf_qwen2(
    path: str | os.PathLike, *, dtype=jnp.float32, mesh=None, sharding: ShardingConfig | None = None, seed: int = 0
) -> Qwen2_5OmniThinker:
    """A Thinker holding the ``Qwen2ForCausalLM`` checkpoint of ``path`` (``config.json`` + ``*.safetensors``)
    in its text path; the unused encoders are initialised from ``seed``. ``mesh`` / ``sharding`` as in
    :func:`~omnir1_jax.models.qwen2_5_omni.init_model` (the text weights are placed where the model's are)."""
    path = os.fspath(path)
    cfg_file = os.path.join(path, "config.json")
    if not os.path.isfile(cfg_file):
        raise ConfigError(f"{cfg_file}: no such file")
    with open(cfg_file) as f:
        try:
            d = json.load(f)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{cfg_file}: invalid JSON ({e})") from None
    cfg = config_from_qwen2(d, source=cfg_file)
    files = SafetensorsDir(path)
    keys = set(files.keys())
    model = init_model(cfg, seed=seed, dtype=dtype, mesh=mesh, sharding=sharding)
    graphdef, state = nnx.split(model)

    def load(p, leaf):
        name = flax_name(p)
        if not name.startswith(_TEXT_PREFIXES) or not isinstance(leaf, jax.Array):
            return leaf
        key, kind = hf_key(name)
        if key not in keys:
            raise CheckpointError(f"{path}: tensor {key!r} (for {name}) not found")
        want = _hf_shape(kind, tuple(leaf.shape), cfg)
        if tuple(files.shape(key)) != want:
            raise CheckpointError(f"{path}: tensor {key!r} has shape {tuple(files.shape(key))}, expected {want}")
        value = jnp.asarray(np.asarray(_TO_FLAX[kind](files.get(key))), dtype=leaf.dtype)
        return jax.device_put(value, leaf.sharding)

    state = jax.tree_util.tree_map_with_path(load, state)
    return nnx.merge(graphdef, state)
