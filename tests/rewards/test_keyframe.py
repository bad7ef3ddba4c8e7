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
    objs = [
        {"start_time": f"00:{f / fps:05.2f}", "end_time": f"00:{f / fps:05.2f}", "description": "x"} for f in frames
    ]
    return parse_answer(f"<think>t</think><answer>{json.dumps(objs)}</answer>", num_frames, fps)


INVALID = parse_answer("garbage", 20)


def test_format_reward():
    good = "<think>a</think>\n<answer>b</answer>"
    assert format_reward(
        [good, "  " + good + "\n", "<think>a</think>", "<answer>b</answer><think>a</think>", good + " trailing", None]
    ).tolist() == [1, 1, 0, 0, 0, 0]


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


def _intervals(spans, num_frames=24, fps=2.0):
    """An answer with one item per (first_frame, last_frame) span, in the given order."""
    objs = [
        {"start_time": f"00:{a / fps:05.2f}", "end_time": f"00:{b / fps:05.2f}", "description": "x"} for a, b in spans
    ]
    return parse_answer(f"<think>t</think><answer>{json.dumps(objs)}</answer>", num_frames, fps)


def test_diversity_long_interval_is_a_run_of_overlaps():
    # docs/design.md §3.3 worked out: one item over all 24 frames: J = 23 pairs of the same item, M = 24
    # -> -0.2 * 23 + 0.25 * 1 = -4.35; four single-frame items: 4 * 0.25 = 1.0.
    one_long = _intervals([(0, 23)])
    four = _intervals([(0, 0), (6, 6), (12, 12), (18, 18)])
    assert one_long.keyframes == tuple(range(24)) and set(one_long.keyframe_items) == {0}
    assert diversity_reward([one_long])[0] == pytest.approx(-4.35, abs=1e-6)
    assert diversity_reward([four])[0] == pytest.approx(1.0, abs=1e-6)
    # R_K with the target equally large on every frame (saliency 1): long item -4.35 + R_num 0 (K = 24) + 1;
    # four frames 1 + R_num 1 + 1. Before the fix these were 7.0 and 3.0.
    areas = np.ones(24)
    np.testing.assert_allclose(keyframe_reward([one_long, four], areas), [-3.35, 3.0], atol=1e-6)


def test_diversity_overlapping_and_nested_items():
    # items [1, 2] and [2, 3]: S = 1a 2a 2b 3b, pairs (same item, same frame, same item): J = 3, M = 4
    # -> -0.6 + 0.25 = -0.35, whatever the order of the items in the answer.
    for spans in ([(1, 2), (2, 3)], [(2, 3), (1, 2)]):
        assert diversity_reward([_intervals(spans)])[0] == pytest.approx(-0.35, abs=1e-6)
    # [1, 5] and [3, 3]: S = 1a 2a 3a 3b 4a 5a; only (3b, 4a) is neither -> J = 4, M = 6: -0.8 + 0.5 = -0.3
    for spans in ([(1, 5), (3, 3)], [(3, 3), (1, 5)]):
        assert diversity_reward([_intervals(spans)])[0] == pytest.approx(-0.3, abs=1e-6)
    # two adjacent two-frame items [0, 1], [2, 3]: J = 2 (one per item), M = 4 -> -0.4 + 0.5 = 0.1
    assert diversity_reward([_intervals([(0, 1), (2, 3)])])[0] == pytest.approx(0.1, abs=1e-6)


def test_official_diversity_penalises_interval_length_and_repeats():
    # one interval of 3 frames (0..2) and a repeat of frame 2: -0.2*2 - 0.5*1
    text = (
        '<think>t</think><answer>{"start_time": "00:00.00", "end_time": "00:01.00", "description": "a"}'
        '{"start_time": "00:01.00", "end_time": "00:01.00", "description": "b"}</answer>'
    )
    a = parse_answer(text, 10)
    assert diversity_reward([a], preset="official")[0] == pytest.approx(-0.9)


# official = the release's total_frame_reward: 0.4 K for K <= 4, else 0.4 (7 - K) (not rescaled)
@pytest.mark.parametrize(
    "k, paper, official",
    [(1, 0.25, 0.4), (2, 0.5, 0.8), (4, 1.0, 1.6), (5, 0.75, 0.8), (6, 0.5, 0.4), (8, 0.0, -0.4), (9, 0.0, -0.8)],
)
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
    for fn in (
        lambda a: diversity_reward(a),
        lambda a: num_reward(a),
        lambda a: saliency_reward(a, areas),
        lambda a: keyframe_reward(a, areas),
    ):
        assert fn([INVALID])[0] == 0.0


def test_keyframe_reward_is_weighted_sum():
    areas = np.linspace(0, 1, 20)
    answers = [_answer((2, 5, 5, 11, 17)), _answer((0,)), INVALID]
    lam = (0.5, 2.0, 3.0)
    expected = (
        lam[0] * diversity_reward(answers) + lam[1] * num_reward(answers) + lam[2] * saliency_reward(answers, areas)
    )
    np.testing.assert_allclose(keyframe_reward(answers, areas, lambdas=lam), expected, rtol=1e-6)
    assert keyframe_reward(answers, areas).dtype == np.float32


def test_official_structure_reward():
    areas = np.zeros(10)
    areas[0] = 5.0
    text = (
        '<think>t</think><answer>{"start_time": "00:00.00", "end_time": "00:00.50", "description": "a"}'
        '{"start_time": "00:02.00", "end_time": "00:01.00", "description": "b"}</answer>'
    )
    a = parse_answer(text, 10)
    # first: 0.2 + 0.2 + 0.2 + 1/2 visible; second: 0.2 + 0.2 (times inconsistent)
    assert official_structure_reward([a], areas)[0] == pytest.approx((1.1 + 0.4) / 2)
