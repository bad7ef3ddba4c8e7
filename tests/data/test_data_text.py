"""Placeholder expansion gives the same input_ids as Qwen2_5OmniProcessor (tiny tokenizer, built offline)."""

import numpy as np
import pytest

from omnir1_jax.data import audio, prompts, text, vision


@pytest.fixture(scope="module")
def processor(tiny_tokenizer):
    from transformers import Qwen2_5OmniProcessor, Qwen2VLVideoProcessor, WhisperFeatureExtractor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2_5OmniProcessor(
        image_processor=Qwen2VLImageProcessorPil(min_pixels=vision.S1_MIN_PIXELS, max_pixels=vision.S1_MAX_PIXELS),
        video_processor=Qwen2VLVideoProcessor(cap_pixels_per_frame=False),
        feature_extractor=WhisperFeatureExtractor(feature_size=128),
        tokenizer=tiny_tokenizer,
    )


@pytest.mark.torch
@pytest.mark.parametrize("case", ["video", "video+audio", "audio_in_video", "image+audio"])
def test_input_ids_match_processor(processor, tiny_tokenizer, case):
    rng = np.random.default_rng(0)
    vid = rng.integers(0, 256, (6, 112, 196, 3), dtype=np.uint8)  # already 28-aligned: same grid either way
    wav = rng.normal(0, 0.1, 16000 * 7).astype(np.float32)
    image = case == "image+audio"
    audio_part = case in ("video+audio", "image+audio")
    msgs = prompts.user_message(prompts.vos_prompt("the red circle", 6), video=not image, image=image, audio=audio_part)
    chat = tiny_tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    size = {"shortest_edge": vision.S1_MIN_PIXELS, "longest_edge": vision.S1_MAX_PIXELS}
    kw = dict(text=[chat], return_tensors="np")
    if image:
        kw["images"] = [vid[0]]
    else:
        kw.update(videos=[vid], videos_kwargs=dict(size=size, do_sample_frames=False, fps=2.0))
    if case != "video":
        kw["audio"] = [wav]
    if case == "audio_in_video":
        kw.update(load_audio_from_video=True, audio_from_video_indices=[0])
    ref = processor(**kw)
    feats = audio.whisper_features(wav)
    n_audio = [audio.num_audio_tokens(int(feats["feature_attention_mask"].sum()))]
    if image:
        iv = vision.image_view(vid[0])
        ids = text.encode_with_placeholders(
            tiny_tokenizer, chat, image_grid_thw=iv["image_grid_thw"], audio_token_counts=n_audio
        )
    else:
        vv = vision.video_view(vid)
        ids = text.encode_with_placeholders(
            tiny_tokenizer,
            chat,
            video_grid_thw=vv["video_grid_thw"],
            video_second_per_grid=[1.0],
            audio_token_counts=n_audio,
            use_audio_in_video=case == "audio_in_video",
        )
        np.testing.assert_allclose(ref["video_second_per_grid"], [1.0])
    np.testing.assert_array_equal(ids, ref["input_ids"][0])


@pytest.mark.torch
def test_chunking_matches_processor(processor):
    rng = np.random.default_rng(1)
    for _ in range(200):
        vals = np.cumsum(rng.integers(0, 120, rng.integers(1, 60)))
        ref = processor.get_chunked_index(vals, 50)
        assert text.chunk_lengths(vals, 50) == [b - a for a, b in ref]


def test_left_pad():
    ids, mask = text.left_pad([np.array([5, 6, 7]), np.array([9])], pad_id=0, length=4)
    np.testing.assert_array_equal(ids, [[0, 5, 6, 7], [0, 0, 0, 9]])
    np.testing.assert_array_equal(mask, [[0, 1, 1, 1], [0, 0, 0, 1]])
