"""Tiny Hugging Face Thinker + processor matching :func:`config.tiny`, built offline (tests, demo, trainer).

This module imports neither torch nor transformers at import time; :func:`build_hf_thinker` and
:func:`build_tiny_processor` import them inside (the processor's video processor needs torchvision).
"""

from __future__ import annotations

import numpy as np

from omnir1_jax.models.qwen2_5_omni.config import Qwen2_5OmniConfig, tiny
from omnir1_jax.testing.tokenizer import build_tiny_tokenizer

# Small frames / audio so that a whole multimodal prompt is a few hundred tokens.
IMAGE_MIN_PIXELS = 4 * 28 * 28
IMAGE_MAX_PIXELS = 64 * 28 * 28
VIDEO_MIN_PIXELS = 4 * 28 * 28
VIDEO_MAX_PIXELS = 16 * 28 * 28
AUDIO_SECONDS = 3  # WhisperFeatureExtractor pads to this many seconds (300 mel frames)


def build_hf_thinker(config: Qwen2_5OmniConfig | None = None, *, seed: int = 0, std: float = 0.1):
    """A ``Qwen2_5OmniThinkerForConditionalGeneration`` in eval mode, float32, with every parameter random.

    transformers' own init leaves biases at 0 and norms at 1, which would hide bias / norm bugs in a parity
    test; here weights and biases are N(0, std^2) and norm scales 1 + N(0, 0.1^2).
    """
    import torch
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    config = config or tiny()
    torch.manual_seed(seed)
    model = Qwen2_5OmniThinkerForConditionalGeneration(Qwen2_5OmniThinkerConfig(**config.to_hf_dict()))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if "norm" in name or "ln_" in name:
                p.copy_(1.0 + 0.1 * noise if name.endswith("weight") else std * noise)
            else:
                p.copy_(std * noise)
    return model.float().eval()


def build_tiny_processor(vocab_size: int = 512):
    """``Qwen2_5OmniProcessor`` around the tiny tokenizer, with small pixel budgets and 3 s audio padding."""
    from transformers import Qwen2_5OmniProcessor, WhisperFeatureExtractor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    size = {"shortest_edge": VIDEO_MIN_PIXELS, "longest_edge": VIDEO_MAX_PIXELS}
    proc = Qwen2_5OmniProcessor(
        image_processor=Qwen2VLImageProcessorPil(min_pixels=IMAGE_MIN_PIXELS, max_pixels=IMAGE_MAX_PIXELS),
        video_processor=Qwen2VLVideoProcessor(size=size),
        feature_extractor=WhisperFeatureExtractor(feature_size=128, chunk_length=AUDIO_SECONDS),
        tokenizer=build_tiny_tokenizer(vocab_size),
    )
    proc.videos_kwargs = {"size": size}  # the class default (128*28*28 px per frame) would override ours
    return proc


def left_padded_image_rows(cfg: Qwen2_5OmniConfig, tails: tuple[tuple[int, ...], tuple[int, ...]]):
    """Two left-padded token rows for tests: ``[1, 20, 30, <image of 6 merged tokens>, *tails[0]]`` and
    ``[1, 50, *tails[1]]``, as ``(input_ids, attention_mask)`` int64 arrays [2, T]; the image has
    ``image_grid_thw = [[1, 4, 6]]`` (24 patches)."""
    img = [cfg.vision_start_token_id] + [cfg.image_token_id] * 6 + [cfg.vision_end_token_id]
    rows = [[1, 20, 30] + img + list(tails[0]), [1, 50] + list(tails[1])]
    t = max(len(r) for r in rows)
    ids = np.zeros((2, t), np.int64)
    mask = np.zeros((2, t), np.int64)
    for i, r in enumerate(rows):
        ids[i, t - len(r) :] = r
        mask[i, t - len(r) :] = 1
    return ids, mask
