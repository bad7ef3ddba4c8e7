"""System-1 / System-2 views against transformers' Qwen2-VL image and video processors."""

import numpy as np
import pytest

from omnir1_jax.data import vision


@pytest.mark.torch
def test_smart_resize_matches_transformers():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as ref

    rng = np.random.default_rng(0)
    for _ in range(3000):
        h, w = (int(v) for v in rng.integers(8, 2500, 2))
        if max(h, w) / min(h, w) > 200:
            continue
        for lo, hi in ((vision.S1_MIN_PIXELS, vision.S1_MAX_PIXELS), (vision.S2_MIN_PIXELS, vision.S2_MAX_PIXELS)):
            assert vision.smart_resize(h, w, 28, lo, hi) == ref(h, w, 28, lo, hi)


def test_s1_budget_and_even_frames():
    rng = np.random.default_rng(1)
    for h, w in [(480, 854), (240, 426), (1080, 1920), (20, 28), (720, 1280), (1000, 300)]:
        rh, rw = vision.smart_resize(h, w, 28, vision.S1_MIN_PIXELS, vision.S1_MAX_PIXELS)
        assert rh % 28 == 0 and rw % 28 == 0
        assert vision.S1_MIN_PIXELS <= rh * rw <= vision.S1_MAX_PIXELS
        assert abs(np.log((rh / rw) / (h / w))) < 0.35  # aspect kept up to one 28-px step on the short side
    for t in (1, 2, 5, 8):
        out = vision.video_view(rng.integers(0, 256, (t, 60, 90, 3), dtype=np.uint8))
        gt, gh, gw = out["video_grid_thw"][0]
        assert gt == (t + 1) // 2  # odd counts padded by repeating the last frame
        assert gh * 14 * gw * 14 == np.prod(out["resized_size"]) <= vision.S1_MAX_PIXELS
        assert out["pixel_values_videos"].shape == (gt * gh * gw, 3 * 2 * 14 * 14)


@pytest.mark.torch
def test_image_view_matches_pil_image_processor():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    rng = np.random.default_rng(2)
    proc = Qwen2VLImageProcessorPil(min_pixels=vision.S1_MIN_PIXELS, max_pixels=vision.S1_MAX_PIXELS)
    for h, w in [(97, 173), (240, 426), (56, 56)]:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ref = proc(images=[img], return_tensors="np")
        mine = vision.image_view(img)
        np.testing.assert_array_equal(mine["image_grid_thw"], ref["image_grid_thw"])
        np.testing.assert_allclose(mine["pixel_values"], ref["pixel_values"], rtol=0, atol=1e-5)


@pytest.mark.torch
def test_video_layout_matches_torch_video_processor():
    """Frames already at the target size (no resampling): the patch order, temporal padding and
    normalisation must equal Qwen2VLVideoProcessor's exactly."""
    from transformers import Qwen2VLVideoProcessor

    rng = np.random.default_rng(3)
    proc = Qwen2VLVideoProcessor(
        size={"shortest_edge": vision.S1_MIN_PIXELS, "longest_edge": vision.S1_MAX_PIXELS}, cap_pixels_per_frame=False
    )
    for t, h, w in [(5, 112, 224), (4, 168, 140)]:
        vid = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
        ref = proc(videos=[vid], return_tensors="np", do_sample_frames=False)
        mine = vision.video_view(vid)
        np.testing.assert_array_equal(mine["video_grid_thw"], ref["video_grid_thw"])
        np.testing.assert_allclose(mine["pixel_values_videos"], ref["pixel_values_videos"], rtol=0, atol=1e-5)


def test_keyframe_view_budget_and_scale():
    frame = np.zeros((480, 854, 3), np.uint8)
    img, (sy, sx) = vision.keyframe_view(frame)
    assert img.shape[0] * img.shape[1] <= vision.S2_MAX_PIXELS and img.shape[0] % 28 == 0 and img.shape[1] % 28 == 0
    assert (sy, sx) == (img.shape[0] / 480, img.shape[1] / 854)
    big = np.zeros((2160, 3840, 3), np.uint8)
    img, _ = vision.keyframe_view(big)
    assert img.shape[0] * img.shape[1] <= 900 * 28 * 28
