"""Per-process shares of a prompt batch laid end to end (models.qwen2_5_omni.blocks) equal the batch prepared at
once: the same logits on every real token, the same greedy completions, the same GRPO-group log-probs. The
reference is the single batch the processor collates from all rows (what one process prepares); the shares are
prepared separately (different token lengths, image sizes, audio lengths, video grids), padded and moved."""

from __future__ import annotations

import numpy as np
import pytest

from omnir1_jax.models.qwen2_5_omni import prepare_inputs, repeat_prompt
from omnir1_jax.models.qwen2_5_omni.blocks import ABSENT, block_sizes, common_sizes, concat_blocks, pad_block
from omnir1_jax.models.qwen2_5_omni.thinker import InputError

IMAGE_AUDIO = "look <|vision_bos|><|IMAGE|><|vision_eos|> hear <|audio_bos|><|AUDIO|><|audio_eos|> "
VIDEO = "<|vision_bos|><|VIDEO|><|vision_eos|> "
WORDS = ["red", "the big blue circle that moves left", "a", "which one sounds like a violin here", "it", "go"]


def _media(seed=0):
    rng = np.random.default_rng(seed)
    img = lambda h, w: (rng.random((h, w, 3)) * 255).astype(np.uint8)
    aud = lambda n: (rng.standard_normal(n) * 0.1).astype(np.float32)
    # block 0: short audio only (its chunks are shorter than block 1's); block 1: a larger image, long audio
    return {
        "images": [img(56, 84), img(56, 56), img(140, 112), img(84, 112)],
        "audio": [aud(4000), aud(6400), aud(70000), aud(16000)],
        "videos": [
            (rng.random((t, h, w, 3)) * 255).astype(np.uint8)
            for t, h, w in ((4, 56, 84), (2, 56, 56), (8, 84, 112), (4, 56, 56))
        ],
    }


def _prepare(cfg, proc, rows, kind):
    m = _media()
    if kind == "image_audio":
        out = proc(
            text=[IMAGE_AUDIO + WORDS[r] for r in rows],
            images=[m["images"][r] for r in rows],
            audio=[m["audio"][r] for r in rows],
            padding=True,
            return_tensors="np",
        )
    else:
        out = proc(
            text=[VIDEO + WORDS[r] for r in rows],
            videos=[m["videos"][r] for r in rows],
            padding=True,
            return_tensors="np",
        )
    return prepare_inputs(cfg, **dict(out))


def _logits(model, inputs):
    """The model's logits through its compiled forward (``model(inputs=...)``; ``model.forward`` op by op would
    compile every operation of the model for every batch shape)."""
    return np.asarray(model(inputs=inputs).logits)


def _blocks(cfg, proc, kind, group=1, pad_id=0):
    whole = _prepare(cfg, proc, [0, 1, 2, 3], kind)
    parts = [_prepare(cfg, proc, rows, kind) for rows in ([0, 1], [2, 3])]
    if group > 1:
        whole, parts = repeat_prompt(whole, group), [repeat_prompt(p, group) for p in parts]
    sizes = common_sizes([block_sizes(p) for p in parts])
    glob = concat_blocks([pad_block(cfg, p, sizes, block=i, num_blocks=2, pad_id=pad_id) for i, p in enumerate(parts)])
    return whole, parts, sizes, glob


@pytest.mark.parametrize("kind", ["image_audio", "video"])
def test_shares_laid_end_to_end_give_the_logits_of_the_whole_batch(kind, flax_thinker, tiny_processor):
    cfg = flax_thinker.config
    whole, parts, sizes, glob = _blocks(cfg, tiny_processor, kind)
    own = [block_sizes(p) for p in parts]
    # the shares really differ, so padding is exercised: token length and patches (and audio chunks)
    assert own[0]["length"] != own[1]["length"]
    key = "image_patches" if kind == "image_audio" else "video_patches"
    assert own[0][key] != own[1][key] and sizes[key] == max(o[key] for o in own)
    if kind == "image_audio":
        assert own[0]["audio_chunk_len"] < own[1]["audio_chunk_len"]
        assert own[0]["audio_pooled"] != own[1]["audio_pooled"]
    # the token rows equal what the processor collates for all rows at once (pad id 0 = the tiny tokenizer's)
    np.testing.assert_array_equal(glob.attention_mask, whole.attention_mask)
    np.testing.assert_array_equal(glob.position_ids, whole.position_ids)
    np.testing.assert_array_equal(glob.rope_deltas, whole.rope_deltas)
    valid = np.asarray(whole.attention_mask).astype(bool)
    np.testing.assert_array_equal(np.asarray(glob.input_ids)[valid], np.asarray(whole.input_ids)[valid])
    # segment ids stay non-decreasing over the whole batch (the banded vision attention needs contiguous segments)
    lay = glob.image_layout if kind == "image_audio" else glob.video_layout
    for seg in (lay.full_segment, lay.window_segment):
        assert np.all(np.diff(np.asarray(seg)) >= 0)
    ref = _logits(flax_thinker, whole)
    got = _logits(flax_thinker, glob)
    assert got.shape == ref.shape
    assert np.abs(got - ref)[valid].max() <= 1e-5


