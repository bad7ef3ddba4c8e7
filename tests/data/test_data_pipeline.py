"""Grain pipelines: batch contents, determinism, resume-from-state, workers, errors from workers."""

import os
import shutil

import numpy as np
import pytest

from omnir1_jax.data import readers
from omnir1_jax.data.errors import DataFormatError
from omnir1_jax.data.masks import masks_to_boxes
from omnir1_jax.data.pipeline import PipelineConfig, build_pipeline
from omnir1_jax.data.schema import MODEL_INPUT_NAMES
from omnir1_jax.data.transforms import load_frame


def _take(it, n):
    return [next(it) for _ in range(n)]


def _same(a, b):
    for k in ("input_ids", "attention_mask", "pixel_values_videos", "video_grid_thw"):
        np.testing.assert_array_equal(a["model_inputs"][k], b["model_inputs"][k])
    assert a["video_id"] == b["video_id"] and a["exp_id"] == b["exp_id"] and a["prompt"] == b["prompt"]
    np.testing.assert_array_equal(a["frame_indices"], b["frame_indices"])


@pytest.fixture(scope="module")
def vos_records(synthetic_vos):
    return readers.read_revos(synthetic_vos, "train", dataset="synthetic")


def test_batch_contents(vos_records, tiny_tokenizer):
    cfg = PipelineConfig(batch_size=3, seed=0, pad_to_multiple=16)
    b = next(iter(build_pipeline(vos_records, tiny_tokenizer, cfg)))
    mi = b["model_inputs"]
    assert set(mi) <= set(MODEL_INPUT_NAMES) and mi["use_audio_in_video"] is False
    assert mi["input_ids"].shape == mi["attention_mask"].shape and mi["input_ids"].shape[1] % 16 == 0
    vid_id = tiny_tokenizer.convert_tokens_to_ids(tiny_tokenizer.video_token)
    grids = mi["video_grid_thw"]
    assert mi["pixel_values_videos"].shape == (int(grids.prod(axis=1).sum()), 1176)
    for i in range(3):
        row, m = mi["input_ids"][i], mi["attention_mask"][i]
        assert (row[m == 0] == tiny_tokenizer.pad_token_id).all() and np.all(np.diff(m) >= 0)  # left padding
        assert (row == vid_id).sum() == grids[i].prod() // 4
        t = b["num_frames"][i]
        assert 8 <= t <= 24 and grids[i][0] == (t + 1) // 2
        assert b["gt_masks"][i].shape == (t, 56, 98) and b["gt_masks"][i].dtype == bool
        assert b["frame_mask"][i].sum() == t
        rec = next(r for r in vos_records if r.video_id == b["video_id"][i] and r.exp_id == b["exp_id"][i])
        # one box per target object (anno_id), each the tight box of that object's own mask
        objects = rec.load_object_masks(b["frame_indices"][i, :t].tolist(), 56, 98)
        assert len(objects) == len(rec.anno_ids) >= 1
        for o in range(len(objects)):
            boxes, valid = masks_to_boxes(objects[o])
            np.testing.assert_array_equal(b["gt_boxes"][i, :t, o], boxes)
            np.testing.assert_array_equal(b["gt_box_valid"][i, :t, o], valid)
        assert not b["gt_box_valid"][i, :t, len(objects) :].any()
        assert list(b["frame_paths"][i]) == [rec.frame_paths[j] for j in b["frame_indices"][i, :t]]
        np.testing.assert_array_equal(b["gt_masks"][i], rec.load_masks(b["frame_indices"][i, :t].tolist(), 56, 98))
        assert rec.expression in b["prompt"][i] and b["fps_s1"] == 2.0
        assert f"Given a {t / 2:g} seconds video" in b["prompt"][i]
    np.testing.assert_allclose(mi["video_second_per_grid"], [1.0, 1.0, 1.0])


def test_deterministic_and_seed_dependent(vos_records, tiny_tokenizer):
    run = lambda seed: _take(
        iter(build_pipeline(vos_records, tiny_tokenizer, PipelineConfig(batch_size=2, seed=seed))), 2
    )
    a, b, c = run(5), run(5), run(6)
    for x, y in zip(a, b):
        _same(x, y)
    assert [x["video_id"] + x["exp_id"] for x in a] != [x["video_id"] + x["exp_id"] for x in c]


def test_resume_from_state_gives_the_same_next_batches(vos_records, tiny_tokenizer):
    ds = build_pipeline(vos_records, tiny_tokenizer, PipelineConfig(batch_size=2, seed=1, num_epochs=None))
    it = iter(ds)
    _take(it, 2)
    state = it.get_state()
    expected = _take(it, 3)
    it2 = iter(ds)
    it2.set_state(state)
    for x, y in zip(expected, _take(it2, 3)):
        _same(x, y)


