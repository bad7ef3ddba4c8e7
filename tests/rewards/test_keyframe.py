"""R_fmt, R_diversity, R_num, R_saliency, R_K on worked examples of the appendix formulas."""

import json

import numpy as np
import pytest

from omnir1_jax.rewards import (
    diversity_reward,
    format_reward,
    keyframe_reward,
    num_reward,
    official_structure_reward,
    parse_answer,
    saliency_reward,
)


def _answer(frames, num_frames=20, fps=2.0):
    """An answer whose intervals are single frames at the given indices."""
    objs = [{"start_time": f"00:{f / fps:05.2f}", "end_time": f"00:{f / fps:05.2f}", "description": "x"} for f in frames]
    return parse_answer(f"<think>t</think><answer>{json.dumps(objs)}</answer>", num_frames, fps)


INVALID = parse_answer("garbage", 20)


def test_format_reward():
    good = "<think>a</think>\n<answer>b</answer>"
    assert format_reward([good, "  " + good + "\n", "<think>a</think>", "<answer>b</answer><think>a</think>",
                          good + " trailing", None]).tolist() == [1, 1, 0, 0, 0, 0]


@pytest.mark.parametrize(
    "frames, expected",
    [
        ((2, 5, 9, 14), 1.0),  # 4 distinct: dist_reward * 4
        ((3, 3, 7), 0.3),  # |J| = 1, M = 3: -0.45 + 0.75
        ((4, 4, 4, 4), 4 * 0.25 - 3 * 0.45),  # |J| = 3
        ((1,), 0.25),
        ((0, 1, 2, 3, 4, 5), 1.5),
    ],
)
def test_diversity_worked_examples(frames, expected):
    assert diversity_reward([_answer(frames)])[0] == pytest.approx(expected, abs=1e-6)


def test_diversity_equals_appendix_first_form():
    # overlap_punish * |J| + dist_reward * |D| with |D| = M - |J|.
    rng = np.random.default_rng(0)
    for _ in range(50):
        frames = tuple(sorted(rng.integers(0, 6, rng.integers(1, 8)).tolist()))
        j = sum(frames[i] == frames[i + 1] for i in range(len(frames) - 1))
        expected = -0.2 * j + 0.25 * (len(frames) - j)
        assert diversity_reward([_answer(frames)])[0] == pytest.approx(expected, abs=1e-6)


def test_official_diversity_penalises_interval_length_and_repeats():
    # one interval of 3 frames (0..2) and a repeat of frame 2: -0.2*2 - 0.5*1
    text = ('<think>t</think><answer>{"start_time": "00:00.00", "end_time": "00:01.00", "description": "a"}'
            '{"start_time": "00:01.00", "end_time": "00:01.00", "description": "b"}</answer>')
    a = parse_answer(text, 10)
    assert diversity_reward([a], preset="official")[0] == pytest.approx(-0.9)


@pytest.mark.parametrize("k, paper, official", [(1, 0.25, 0.25), (2, 0.5, 0.5), (4, 1.0, 1.0), (5, 0.75, 0.5),
                                                 (6, 0.5, 0.25), (8, 0.0, -0.25), (9, 0.0, -0.5)])
def test_num_reward(k, paper, official):
    a = _answer(tuple(range(k)) + (0,))  # a repeat does not change K
    assert num_reward([a])[0] == pytest.approx(paper)
    assert num_reward([a], preset="official")[0] == pytest.approx(official)


def test_saliency_worked_example():
    areas = np.zeros(20)
    areas[[1, 3, 5]] = [10, 40, 20]
    a = _answer((1, 1, 3))
    assert saliency_reward([a], areas)[0] == pytest.approx((10 / 40 + 40 / 40) / 2)
    masks = np.zeros((20, 8, 8), bool)
    masks[1, :2, :5] = True  # 10 px
    masks[3, :5, :8] = True  # 40 px
    assert saliency_reward([a], masks)[0] == pytest.approx(0.625)
    assert saliency_reward([a], np.zeros(20))[0] == 0.0  # target never visible
    # official: only the first 4 distinct keyframes count
    areas2 = np.arange(20, dtype=float)
    b = _answer((1, 2, 3, 4, 19))
    assert saliency_reward([b], areas2, preset="official")[0] == pytest.approx(np.mean([1, 2, 3, 4]) / 19)
    assert saliency_reward([b], areas2)[0] == pytest.approx(np.mean([1, 2, 3, 4, 19]) / 19)


def test_invalid_answers_score_zero_everywhere():
    areas = np.ones(20)
    for fn in (lambda a: diversity_reward(a), lambda a: num_reward(a), lambda a: saliency_reward(a, areas),
               lambda a: keyframe_reward(a, areas)):
        assert fn([INVALID])[0] == 0.0


def test_keyframe_reward_is_weighted_sum():
    areas = np.linspace(0, 1, 20)
    answers = [_answer((2, 5, 5, 11, 17)), _answer((0,)), INVALID]
    lam = (0.5, 2.0, 3.0)
    expected = lam[0] * diversity_reward(answers) + lam[1] * num_reward(answers) + lam[2] * saliency_reward(answers, areas)
    np.testing.assert_allclose(keyframe_reward(answers, areas, lambdas=lam), expected, rtol=1e-6)
    assert keyframe_reward(answers, areas).dtype == np.float32


def test_official_structure_reward():
    areas = np.zeros(10)
    areas[0] = 5.0
    text = ('<think>t</think><answer>{"start_time": "00:00.00", "end_time": "00:00.50", "description": "a"}'
            '{"start_time": "00:02.00", "end_time": "00:01.00", "description": "b"}</answer>')
    a = parse_answer(text, 10)
    # first: 0.2 + 0.2 + 0.2 + 1/2 visible; second: 0.2 + 0.2 (times inconsistent)
    assert official_structure_reward([a], areas)[0] == pytest.approx((1.1 + 0.4) / 2)
