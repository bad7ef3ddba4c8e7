"""Configuration of the Qwen2.5-Omni Thinker (System 1 of Omni-R1), mirroring transformers' config classes.

The dataclasses hold only what the Flax model needs; :meth:`Qwen2_5OmniConfig.from_hf_dict` reads a
checkpoint's ``config.json`` (either a Thinker-only config, ``model_type == "qwen2_5_omni_thinker"``, or the
full Omni config whose ``thinker_config`` holds it) and :meth:`Qwen2_5OmniConfig.to_hf_dict` writes one that
``transformers.Qwen2_5OmniThinkerConfig`` accepts.

Presets: :func:`tiny` (a CPU test model using the tiny tokenizer's ids), :func:`qwen2_5_omni_3b` and
:func:`qwen2_5_omni_7b` (the released checkpoints' shapes).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any


class ConfigError(ValueError):
    """A configuration value (or a config.json field) is missing or invalid."""


def _check(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{where}: {msg}")


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """Qwen2 text decoder of the Thinker."""

    vocab_size: int = 152064
    hidden_size: int = 3584
    intermediate_size: int = 18944
    num_hidden_layers: int = 28
    num_attention_heads: int = 28
    num_key_value_heads: int = 4
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    # Split of the head_dim/2 rotary frequencies over (temporal, height, width) position axes.
    mrope_section: tuple[int, ...] = (16, 24, 24)
    max_position_embeddings: int = 32768
    # Whether lm_head shares the token embedding matrix (False for the released Thinkers).
    tie_word_embeddings: bool = False

    def __post_init__(self):
        w = "TextConfig"
        for f in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
        ):
            _check(getattr(self, f) > 0, w, f"{f}={getattr(self, f)} must be > 0")
        _check(
            self.hidden_size % self.num_attention_heads == 0,
            w,
            f"hidden_size={self.hidden_size} not divisible by num_attention_heads={self.num_attention_heads}",
        )
        _check(
            self.num_attention_heads % self.num_key_value_heads == 0,
            w,
            f"num_attention_heads={self.num_attention_heads} not divisible by "
            f"num_key_value_heads={self.num_key_value_heads}",
        )
        object.__setattr__(self, "mrope_section", tuple(int(s) for s in self.mrope_section))
        _check(
            sum(self.mrope_section) * 2 == self.head_dim,
            w,
            f"mrope_section={self.mrope_section} must sum to head_dim/2={self.head_dim // 2}",
        )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    """Qwen2.5-VL style vision encoder (window attention ViT + 2x2 patch merger)."""

    depth: int = 32
    hidden_size: int = 1280
    intermediate_size: int = 3420
    num_heads: int = 16
    in_channels: int = 3
    patch_size: int = 14
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    # Window side in pixels; windows hold (window_size // spatial_merge_size // patch_size)^2 merged units.
    window_size: int = 112
    out_hidden_size: int = 3584
    fullatt_block_indexes: tuple[int, ...] = (7, 15, 23, 31)
    rope_theta: float = 10000.0

    def __post_init__(self):
        w = "VisionConfig"
        _check(
            self.hidden_size % self.num_heads == 0,
            w,
            f"hidden_size={self.hidden_size} not divisible by num_heads={self.num_heads}",
        )
        _check(self.head_dim % 4 == 0, w, f"head_dim={self.head_dim} must be a multiple of 4 (2-D rotary)")
        object.__setattr__(self, "fullatt_block_indexes", tuple(int(i) for i in self.fullatt_block_indexes))
        _check(
            all(0 <= i < self.depth for i in self.fullatt_block_indexes),
            w,
            f"fullatt_block_indexes={self.fullatt_block_indexes} out of range for depth={self.depth}",
        )
        _check(
            self.window_size // self.spatial_merge_size // self.patch_size >= 1,
            w,
            f"window_size={self.window_size} smaller than one merged patch",
        )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def patch_dim(self) -> int:
        """Length of one flattened pixel patch (C * temporal_patch * patch * patch)."""
        return self.in_channels * self.temporal_patch_size * self.patch_size**2


@dataclasses.dataclass(frozen=True)
class AudioConfig:
    """Whisper-style audio encoder with chunked attention."""

    num_mel_bins: int = 128
    encoder_layers: int = 32
    encoder_attention_heads: int = 20
    encoder_ffn_dim: int = 5120
    d_model: int = 1280
    max_source_positions: int = 1500
    # Attention chunks hold 2 * n_window mel frames (n_window frames after the stride-2 conv).
    n_window: int = 100
    output_dim: int = 3584
    scale_embedding: bool = False

    def __post_init__(self):
        w = "AudioConfig"
        _check(
            self.d_model % self.encoder_attention_heads == 0,
            w,
            f"d_model={self.d_model} not divisible by encoder_attention_heads={self.encoder_attention_heads}",
        )
        _check(self.d_model % 2 == 0, w, f"d_model={self.d_model} must be even (sinusoidal positions)")
        _check(self.n_window > 0, w, f"n_window={self.n_window} must be > 0")


@dataclasses.dataclass(frozen=True)
class Qwen2_5OmniConfig:
    """The Thinker: text decoder + vision encoder + audio encoder + special token ids.

    ``position_id_per_seconds`` (25) and ``seconds_per_chunk`` (2) define the temporal rotary positions of
    video / audio tokens and the interleaving of video and audio chunks (``use_audio_in_video``).
    """

    text: TextConfig = dataclasses.field(default_factory=TextConfig)
    vision: VisionConfig = dataclasses.field(default_factory=VisionConfig)
    audio: AudioConfig = dataclasses.field(default_factory=AudioConfig)
    audio_token_id: int = 151646
    image_token_id: int = 151655
    video_token_id: int = 151656
    vision_start_token_id: int = 151652
    vision_end_token_id: int = 151653
    audio_start_token_id: int = 151647
    audio_end_token_id: int = 151648
    user_token_id: int = 872
    position_id_per_seconds: int = 25
    seconds_per_chunk: int = 2

    def __post_init__(self):
        w = "Qwen2_5OmniConfig"
        _check(
            self.vision.out_hidden_size == self.text.hidden_size,
            w,
            f"vision.out_hidden_size={self.vision.out_hidden_size} != text.hidden_size={self.text.hidden_size}",
        )
        _check(
            self.audio.output_dim == self.text.hidden_size,
            w,
            f"audio.output_dim={self.audio.output_dim} != text.hidden_size={self.text.hidden_size}",
        )
        for f in (
            "audio_token_id",
            "image_token_id",
            "video_token_id",
            "vision_start_token_id",
            "audio_start_token_id",
            "audio_end_token_id",
            "vision_end_token_id",
        ):
            v = getattr(self, f)
            _check(0 <= v < self.text.vocab_size, w, f"{f}={v} outside the vocabulary [0, {self.text.vocab_size})")
        _check(
            self.position_id_per_seconds > 0 and self.seconds_per_chunk > 0,
            w,
            "position_id_per_seconds and seconds_per_chunk must be > 0",
        )

    # ---------------------------------------------------------------- HF config.json
    @classmethod
    def from_hf_dict(cls, d: Mapping[str, Any], *, source: str = "config.json") -> Qwen2_5OmniConfig:
        """Build from a transformers config dict (Thinker config, or full Omni config with ``thinker_config``)."""
        if "thinker_config" in d:
            d = d["thinker_config"]
        try:
            t, v, a = d["text_config"], d["vision_config"], d["audio_config"]
        except KeyError as e:
            raise ConfigError(f"{source}: missing field {e.args[0]!r} (not a Qwen2.5-Omni Thinker config)") from None
        rope = t.get("rope_parameters") or t.get("rope_scaling") or {}
        theta = rope.get("rope_theta", t.get("rope_theta", 1_000_000.0))
        section = rope.get("mrope_section", [16, 24, 24])
        try:
            text = TextConfig(
                vocab_size=t["vocab_size"],
                hidden_size=t["hidden_size"],
                intermediate_size=t["intermediate_size"],
                num_hidden_layers=t["num_hidden_layers"],
                num_attention_heads=t["num_attention_heads"],
                num_key_value_heads=t.get("num_key_value_heads") or t["num_attention_heads"],
                rms_norm_eps=t.get("rms_norm_eps", 1e-6),
                rope_theta=float(theta),
                mrope_section=tuple(section),
                max_position_embeddings=t.get("max_position_embeddings", 32768),
                tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
            )
            vrope = v.get("rope_parameters") or {}
            vision = VisionConfig(
                depth=v["depth"],
                hidden_size=v["hidden_size"],
                intermediate_size=v["intermediate_size"],
                num_heads=v["num_heads"],
                in_channels=v.get("in_channels", 3),
                patch_size=v.get("patch_size", 14),
                spatial_merge_size=v.get("spatial_merge_size", 2),
                temporal_patch_size=v.get("temporal_patch_size", 2),
                window_size=v.get("window_size", 112),
                out_hidden_size=v["out_hidden_size"],
                fullatt_block_indexes=tuple(v["fullatt_block_indexes"]),
                rope_theta=float(vrope.get("rope_theta", 10000.0)),
            )
            audio = AudioConfig(
                num_mel_bins=a["num_mel_bins"],
                encoder_layers=a["encoder_layers"],
                encoder_attention_heads=a["encoder_attention_heads"],
                encoder_ffn_dim=a["encoder_ffn_dim"],
                d_model=a["d_model"],
                max_source_positions=a.get("max_source_positions", 1500),
                n_window=a["n_window"],
                output_dim=a["output_dim"],
                scale_embedding=bool(a.get("scale_embedding", False)),
            )
            return cls(
                text=text,
                vision=vision,
                audio=audio,
                audio_token_id=d.get("audio_token_index", d.get("audio_token_id", 151646)),
                image_token_id=d.get("image_token_index", d.get("image_token_id", 151655)),
                video_token_id=d.get("video_token_index", d.get("video_token_id", 151656)),
                vision_start_token_id=d.get("vision_start_token_id", 151652),
                vision_end_token_id=d.get("vision_end_token_id", 151653),
                audio_start_token_id=d.get("audio_start_token_id", 151647),
                audio_end_token_id=d.get("audio_end_token_id", 151648),
                user_token_id=d.get("user_token_id", 872),
                position_id_per_seconds=d.get("position_id_per_seconds", 25),
                seconds_per_chunk=d.get("seconds_per_chunk", 2),
            )
        except KeyError as e:
            raise ConfigError(f"{source}: missing field {e.args[0]!r}") from None
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> Qwen2_5OmniConfig:
        """Read ``<path>/config.json`` (or ``path`` itself if it is a file)."""
        p = os.fspath(path)
        if os.path.isdir(p):
            p = os.path.join(p, "config.json")
        if not os.path.isfile(p):
            raise ConfigError(f"{p}: no such file")
        with open(p) as f:
            try:
                d = json.load(f)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{p}: invalid JSON ({e})") from None
        return cls.from_hf_dict(d, source=p)

    def to_hf_dict(self) -> dict[str, Any]:
        """A dict that ``transformers.Qwen2_5OmniThinkerConfig(**d)`` accepts (used for config.json)."""
        t, v, a = self.text, self.vision, self.audio
        return {
            "model_type": "qwen2_5_omni_thinker",
            "architectures": ["Qwen2_5OmniThinkerForConditionalGeneration"],
            "text_config": {
                "model_type": "qwen2_5_omni_text",
                "vocab_size": t.vocab_size,
                "hidden_size": t.hidden_size,
                "intermediate_size": t.intermediate_size,
                "num_hidden_layers": t.num_hidden_layers,
                "num_attention_heads": t.num_attention_heads,
                "num_key_value_heads": t.num_key_value_heads,
                "hidden_act": "silu",
                "rms_norm_eps": t.rms_norm_eps,
                "max_position_embeddings": t.max_position_embeddings,
                "rope_parameters": {
                    "rope_type": "default",
                    "rope_theta": t.rope_theta,
                    "mrope_section": list(t.mrope_section),
                },
                "tie_word_embeddings": t.tie_word_embeddings,
            },
            "vision_config": {
                "model_type": "qwen2_5_omni_vision_encoder",
                "depth": v.depth,
                "hidden_size": v.hidden_size,
                "hidden_act": "silu",
                "intermediate_size": v.intermediate_size,
                "num_heads": v.num_heads,
                "in_channels": v.in_channels,
                "patch_size": v.patch_size,
                "spatial_merge_size": v.spatial_merge_size,
                "temporal_patch_size": v.temporal_patch_size,
                "window_size": v.window_size,
                "out_hidden_size": v.out_hidden_size,
                "fullatt_block_indexes": list(v.fullatt_block_indexes),
                "rope_parameters": {"rope_type": "axial", "rope_theta": v.rope_theta},
            },
            "audio_config": {
                "model_type": "qwen2_5_omni_audio_encoder",
                "num_mel_bins": a.num_mel_bins,
                "encoder_layers": a.encoder_layers,
                "encoder_attention_heads": a.encoder_attention_heads,
                "encoder_ffn_dim": a.encoder_ffn_dim,
                "d_model": a.d_model,
                "max_source_positions": a.max_source_positions,
                "n_window": a.n_window,
                "output_dim": a.output_dim,
                "scale_embedding": a.scale_embedding,
                "activation_function": "gelu",
            },
            "audio_token_index": self.audio_token_id,
            "image_token_index": self.image_token_id,
            "video_token_index": self.video_token_id,
            "vision_start_token_id": self.vision_start_token_id,
            "vision_end_token_id": self.vision_end_token_id,
            "audio_start_token_id": self.audio_start_token_id,
            "audio_end_token_id": self.audio_end_token_id,
            "user_token_id": self.user_token_id,
            "position_id_per_seconds": self.position_id_per_seconds,
            "seconds_per_chunk": self.seconds_per_chunk,
            "tie_word_embeddings": t.tie_word_embeddings,
        }


def tiny(
    *,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    tie_word_embeddings: bool = False,
    vision_depth: int = 2,
    audio_layers: int = 2,
) -> Qwen2_5OmniConfig:
    """A seconds-on-a-CPU Thinker using the tiny tokenizer's vocabulary and special ids (omnir1_jax.testing).

    ``vision_depth`` / ``audio_layers``: blocks of the vision and audio encoders (the last vision block uses full
    attention, the others windowed attention, as every 8th block of the released model does); the test suite's
    learner runs use one of each, which halves what XLA compiles for the encoders.

    ``tie_word_embeddings`` shares the input embedding with the output head (as Qwen2.5's small text models do);
    the CPU demo uses it because copying a word of the query into the answer is then a circuit the model has
    from the start instead of one it must learn."""
    for name, value in (("vision_depth", vision_depth), ("audio_layers", audio_layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"tiny: {name}={value!r} must be an integer >= 1")
    heads = max(2, hidden_size // 16)
    head_dim = hidden_size // heads
    half = head_dim // 2
    section = (half - 2 * (half // 3), half // 3, half // 3)
    return Qwen2_5OmniConfig(
        text=TextConfig(
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=heads,
            num_key_value_heads=max(1, heads // 2),
            rope_theta=10000.0,
            mrope_section=section,
            tie_word_embeddings=tie_word_embeddings,
        ),
        vision=VisionConfig(
            depth=vision_depth,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            window_size=56,
            out_hidden_size=hidden_size,
            fullatt_block_indexes=(vision_depth - 1,),
        ),
        audio=AudioConfig(
            encoder_layers=audio_layers,
            encoder_attention_heads=2,
            encoder_ffn_dim=64,
            d_model=32,
            n_window=25,
            output_dim=hidden_size,
        ),
        audio_token_id=3,
        audio_start_token_id=4,
        audio_end_token_id=5,
        vision_start_token_id=9,
        vision_end_token_id=10,
        image_token_id=12,
        video_token_id=13,
        user_token_id=1,
    )


def qwen2_5_omni_7b() -> Qwen2_5OmniConfig:
    """Shapes of Qwen/Qwen2.5-Omni-7B's Thinker (``thinker_config`` of the released config.json)."""
    return Qwen2_5OmniConfig()


def qwen2_5_omni_3b() -> Qwen2_5OmniConfig:
    """Shapes of Qwen/Qwen2.5-Omni-3B's Thinker (Qwen2.5-3B text decoder, same encoders as the 7B)."""
    return Qwen2_5OmniConfig(
        text=TextConfig(
            vocab_size=151936,
            hidden_size=2048,
            intermediate_size=11008,
            num_hidden_layers=36,
            num_attention_heads=16,
            num_key_value_heads=2,
            mrope_section=(16, 24, 24),
        ),
        vision=VisionConfig(out_hidden_size=2048),
        audio=AudioConfig(output_dim=2048),
    )
