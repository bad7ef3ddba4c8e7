"""total_reward combines the components with the weights of eq. 4 / Table 4."""

import json

import numpy as np
import pytest

from omnir1_jax.rewards import TABLE4_WEIGHTS, RewardWeights, total_reward


def _completion(frames, fmt=True):
    objs = [
        {"start_time": f"00:{f / 2:05.2f}", "end_time": f"00:{f / 2:05.2f}", "description": "red circle"}
        for f in frames
    ]
    body = f"<answer>{json.dumps(objs)}</answer>"
    return ("<think>t</think>" + body) if fmt else body


def test_total_reward_paper_default():
    t, h, w = 8, 6, 6
    rng = np.random.default_rng(0)
    gt = rng.random((t, h, w)) < 0.4
    comps = [_completion((0, 2, 4, 6)), _completion((1, 1), fmt=False), "garbage"]
    pred = np.stack([gt, np.zeros_like(gt), np.ones_like(gt)])
    total, c = total_reward(comps, num_frames=t, gt_masks=gt, pred_masks=pred)
    np.testing.assert_allclose(total, c["format"] + c["keyframe"] + c["grounding"], rtol=1e-6)
    assert c["grounding"][0] == pytest.approx(1.0) and c["grounding"][2] == 0.0  # invalid answer -> 0
    assert c["valid"].tolist() == [1, 1, 0] and c["format"].tolist() == [1, 0, 0]
    assert total[2] == 0.0


def test_table4_rows_by_hand():
    # T = 4, the target = the whole 2x2 frame on every frame (GT box (0, 0, 2, 2)). Rollout A: single-frame items
    # at frames 0 and 2, formatted. Components by hand:
    #   format 1; diversity 2 * 0.25 = 0.5; num K = 2: 1 - 2/4 = 0.5; saliency 1 -> R_K = 2.0
    #   R_A: frame 0 box = GT (1 - L_H = 1), frame 2 box (0, 0, 1, 2) = half the GT (IoU 0.5, 1 - L_H = 0.5) -> 0.75
    #   R_G: SAM2 masks = GT on frames 0, 1 and empty on 2, 3 -> IoU 1, 1, 0, 0 -> 0.5
    # Rollout B ("garbage"): 0 everywhere.
    t = 4
    gt = np.ones((t, 2, 2), bool)
    pred = np.stack([gt, np.zeros_like(gt)])
    pred[0, 2:] = False
    gt_boxes = [np.array([[0, 0, 2, 2]], float)] * t
    pred_boxes = [{0: np.array([[0, 0, 2, 2]], float), 2: np.array([[0, 0, 1, 2]], float)}, {}]
    comps = [_completion((0, 2)), "garbage"]
    expected = {
        "R_K": 1 + 2.0,
        "R_K+R_A": 1 + 2.0 + 0.75,
        "R_K+R_G": 1 + 2.0 + 0.5,
        "R_K+R_A+R_G": 1 + 2.0 + 0.75 + 0.5,
    }
    for name, wts in TABLE4_WEIGHTS.items():
        tot, c = total_reward(
            comps, num_frames=t, gt_masks=gt, pred_masks=pred, gt_boxes=gt_boxes, pred_boxes=pred_boxes, weights=wts
        )
        np.testing.assert_allclose(tot, [expected[name], 0.0], rtol=1e-6, err_msg=name)
    np.testing.assert_allclose([c["keyframe"][0], c["alignment"][0], c["grounding"][0]], [2.0, 0.75, 0.5], rtol=1e-6)


def test_total_reward_needs_inputs_for_weights():
    with pytest.raises(ValueError, match="pred_masks"):
        total_reward(["x"], num_frames=4, gt_masks=np.zeros((4, 2, 2), bool))
    with pytest.raises(ValueError, match="alpha_a"):
        total_reward(["x"], num_frames=4, gt_masks=np.zeros(4), weights=TABLE4_WEIGHTS["R_K+R_A"])
    with pytest.raises(ValueError):
        RewardWeights(alpha_k=-1.0)


def test_official_preset_adds_structure():
    gt = np.ones((8, 2, 2), bool)
    comps = [_completion((0, 2, 4, 6))]
    tot, c = total_reward(comps, num_frames=8, gt_masks=gt, pred_masks=gt[None], preset="official")
    assert c["structure"][0] == pytest.approx(1.6)
    assert tot[0] == pytest.approx(c["format"][0] + c["keyframe"][0] + c["grounding"][0] + 1.6, rel=1e-6)