def test_shares_give_the_greedy_completions_and_group_logprobs_of_the_whole_batch(flax_thinker, tiny_processor):
    from omnir1_jax.models.qwen2_5_omni import generate, group_completion_logprobs

    cfg = flax_thinker.config
    whole, _, _, glob = _blocks(cfg, tiny_processor, "video")
    a = generate(flax_thinker, whole, max_new_tokens=6, greedy=True)
    b = generate(flax_thinker, glob, max_new_tokens=6, greedy=True)
    np.testing.assert_array_equal(np.asarray(b.tokens), np.asarray(a.tokens))
    # GRPO rows: each share repeated per group before it is padded and moved (what the learner does)
    whole, _, sizes, glob = _blocks(cfg, tiny_processor, "image_audio", group=2)
    assert sizes["repeats"] == 2 and glob.num_repeats == 2
    ids = np.random.default_rng(1).integers(5, 400, (8, 5)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[::3, 3:] = 0
    ref = np.asarray(group_completion_logprobs(flax_thinker, whole, ids, mask, group_size=2))
    got = np.asarray(group_completion_logprobs(flax_thinker, glob, ids, mask, group_size=2))
    assert np.abs(got - ref).max() <= 1e-5 and np.abs(ref).max() > 0.1


def test_blocks_that_cannot_be_combined_are_refused_with_the_reason(flax_thinker, tiny_processor):
    cfg = flax_thinker.config
    img = _prepare(cfg, tiny_processor, [0, 1], "image_audio")
    vid = _prepare(cfg, tiny_processor, [2, 3], "video")
    with pytest.raises(InputError, match=r"image inputs are missing from block\(s\) \[1\]"):
        common_sizes([block_sizes(img), block_sizes(vid)])
    one = _prepare(cfg, tiny_processor, [0], "video")
    with pytest.raises(InputError, match=r"different rows \[2, 1\]"):
        common_sizes([block_sizes(vid), block_sizes(one)])
    small = block_sizes(one)
    big = _prepare(cfg, tiny_processor, [2], "video")
    with pytest.raises(InputError, match=r"block 1 has length=\d+, which does not fit the common length=\d+"):
        pad_block(cfg, big, small, block=1, num_blocks=2)
    with pytest.raises(InputError, match=r"block 1 has video_patches=\d+, which does not fit"):
        pad_block(cfg, big, dict(small, length=block_sizes(big)["length"]), block=1, num_blocks=2)
    assert block_sizes(vid)["audio_chunks"] == ABSENT


def test_batches_of_different_modalities_merge_into_one_batch_with_their_own_logits(flax_thinker, tiny_processor):
    """Ref-AVS-like rows (image + audio) and VOS-like rows (video) in one batch (the Table 6 joint run): each
    row's logits equal those of its own batch, prepared alone."""
    from omnir1_jax.models.qwen2_5_omni.blocks import merge_rows

    cfg = flax_thinker.config
    avs = _prepare(cfg, tiny_processor, [0, 2], "image_audio")
    vos = _prepare(cfg, tiny_processor, [1, 3], "video")
    text = prepare_inputs(cfg, **dict(tiny_processor(text=["only words here"], return_tensors="np")))
    merged = merge_rows([vos, avs, text])
    assert merged.video_layout is not None and merged.image_layout is not None and merged.audio_layout is not None
    got = _logits(flax_thinker, merged)
    t = got.shape[1]
    row = 0
    for part in (vos, avs, text):
        ref = _logits(flax_thinker, part)
        b, tp = ref.shape[:2]
        valid = np.asarray(part.attention_mask).astype(bool)
        np.testing.assert_array_equal(
            np.asarray(merged.input_ids)[row : row + b, t - tp :][valid], np.asarray(part.input_ids)[valid]
        )
        assert np.abs(got[row : row + b, t - tp :] - ref)[valid].max() <= 1e-5
        row += b
    with pytest.raises(InputError, match="different num_repeats"):
        merge_rows([avs, repeat_prompt(vos, 2)])
