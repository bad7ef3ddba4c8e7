"""Whisper log-mel features against transformers' WhisperFeatureExtractor (feature_size=128)."""

import numpy as np
import pytest

from omnir1_jax.data import audio


def _signals():
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 10) / 16000
    yield (0.3 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 0.05, t.size)).astype(np.float32)  # 10 s
    yield rng.normal(0, 0.1, 12345).astype(np.float32)  # not a multiple of the hop
    yield rng.normal(0, 0.1, 16000 * 31).astype(np.float32)  # longer than 30 s: truncated


@pytest.mark.torch
def test_mel_filters_match():
    from transformers.audio_utils import mel_filter_bank

    ref = mel_filter_bank(
        num_frequency_bins=201,
        num_mel_filters=128,
        min_frequency=0.0,
        max_frequency=8000.0,
        sampling_rate=16000,
        norm="slaney",
        mel_scale="slaney",
    )
    np.testing.assert_allclose(audio.mel_filters(128), ref, rtol=0, atol=1e-12)


@pytest.mark.torch
def test_features_match_whisper_extractor():
    """Values against the extractor's numpy reference path to 1e-5; shapes and the attention mask against its
    public call (whose torch float32 STFT adds up to ~1e-4 of its own rounding on wide-dynamic-range audio)."""
    from transformers import WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(feature_size=128, return_attention_mask=True)
    for w in _signals():
        mine = audio.whisper_features(w)
        padded = np.zeros(audio.N_SAMPLES, np.float32)
        padded[: min(w.size, audio.N_SAMPLES)] = w[: audio.N_SAMPLES]
        ref_np = fe._np_extract_fbank_features(padded[None], "cpu")[0]
        np.testing.assert_allclose(mine["input_features"], ref_np, rtol=0, atol=1e-5)
        ref = fe([w], sampling_rate=16000, padding="max_length", return_attention_mask=True, return_tensors="np")
        assert mine["input_features"].shape == ref["input_features"].shape[1:] == (128, 3000)
        np.testing.assert_array_equal(mine["feature_attention_mask"], ref["attention_mask"][0])


@pytest.mark.torch
def test_audio_token_count_matches_processor():
    from transformers.models.qwen2_5_omni.processing_qwen2_5_omni import _get_feat_extract_output_lengths

    for n in (1, 2, 3, 77, 1000, 2999, 3000):
        assert audio.num_audio_tokens(n) == int(_get_feat_extract_output_lengths(np.array(n)))


def test_load_audio_resamples_and_mixes_down(tmp_path):
    import soundfile as sf

    t = np.arange(8000 * 2) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 200 * t)], axis=1).astype(np.float32)
    sf.write(tmp_path / "a.wav", stereo, 8000, subtype="FLOAT")
    y = audio.load_audio(str(tmp_path / "a.wav"))
    assert y.shape == (32000,)
    ref = np.sin(2 * np.pi * 200 * np.arange(32000) / 16000)
    np.testing.assert_allclose(y[1000:-1000], ref[1000:-1000], atol=1e-2)  # polyphase filter edge effects excluded
