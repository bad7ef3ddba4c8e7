"""Shared fixtures for the Qwen2.5-Omni Thinker tests: one tiny random HF Thinker per session, saved once."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def hf_thinker_dir(tmp_path_factory):
    """(transformers model, checkpoint directory) of a tiny random Thinker matching ``config.tiny()``."""
    from omnir1_jax.models.qwen2_5_omni.testing import build_hf_thinker

    model = build_hf_thinker(seed=0)
    path = tmp_path_factory.mktemp("hf_thinker")
    model.save_pretrained(str(path))
    return model, path


@pytest.fixture(scope="session")
def tiny_processor():
    from omnir1_jax.models.qwen2_5_omni.testing import build_tiny_processor

    return build_tiny_processor()


@pytest.fixture(scope="session")
def flax_thinker(hf_thinker_dir):
    from omnir1_jax.models.qwen2_5_omni import from_hf

    return from_hf(hf_thinker_dir[1])


@pytest.fixture(scope="session")
def media():
    """Deterministic random image / video / audio arrays (small)."""
    rng = np.random.default_rng(0)
    return {
        "image": (rng.random((140, 112, 3)) * 255).astype(np.uint8),  # 10 x 8 patches: several windows
        "small_image": (rng.random((56, 84, 3)) * 255).astype(np.uint8),
        "video": (rng.random((8, 56, 84, 3)) * 255).astype(np.uint8),  # 4 frame groups: 2 chunks of 2 s
        "audio": (rng.standard_normal(40000) * 0.1).astype(np.float32),  # 2.5 s: 62 tokens, 2 chunks
    }
