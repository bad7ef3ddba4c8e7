"""The ``official`` preset against the released reward code, one test per row of the table in
``omnir1_jax/rewards/total.py``; every expected value is worked out by hand in the comments."""

import json

import numpy as np
import pytest

from omnir1_jax.rewards import (
    TABLE4_WEIGHTS,
    RewardWeights,
    alignment_reward,
    mismatch_reward,
    num_reward,
    official_structure_reward,
    parse_answer,
    saliency_reward,
    total_reward,
)


def _text(spans, fps=2.0):
    objs = [
        {"start_time": f"00:{a / fps:05.2f}", "end_time": f"00:{b / fps:05.2f}", "description": "x"} for a, b in spans
    ]
    return f"<think>t</think><answer>{json.dumps(objs)}</answer>"


def _ans(spans, t=4):
    return parse_answer(_text(spans), t)


def test_row_mismatch_penalty():
    # keyframes 0 and 2 are grounded. O = 1: 3 boxes on frame 0 (2 extra), 1 on frame 2 -> -0.5 * 2 / (1 * 2)
    a = _ans([(0, 0), (2, 2)])
    boxes = {0: np.zeros((3, 4)), 2: np.zeros((1, 4))}
    assert mismatch_reward([a], [boxes], 1)[0] == pytest.approx(-0.5)
    # O = 2: one extra on frame 0 -> -0.5 * 1 / (2 * 2); fewer boxes than O cost nothing here
    assert mismatch_reward([a], [boxes], 2)[0] == pytest.approx(-0.125)
    # only the first 4 distinct keyframes are grounded: extra boxes on a 5th keyframe do not count
    b = _ans([(0, 0), (1, 1), (2, 2), (3, 3), (5, 5)], t=8)
    assert mismatch_reward([b], [{5: np.zeros((4, 4))}], 1)[0] == 0.0
    assert mismatch_reward([parse_answer("bad", 4)], [boxes], 1)[0] == 0.0


def test_row_num_not_rescaled():
    # 0.4 K for K <= 4, 0.4 (7 - K) above: K = 3 -> 1.2, K = 6 -> 0.4
    assert num_reward([_ans([(0, 2)]), _ans([(0, 5)], t=6)], preset="official").tolist() == pytest.approx([1.2, 0.4])


def test_row_alignment_first_o_boxes_inclusive_iou():
    a = _ans([(1, 1)])
    gt = [np.array([[0, 0, 10, 10]], float)] * 4  # mask columns / rows 0..9: inclusive (0, 0, 9, 9), 100 px
    late = {1: np.array([[50, 50, 60, 60], [0, 0, 9, 9]], float)}
    # O = 1: only System 2's first box counts (IoU 0); O = 2: the second one matches exactly
    assert alignment_reward([a], [late], gt, preset="official", num_objects=1)[0] == 0.0
    assert alignment_reward([a], [late], gt, preset="official", num_objects=2)[0] == pytest.approx(1.0)
    # inclusive IoU: (0, 0, 4, 9) covers 5 x 10 = 50 of the 100 px -> 0.5
    half = {1: np.array([[0, 0, 4, 9]], float)}
    assert alignment_reward([a], [half], gt, preset="official")[0] == pytest.approx(0.5)


def test_row_no_system2_box_drops_saliency_alignment_mismatch_grounding():
    # T = 4, the target equally large on every frame; one single-frame item at frame 0.
    # Without any box: format 1 + R_K (diversity 0 + num 0.4 + saliency dropped) + structure (0.2+0.2+0.2+1)
    # = 1 + 0.4 + 1.6 = 3.0, grounding dropped. With a box on frame 0 and SAM2 masks = GT:
    # 1 + (0.4 + 1) + grounding 1 + structure 1.6 (+ mismatch 0, one box for one object) = 5.0.
    gt = np.ones((4, 3, 3), bool)
    text = _text([(0, 0)])
    pred = gt[None]
    kw = dict(
        num_frames=4, gt_masks=gt, pred_masks=pred, preset="official", gt_boxes=[np.array([[0, 0, 3, 3]], float)] * 4
    )
    none, c0 = total_reward([text], pred_boxes=[{}], **kw)
    assert none[0] == pytest.approx(3.0) and c0["saliency"][0] == 0.0 and c0["grounding"][0] == 0.0
    boxed, c1 = total_reward([text], pred_boxes=[{0: np.array([[0, 0, 2, 2]], float)}], **kw)
    assert boxed[0] == pytest.approx(5.0) and c1["saliency"][0] == 1.0 and c1["mismatch"][0] == 0.0
    # paper preset: nothing is dropped (format 1 + R_K (0.25 + 0.25 + 1) + grounding 1 = 3.5)
    paper, _ = total_reward([text], pred_boxes=[{}], **{**kw, "preset": "paper"})
    assert paper[0] == pytest.approx(3.5)