def test_one_worker_matches_zero_workers_and_resumes(vos_records, tiny_tokenizer):
    cfg0 = PipelineConfig(batch_size=2, seed=2, s1_max_pixels=16 * 28 * 28)
    ref = _take(iter(build_pipeline(vos_records, tiny_tokenizer, cfg0)), 3)
    ds1 = build_pipeline(vos_records, tiny_tokenizer, PipelineConfig(**{**cfg0.__dict__, "num_workers": 1}))
    it = iter(ds1)
    try:
        got = _take(it, 1)
        state = it.get_state()
        got += _take(it, 2)
    finally:
        it.close()
    for x, y in zip(ref, got):
        _same(x, y)
    it1 = iter(ds1)  # a multi-worker state restores into an iterator with the same number of workers
    try:
        it1.set_state(state)
        _same(next(it1), ref[1])
    finally:
        it1.close()


def test_avs_pipeline_audio_and_interleaving(synthetic_avs, tiny_tokenizer):
    recs = readers.read_refavs(synthetic_avs, "train")
    aud_id = tiny_tokenizer.convert_tokens_to_ids(tiny_tokenizer.audio_token)
    for uaiv in (False, True):
        cfg = PipelineConfig(task="avs", train=False, batch_size=2, use_audio_in_video=uaiv, eval_max_frames=24)
        b = next(iter(build_pipeline(recs, tiny_tokenizer, cfg)))
        mi = b["model_inputs"]
        assert mi["input_features"].shape == (2, 128, 3000) and mi["feature_attention_mask"].shape == (2, 3000)
        assert (mi["feature_attention_mask"].sum(1) == 1000).all()  # 10 s of audio
        assert mi["use_audio_in_video"] is uaiv
        assert ((mi["input_ids"] == aud_id).sum(1) == 250).all()  # ((1000 - 1) // 2 + 1 - 2) // 2 + 1
        assert (b["num_frames"] == 10).all() and "10 seconds audio" in b["prompt"][0]


def test_error_in_worker_names_file_and_record(vos_records, synthetic_vos, tiny_tokenizer, tmp_path):
    copy = tmp_path / "syn"
    shutil.copytree(synthetic_vos, copy)
    recs = readers.read_revos(str(copy), "train", dataset="synthetic")
    victim = recs[0]
    for p in victim.frame_paths:  # truncate every frame of the first video
        data = open(p, "rb").read()
        open(p, "wb").write(data[: len(data) // 3])
    with pytest.raises(DataFormatError):
        load_frame(victim.frame_paths[0])
    cfg = PipelineConfig(batch_size=1, train=False, num_workers=1)
    it = iter(build_pipeline(recs[:1], tiny_tokenizer, cfg))
    try:
        with pytest.raises(Exception) as e:
            next(it)
    finally:
        it.close()
    msg = str(e.value)
    assert os.path.dirname(victim.frame_paths[0]) in msg and victim.key in msg


def test_process_shares_are_the_blocks_of_the_whole_batch_and_resume_alike(vos_records, tiny_tokenizer):
    """share=(i, n): each process's batches are block i of the whole batch (same examples, same random frame
    counts and prompts, i.e. the per-example randomness does not depend on the share), and every share's iterator
    state restores the same position."""
    whole_cfg = PipelineConfig(batch_size=4, seed=3, num_epochs=None, drop_remainder=True)
    whole = _take(iter(build_pipeline(vos_records, tiny_tokenizer, whole_cfg)), 3)
    shares = []
    for i in range(2):
        it = iter(
            build_pipeline(
                vos_records,
                tiny_tokenizer,
                PipelineConfig(batch_size=4, seed=3, num_epochs=None, drop_remainder=True, share=(i, 2)),
            )
        )
        shares.append(_take(it, 3))
    for step in range(3):
        w = whole[step]
        for i in range(2):
            s = shares[i][step]
            assert s["video_id"] == w["video_id"][2 * i : 2 * i + 2] and s["exp_id"] == w["exp_id"][2 * i : 2 * i + 2]
            assert s["prompt"] == w["prompt"][2 * i : 2 * i + 2]
            np.testing.assert_array_equal(s["num_frames"], w["num_frames"][2 * i : 2 * i + 2])
            grids = w["model_inputs"]["video_grid_thw"]
            np.testing.assert_array_equal(s["model_inputs"]["video_grid_thw"], grids[2 * i : 2 * i + 2])
            start = int(grids[: 2 * i].prod(axis=1).sum())
            stop = start + int(grids[2 * i : 2 * i + 2].prod(axis=1).sum())
            np.testing.assert_array_equal(
                s["model_inputs"]["pixel_values_videos"], w["model_inputs"]["pixel_values_videos"][start:stop]
            )
    ds = build_pipeline(
        vos_records,
        tiny_tokenizer,
        PipelineConfig(batch_size=4, seed=3, num_epochs=None, drop_remainder=True, share=(1, 2)),
    )
    it = iter(ds)
    _take(it, 1)
    state = it.get_state()
    it2 = iter(ds)
    it2.set_state(state)
    _same(next(it2), shares[1][1])
    with pytest.raises(ValueError, match=r"share=\(0, 3\).*batch_size=4 a multiple of n"):
        PipelineConfig(batch_size=4, share=(0, 3))
