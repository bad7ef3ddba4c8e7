"""R_G (jit, batched over rollouts x frames) against a per-frame numpy loop; RefAID."""

import jax
import numpy as np
import pytest

from omnir1_jax.rewards import grounding_reward, hungarian_loss, refaid_reward


def _loop(pred, gt, valid=None):
    out = []
    for i in range(pred.shape[0]):
        if valid is not None and not valid[i]:
            out.append(0.0)
            continue
        ious = []
        for t in range(gt.shape[0]):
            u = np.logical_or(pred[i, t], gt[t]).sum()
            ious.append(1.0 if u == 0 else np.logical_and(pred[i, t], gt[t]).sum() / u)
        out.append(np.mean(ious))
    return np.array(out)


@pytest.mark.parametrize("seed", range(4))
def test_grounding_reward_matches_loop(seed):
    rng = np.random.default_rng(seed)
    n, t, h, w = 5, 7, 13, 17
    gt = rng.random((t, h, w)) < 0.3
    gt[2] = False  # empty GT frame
    pred = rng.random((n, t, h, w)) < 0.3
    pred[0] = gt  # perfect rollout
    pred[1] = False  # empty rollout: IoU 1 on frame 2 only
    pred[2, 2] = False
    valid = np.array([1, 1, 1, 0, 1], bool)
    got = np.asarray(grounding_reward(pred, gt, rollout_valid=valid))
    np.testing.assert_allclose(got, _loop(pred, gt, valid), atol=1e-6)
    assert got[0] == pytest.approx(1.0) and got[1] == pytest.approx(1 / t) and got[3] == 0.0


def test_grounding_reward_is_jittable_and_frame_mask():
    rng = np.random.default_rng(0)
    gt = rng.random((4, 6, 6)) < 0.5
    pred = rng.random((2, 4, 6, 6)) < 0.5
    fv = np.array([1, 0, 1, 1], bool)
    jitted = jax.jit(grounding_reward)
    got = np.asarray(jitted(pred, gt, fv))
    np.testing.assert_allclose(got, _loop(pred[:, fv], gt[fv]), atol=1e-6)
    with pytest.raises(ValueError):
        grounding_reward(pred, gt[:3])


def test_refaid_reward():
    gt = np.array([[10, 10, 30, 30]], float)
    good = "<think>x</think><answer>the cello</answer>"
    no_fmt = "<answer>the cello</answer>"
    empty = "<think>x</think><answer> </answer>"
    preds = [gt, np.array([[10, 10, 30, 30], [50, 50, 60, 60]], float), gt]
    r = refaid_reward([good, no_fmt, empty], preds, gt)
    # the third has the format but no description: format only
    assert r.tolist() == pytest.approx([2.0, 1 - hungarian_loss(preds[1], gt), 1.0])
