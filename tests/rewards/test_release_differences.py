"""The remaining differences from the released reward code (BENCHMARKS.md "Peers"), each against hand-built answers:
substring key matching (``lenient_keys``), the trainer's length bonus, the grounding options' validation, and a
JSON object that is no interval in the ``official`` structure bonus."""

import json

import numpy as np
import pytest

from omnir1_jax.rewards import official_structure_reward, parse_answer, total_reward
from omnir1_jax.rewards.segzero import SegZeroSpec, length_bonus, parse_grounding_answer, segzero_reward

GT_BOX = [10, 20, 30, 40]
GT_PTS = [[15, 25], [20, 30]]


def _answer(obj) -> str:
    return f"<think>t</think><answer>{json.dumps(obj)}</answer>"


def test_lenient_keys_score_like_the_release():
    # the GT box and points under near-miss keys: exact matching finds nothing (every term 0); the release's
    # substring matching ("bbox" / "points", case-insensitive) finds them: IoU 1 -> 2 * 0.5 + 0.4 = 1.4, box 1,
    # points 1; the format term still wants the exact keys (the release's strict=True in the SegZero task): 0.
    text = _answer({"BBox_2D": GT_BOX, "Points_1": GT_PTS[0], "POINTS_2": GT_PTS[1]})
    total, comps = segzero_reward([text], GT_BOX, GT_PTS)
    assert total.tolist() == [0.0]
    total, comps = segzero_reward([text], GT_BOX, GT_PTS, lenient_keys=True)
    assert {k: float(v[0]) for k, v in comps.items()} == pytest.approx(
        {"format": 0.0, "iou": 1.4, "box": 1.0, "points": 1.0}
    )
    assert float(total[0]) == pytest.approx(3.4)


def test_lenient_keys_take_the_first_matching_keys_in_order():
    # the first key containing "bbox" wins (here a box 10 px to the right: mean error 5 -> (30 - 5) * 0.05 = 1.25,
    # clipped to 1; IoU 200 / 600 = 1/3 <= 0.5 -> 0); the exact "bbox_2d" later is not looked at
    text = _answer({"bbox": [20, 20, 40, 40], "bbox_2d": GT_BOX, "points_1": GT_PTS[0], "points_2": GT_PTS[1]})
    a = parse_grounding_answer(text, lenient_keys=True)
    assert a.box == (20.0, 20.0, 40.0, 40.0) and a.formatted  # the exact keys are all there: format 1
    assert parse_grounding_answer(text).box == (10.0, 20.0, 30.0, 40.0)
    _, comps = segzero_reward([text], GT_BOX, GT_PTS, lenient_keys=True)
    assert float(comps["iou"][0]) == 0.0 and float(comps["box"][0]) == 1.0
    # only one key containing "points": no points (the release needs two)
    one = parse_grounding_answer(_answer({"bbox_2d": GT_BOX, "points": GT_PTS[0]}), lenient_keys=True)
    assert one.box == (10.0, 20.0, 30.0, 40.0) and one.points is None


def test_length_bonus_by_hand():
    acc = [0.2, 0.2, 0.2, 0.2, 0.05, 0.1]
    lengths = [320, 750, 319, 751, 500, 500]
    # accuracy > 0.1 (strictly: 0.1 itself is out) and 320 <= length <= 750 (inclusive)
    assert length_bonus(lengths, acc).tolist() == [1, 1, 0, 0, 0, 0]
    # one qualifying answer in the batch is not enough (the release needs more than one)
    assert length_bonus([400, 400], [0.5, 0.0]).tolist() == [0, 0]
    assert length_bonus([400, 10], [0.5, 0.5], length_range=(5, 20)).tolist() == [0, 1]
    with pytest.raises(ValueError, match="two \\[N\\] arrays"):
        length_bonus([1, 2], [0.5])


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(think_format=-1.0), "grpo.segzero.think_format"),
        (dict(length="1"), "grpo.segzero.length"),
        (dict(length_range=(750, 320)), "grpo.segzero.length_range"),
        (dict(length_range=(1.5, 3)), "length_range"),
        (dict(lenient_keys="yes"), "grpo.segzero.lenient_keys"),
    ],
)
def test_segzero_spec_names_the_bad_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SegZeroSpec(**kwargs)


def _spans_text(objs) -> str:
    return f"<think>t</think><answer>{json.dumps(objs)}</answer>"


def test_non_interval_object_counts_in_the_official_structure_bonus():
    interval = {"start_time": "00:00.0", "end_time": "00:00.0", "description": "x"}
    note = {"note": "the target is small"}
    areas = np.ones(4)  # the target visible on all 4 frames
    only = parse_answer(_spans_text([interval]), 4)
    both = parse_answer(_spans_text([interval, note]), 4)
    assert only.other_objects == 0 and both.other_objects == 1 and both.valid
    assert both.keyframes == only.keyframes == (0,)
    # the interval: 0.2 + 0.2 (keys) + 0.2 (consistent) + 1.0 (visible) = 1.6; the note: 0.2, one more object
    assert official_structure_reward([only], areas)[0] == pytest.approx(1.6)
    assert official_structure_reward([both], areas)[0] == pytest.approx((1.6 + 0.2) / 2)
    # an answer of notes only: no interval (invalid), structure 0.2 per object / objects = 0.2
    notes = parse_answer(_spans_text([note, {"a": 1}]), 4)
    assert not notes.valid and notes.other_objects == 2
    assert official_structure_reward([notes], areas)[0] == pytest.approx(0.2)
    # a wrapper holding intervals is not a note ({"moments": [...]} is searched, as before)
    wrapped = parse_answer(_spans_text({"moments": [interval]}), 4)
    assert wrapped.valid and wrapped.other_objects == 0


def test_non_interval_object_in_the_totals():
    interval = {"start_time": "00:00.0", "end_time": "00:00.0", "description": "x"}
    texts = [_spans_text([interval]), _spans_text([interval, {"note": "n"}])]
    gt = np.ones((4, 3, 3), bool)
    kw = dict(num_frames=4, gt_masks=gt, pred_masks=gt[None].repeat(2, 0))
    # paper: the note changes nothing; official: only the structure bonus moves, 1.6 -> 0.9
    paper, _ = total_reward(texts, **kw)
    assert paper[0] == paper[1]
    official, comps = total_reward(texts, preset="official", **kw)
    np.testing.assert_allclose(comps["structure"], [1.6, 0.9], atol=1e-6)
    assert official[0] - official[1] == pytest.approx(0.7, abs=1e-6)
