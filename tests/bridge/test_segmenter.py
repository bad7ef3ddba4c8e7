"""SAM2 group pass: independence of rollouts and parity with the stock sam2 predictor (hiera_t, random
weights, image_size 256, float32, CPU)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sam2_bridge.server.sam2_reference import as_stock, stock_rollout_logits, write_jpeg_clip  # noqa: E402
from sam2_bridge.server.segmenter import GroupSegmenter, Sam2Config, build_predictor  # noqa: E402
from sam2_bridge.wire.constants import BACKGROUND, PALETTE  # noqa: E402

pytestmark = pytest.mark.torch
T, H, W = 4, 72, 96
TOL = 1e-5

# (rollout, frame, box): r0 has prompts on several frames (two boxes on frame 2), r1 only on the last frame,
# r2 none, r3 repeats one of r0's detections exactly.
DETS = [
    (0, 0, [10, 20, 40, 50]),
    (0, 2, [30, 18, 62, 48]),
    (0, 2, [55, 40, 90, 70]),
    (0, 3, [40, 15, 75, 50]),
    (1, 3, [50, 35, 92, 71]),
    (3, 2, [30, 18, 62, 48]),
]
R = 4


def _clip(tmp_path):
    rng = np.random.default_rng(0)
    frames = np.clip(np.asarray(BACKGROUND) + rng.integers(-6, 7, (T, H, W, 3)), 0, 255).astype(np.uint8)
    for t in range(T):
        frames[t, 20:48, 12 + 10 * t : 40 + 10 * t] = PALETTE["red"]
        frames[t, 45:68, 60:88] = PALETTE["blue"]
    return write_jpeg_clip(frames, str(tmp_path))  # the stock loader reads JPEG folders


@pytest.fixture(scope="module")
def predictor():
    cfg = Sam2Config(config="configs/sam2.1/sam2.1_hiera_t.yaml", image_size=256, round_memory_to_bf16=True)
    return cfg, build_predictor(cfg)


def _run(seg, frames, dets, num_rollouts):
    r, f, b = zip(*dets) if dets else ((), (), ())
    out = seg.segment(
        frames,
        num_rollouts,
        np.asarray(r, np.int32),
        np.asarray(f, np.int32),
        np.asarray(b, np.float32).reshape(-1, 4),
        keep_logits=True,
    )
    return out, (out.video_logits(H, W) if dets else None)


def test_rollouts_are_independent_and_match_stock_sam2(predictor, tmp_path):
    cfg, model = predictor
    frames = _clip(tmp_path)
    seg = GroupSegmenter(cfg, model)
    group, (g_fwd, g_bwd) = _run(seg, frames, DETS, R)
    assert group.masks.shape == (R, T, H, W)
    assert not group.masks[2].any()  # no detection -> empty masks
    assert group.masks[0].any() and group.masks[1].any()
    for r in (0, 1, 3):
        idx = [d for d, det in enumerate(DETS) if det[0] == r]
        alone, (a_fwd, a_bwd) = _run(seg, frames, [(0, f, b) for (_, f, b) in (DETS[d] for d in idx)], 1)
        assert (g_fwd[idx] - a_fwd).abs().max().item() <= TOL, r
        assert (g_bwd[idx] - a_bwd).abs().max().item() <= TOL, r
        np.testing.assert_array_equal(group.masks[r], alone.masks[0])
    # r3's single detection is identical to r0's second one: tracked once, identical logits
    assert group.timings["objects_tracked"] == len(DETS) - 1
    assert (g_fwd[5] == g_fwd[1]).all() and (g_bwd[5] == g_bwd[1]).all()
    _check_against_stock(model, tmp_path, g_fwd, g_bwd, group.masks, rollouts=(1,))


@pytest.mark.slow
def test_multi_frame_rollout_matches_stock_sam2(predictor, tmp_path):
    cfg, model = predictor
    frames = _clip(tmp_path)
    group, (g_fwd, g_bwd) = _run(GroupSegmenter(cfg, model), frames, DETS, R)
    _check_against_stock(model, tmp_path, g_fwd, g_bwd, group.masks, rollouts=(0, 1))


def _check_against_stock(model, tmp_path, g_fwd, g_bwd, masks, rollouts):
    """The stock predictor, one inference state per rollout, same two full sweeps."""
    stock = as_stock(model)
    for r in rollouts:
        idx = [d for d, det in enumerate(DETS) if det[0] == r]
        s_fwd, s_bwd = stock_rollout_logits(stock, str(tmp_path), [(DETS[d][1], DETS[d][2]) for d in idx], T)
        assert (g_fwd[idx] - s_fwd).abs().max().item() <= TOL, r
        assert (g_bwd[idx] - s_bwd).abs().max().item() <= TOL, r
        expect = ((s_fwd > 0) | (s_bwd > 0)).any(0).numpy()
        np.testing.assert_array_equal(masks[r], expect)


def test_default_cpu_mode_keeps_float32_memory_and_independence(predictor, tmp_path):
    cfg, model = predictor
    frames = _clip(tmp_path)
    seg = GroupSegmenter(Sam2Config(config=cfg.config, image_size=256), model)
    assert not seg.round_memory_to_bf16
    dets = [DETS[0], DETS[1], DETS[4]]
    group, (g_fwd, g_bwd) = _run(seg, frames, dets, 2)
    alone, (a_fwd, a_bwd) = _run(seg, frames, [(0, 3, DETS[4][2])], 1)
    assert (g_fwd[2:] - a_fwd).abs().max().item() <= TOL
    assert (g_bwd[2:] - a_bwd).abs().max().item() <= TOL
    np.testing.assert_array_equal(group.masks[1], alone.masks[0])


def test_sharing_identical_prompts_changes_nothing(predictor, tmp_path):
    """Why identical (frame, box) detections may be tracked once: tracked as separate objects in one pass, they
    get the same logits (to float rounding), so the shared pass gives the same masks."""
    cfg, model = predictor
    frames = _clip(tmp_path)
    dets = [DETS[1], DETS[4], DETS[5], DETS[5]]  # r3's box twice, and r0's identical one
    separate, (s_fwd, s_bwd) = _run(
        GroupSegmenter(Sam2Config(config=cfg.config, image_size=256, share_identical_prompts=False), model),
        frames,
        dets,
        R,
    )
    shared, (h_fwd, h_bwd) = _run(GroupSegmenter(Sam2Config(config=cfg.config, image_size=256), model), frames, dets, R)
    assert separate.timings["objects_tracked"] == 4 and shared.timings["objects_tracked"] == 2
    for d in (2, 3):
        assert (s_fwd[d] - s_fwd[0]).abs().max().item() <= TOL
        assert (s_bwd[d] - s_bwd[0]).abs().max().item() <= TOL
    assert (h_fwd - s_fwd).abs().max().item() <= TOL and (h_bwd - s_bwd).abs().max().item() <= TOL
    np.testing.assert_array_equal(shared.masks, separate.masks)


def test_union_rule_equals_per_object_union_over_sweeps():
    import torch.nn.functional as F

    from sam2_bridge.server.objects import ObjectTable

    rng = np.random.default_rng(0)
    d, t, h, w, big_h, big_w = 70, 5, 16, 16, 30, 41
    table = ObjectTable.from_detections(9, rng.integers(0, 8, d), rng.integers(0, t, d), rng.random((d, 4)) * 10)
    fwd, bwd = torch.randn(d, t, 1, h, w), torch.randn(d, t, 1, h, w)
    got = GroupSegmenter.__new__(GroupSegmenter)._union_masks(table, fwd, bwd, big_h, big_w)

    def up(x):
        y = F.interpolate(x.reshape(d * t, 1, h, w), size=(big_h, big_w), mode="bilinear", align_corners=False)
        return (y[:, 0] > 0).reshape(d, t, big_h, big_w).numpy()

    np.testing.assert_array_equal(got, table.union_by_rollout(up(fwd) | up(bwd)))
    assert not got[8].any()  # rollout 8 has no detection