def test_row_structure_per_object_visible_fraction():
    # one item over frames 0..1; object A visible on both, B on frame 0 only: 3 of 4 (object, frame) pairs
    # -> 0.2 + 0.2 + 0.2 + 0.75 = 1.35; the union is visible on both frames -> 1.6
    visible = np.array([[1, 1], [1, 0], [0, 0], [0, 0]], bool)
    areas = np.array([5.0, 5.0, 0.0, 0.0])
    a = _ans([(0, 1)])
    assert official_structure_reward([a], areas, visible)[0] == pytest.approx(1.35)
    assert official_structure_reward([a], areas)[0] == pytest.approx(1.6)


def test_row_saliency_uses_the_union_deliberately():
    # two 4-px objects: overlapping by 2 px on frame 0 (union 6), disjoint on frame 1 (union 8).
    # keyframe 0: union 6 / peak 8 = 0.75 (the release's sum of object areas would give 8 / 8 = 1.0)
    a = np.zeros((2, 4, 4), bool)
    b = np.zeros((2, 4, 4), bool)
    a[0, 0, :4] = True
    b[0, 0, 2:4] = True
    b[0, 1, 2:4] = True
    a[1, 0, :4] = True
    b[1, 3, :4] = True
    union = a | b
    assert saliency_reward([_ans([(0, 0)], t=2)], union, preset="official")[0] == pytest.approx(0.75)


def test_row_alpha_g_zero_keeps_saliency_and_alignment_deliberately():
    # R_K + R_A (a_g = 0): the release would drop saliency, R_A and the mismatch term; we keep them.
    # one item at frame 0 (K = 1), target everywhere, System 2 box = GT box (R_A 1):
    # format 1 + R_K (div 0 + num 0.4 + sal 1) + R_A 1 + structure 1.6 = 5.0
    gt = np.ones((4, 3, 3), bool)
    tot, c = total_reward(
        [_text([(0, 0)])],
        num_frames=4,
        gt_masks=gt,
        preset="official",
        weights=TABLE4_WEIGHTS["R_K+R_A"],
        gt_boxes=[np.array([[0, 0, 3, 3]], float)] * 4,
        pred_boxes=[{0: np.array([[0, 0, 2, 2]], float)}],
    )
    assert tot[0] == pytest.approx(5.0) and c["alignment"][0] == pytest.approx(1.0)


def test_row_every_target_object_counts_deliberately():
    # two target objects, both found: official R_A = 1 (the release's default select_number = 1 keeps one)
    gt = [np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)] * 4
    pred = [{0: np.array([[0, 0, 9, 9], [20, 0, 29, 9]], float)}]
    assert alignment_reward([_ans([(0, 0)])], pred, gt, preset="official", num_objects=2)[0] == pytest.approx(1.0)


def test_row_item_ending_past_the_clip_is_clamped_deliberately():
    # T = 4 frames = 2 s; 00:01.00 - 00:05.00 covers frames 2..3 (the release drops the item: end > 2 s)
    a = parse_answer(
        '<think>t</think><answer>{"start_time": "00:01.00", "end_time": "00:05.00", "description": "x"}</answer>', 4
    )
    assert a.valid and a.keyframes == (2, 3)


def test_official_weights_are_the_release_defaults():
    # the release: alpha_k = alpha_k_ratio = alpha_a = alpha_g = 1; our lambda_3 * alpha_K plays alpha_k_ratio
    w = RewardWeights(alpha_a=1.0)
    assert (w.alpha_k, w.alpha_a, w.alpha_g, w.lambdas[2]) == (1.0, 1.0, 1.0, 1.0)
