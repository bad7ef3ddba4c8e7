"""R_A: IoU matrix + optimal assignment against scipy's linear_sum_assignment."""

import json

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from omnir1_jax.rewards import alignment_reward, box_iou_matrix, hungarian_loss, linear_assignment, parse_answer


def _random_boxes(rng, n, size=100.0):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(1, size / 2, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


def _iou_ref(a, b):
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            inter = iw * ih
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            out[i, j] = inter / union
    return out


def test_iou_matrix_matches_loop():
    rng = np.random.default_rng(0)
    a, b = _random_boxes(rng, 7), _random_boxes(rng, 4)
    np.testing.assert_allclose(box_iou_matrix(a, b), _iou_ref(a, b), atol=1e-12)
    assert box_iou_matrix(np.zeros((0, 4)), b).shape == (0, 4)
    assert box_iou_matrix([[0, 0, 0, 0]], [[0, 0, 0, 0]])[0, 0] == 0.0  # degenerate, not NaN


def test_gt_box_at_x1_zero_is_not_zero_iou():
    # The released code scored IoU 0 whenever the GT box had x1 = 0.
    assert box_iou_matrix([[0, 0, 10, 10]], [[0, 0, 10, 10]])[0, 0] == 1.0


@pytest.mark.parametrize("seed", range(40))
def test_linear_assignment_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    n, m = rng.integers(1, 9, 2)
    cost = -box_iou_matrix(_random_boxes(rng, n, 60), _random_boxes(rng, m, 60))
    r, c = linear_assignment(cost)
    r2, c2 = linear_sum_assignment(cost)
    assert len(r) == len(r2) == min(n, m)
    assert cost[r, c].sum() == pytest.approx(cost[r2, c2].sum(), abs=1e-12)
    assert len(set(r.tolist())) == len(r) and len(set(c.tolist())) == len(c)


@pytest.mark.parametrize("seed", range(20))
def test_hungarian_loss_against_scipy(seed):
    rng = np.random.default_rng(100 + seed)
    pred, gt = _random_boxes(rng, rng.integers(1, 7), 50), _random_boxes(rng, rng.integers(1, 7), 50)
    iou = _iou_ref(pred, gt)
    r, c = linear_sum_assignment(-iou)
    expected = 1 - iou[r, c].sum() / max(len(pred), len(gt))
    assert hungarian_loss(pred, gt) == pytest.approx(expected, abs=1e-12)


def test_hungarian_loss_edge_cases():
    box = np.array([[10, 10, 20, 20]], float)
    assert hungarian_loss(np.zeros((0, 4)), np.zeros((0, 4))) == 0.0
    assert hungarian_loss(box, np.zeros((0, 4))) == 1.0  # extra box
    assert hungarian_loss(np.zeros((0, 4)), box) == 1.0  # missing box
    assert hungarian_loss(box, box) == 0.0
    assert hungarian_loss(np.concatenate([box, box + 50]), box) == pytest.approx(0.5)  # one extra costs half
    with pytest.raises(ValueError, match="pred_boxes"):
        hungarian_loss(np.zeros((2, 3)), box)


def _answer(frames, num_frames=10):
    objs = [{"start_time": f"00:{f / 2:05.2f}", "end_time": f"00:{f / 2:05.2f}", "description": "x"} for f in frames]
    return parse_answer(f"<think>t</think><answer>{json.dumps(objs)}</answer>", num_frames)


def test_alignment_reward_mean_over_distinct_keyframes():
    rng = np.random.default_rng(7)
    gt = {t: _random_boxes(rng, 2, 40) for t in range(10)}
    gt[4] = np.zeros((0, 4))  # target absent on frame 4
    pred = {1: gt[1].copy(), 3: _random_boxes(rng, 3, 40), 4: np.zeros((0, 4))}
    answers = [_answer((1, 3, 3, 4, 6)), parse_answer("bad", 10)]
    r = alignment_reward(answers, [pred, {}], gt)
    expected = np.mean(
        [
            1 - hungarian_loss(pred[1], gt[1]),
            1 - hungarian_loss(pred[3], gt[3]),
            1 - 0.0,
            1 - hungarian_loss(np.zeros((0, 4)), gt[6]),
        ]
    )
    assert r[0] == pytest.approx(expected, abs=1e-6) and r[1] == 0.0
    assert r.dtype == np.float32


def test_alignment_official_mean_matched_iou_inclusive():
    # GT mask columns / rows 0..8: our box (0, 0, 9, 9), the release's inclusive box (0, 0, 8, 8)
    gt = [np.array([[0, 0, 9, 9]], float)] * 10
    pred = [{2: np.array([[0, 0, 8, 8], [50, 50, 60, 60]], float)}]
    # the extra box is free (and, with O = 1, not even looked at); inclusive pixels; the x1 = 0 bug is fixed
    assert alignment_reward([_answer((2,))], pred, gt, preset="official")[0] == pytest.approx(1.0)
    # paper: L_H = 1 - IoU((0,0,8,8), (0,0,9,9)) / 2 = 1 - (64 / 81) / 2
    assert alignment_reward([_answer((2,))], pred, gt)[0] == pytest.approx(64 / 81 / 2)
