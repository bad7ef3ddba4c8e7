"""A Hugging Face ``Qwen2ForCausalLM`` directory loaded into the Thinker's text path (``from_hf_qwen2``): logits
equal transformers' on a tiny random model (float32, 1e-4), tied and separate heads, with left padding; a
directory of another model type or with a missing tensor is refused with the field or tensor named."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytestmark = pytest.mark.torch


def _write_qwen2(path, *, tied: bool, seed: int = 0):
    """A tiny random Qwen2ForCausalLM saved to ``path``; every weight (biases and norms too) drawn from N(0, 0.2)
    so that a mis-mapped or transposed tensor changes the logits."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(
        vocab_size=97,
        hidden_size=48,
        intermediate_size=80,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=tied,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg).to(torch.float32).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    model.save_pretrained(str(path), safe_serialization=True)
    return model


@pytest.mark.parametrize("tied", [True, False])
def test_logits_match_transformers(tmp_path, tied):
    import torch

    from omnir1_jax.models.qwen2_5_omni.qwen2 import from_hf_qwen2

    hf = _write_qwen2(tmp_path, tied=tied)
    ours = from_hf_qwen2(tmp_path)
    assert ours.config.text.tie_word_embeddings is tied
    assert (ours.lm_head is None) is tied
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 97, size=(3, 11)).astype(np.int64)
    with torch.no_grad():
        ref = hf(torch.from_numpy(ids)).logits.numpy()
    got = np.asarray(ours(input_ids=ids).logits)
    assert got.shape == ref.shape == (3, 11, 97)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_left_padding_matches_transformers_with_mask_positions(tmp_path):
    """Left-padded rows: ours take positions cumsum(mask) - 1; transformers given the same positions agrees on
    every real token."""
    import torch

    from omnir1_jax.models.qwen2_5_omni.qwen2 import from_hf_qwen2

    hf = _write_qwen2(tmp_path, tied=True, seed=1)
    ours = from_hf_qwen2(tmp_path)
    ids = np.asarray([[0, 0, 0, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14, 15]], np.int64)
    mask = np.asarray([[0, 0, 0, 1, 1, 1, 1], [1] * 7], np.int64)
    pos = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
    with torch.no_grad():
        ref = hf(
            torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), position_ids=torch.from_numpy(pos)
        ).logits.numpy()
    got = np.asarray(ours(input_ids=ids, attention_mask=mask).logits)
    real = mask.astype(bool)
    np.testing.assert_allclose(got[real], ref[real], atol=1e-4, rtol=0)
    # the padded row's real tokens equal the same tokens alone (padding is inert)
    alone = np.asarray(ours(input_ids=ids[:1, 3:]).logits)[0]
    np.testing.assert_allclose(got[0, 3:], alone, atol=1e-5, rtol=0)


def test_bad_directories_name_the_field_or_tensor(tmp_path):
    from omnir1_jax.models.qwen2_5_omni import CheckpointError, ConfigError
    from omnir1_jax.models.qwen2_5_omni.qwen2 import from_hf_qwen2

    _write_qwen2(tmp_path, tied=True)
    cfg_file = os.path.join(tmp_path, "config.json")
    with open(cfg_file) as f:
        d = json.load(f)
    with open(cfg_file, "w") as f:
        json.dump(dict(d, model_type="llama"), f)
    with pytest.raises(ConfigError, match="model_type='llama'"):
        from_hf_qwen2(tmp_path)
    with open(cfg_file, "w") as f:
        json.dump({k: v for k, v in d.items() if k != "intermediate_size"}, f)
    with pytest.raises(ConfigError, match="intermediate_size"):
        from_hf_qwen2(tmp_path)
    # a separate head declared but not in the file
    with open(cfg_file, "w") as f:
        json.dump(dict(d, tie_word_embeddings=False), f)
    with pytest.raises(CheckpointError, match="lm_head.weight"):
        from_hf_qwen2(tmp_path)
