"""The SegZero-style grounding reward (docs/design.md §3.9) against hand-computed values, its never-raise
parsing, and the GT points of hand-built masks."""

import json

import numpy as np
import pytest

from omnir1_jax.rewards.segzero import gt_box_and_points, gt_points, parse_grounding_answer, resize_mask, segzero_reward

GT_BOX = [10, 20, 30, 40]  # 20 x 20 px
GT_PTS = [[15, 25], [20, 30]]


def answer(box=None, p1=None, p2=None, think="ok", **extra) -> str:
    obj = {k: v for k, v in (("bbox_2d", box), ("points_1", p1), ("points_2", p2)) if v is not None}
    obj.update(extra)
    return f"<think>{think}</think><answer>{json.dumps(obj)}</answer>"


def terms(text: str) -> dict:
    total, comps = segzero_reward([text], GT_BOX, GT_PTS)
    out = {k: float(v[0]) for k, v in comps.items()}
    out["total"] = float(total[0])
    return out


def test_exact_answer_scores_the_maximum_4_4():
    t = terms(answer(GT_BOX, GT_PTS[0], GT_PTS[1]))
    assert t == pytest.approx({"format": 1.0, "iou": 1.4, "box": 1.0, "points": 1.0, "total": 4.4})


def test_iou_term_above_one_half_gets_the_bonus():
    # pred [12, 20, 32, 40]: intersection 18 x 20 = 360, union 400 + 400 - 360 = 440, IoU = 9/11
    # iou term = 2 * (9/11 - 0.5) + 0.4; box L1 = (2 + 0 + 2 + 0) / 4 = 1 -> (30 - 1) * 0.05 = 1.45 -> clipped to 1
    t = terms(answer([12, 20, 32, 40], GT_PTS[0], GT_PTS[1]))
    assert t["iou"] == pytest.approx(2 * (9 / 11 - 0.5) + 0.4, abs=1e-6)
    assert t["box"] == 1.0 and t["points"] == 1.0 and t["format"] == 1.0
    assert t["total"] == pytest.approx(3 + 2 * (9 / 11 - 0.5) + 0.4, abs=1e-6)


def test_iou_of_exactly_one_half_gets_neither_term():
    # GT [0, 0, 20, 10] (200 px) inside pred [0, 0, 20, 20] (400 px): IoU = 0.5 -> 2 * 0 + no bonus
    total, comps = segzero_reward([answer([0, 0, 20, 20], [5, 5], [15, 5])], [0, 0, 20, 10], [[5, 5], [15, 5]])
    assert comps["iou"][0] == 0.0
    # box L1 = (0 + 0 + 0 + 10) / 4 = 2.5 -> (30 - 2.5) * 0.05 = 1.375 -> 1; points exact and inside -> 1
    assert comps["box"][0] == 1.0 and comps["points"][0] == 1.0 and total[0] == pytest.approx(3.0)


def test_box_term_is_linear_in_the_mean_coordinate_error():
    # pred [34, 20, 54, 40]: no overlap (IoU 0); L1 = (24 + 0 + 24 + 0) / 4 = 12 -> (30 - 12) * 0.05 = 0.9
    t = terms(answer([34, 20, 54, 40], [40, 30], [45, 25]))
    assert t["iou"] == 0.0 and t["box"] == pytest.approx(0.9, abs=1e-6)
    # a 60-px shift of x1 and x2: L1 = (60 + 0 + 60 + 0) / 4 = 30 -> 0
    assert terms(answer([70, 20, 90, 40], [75, 30], [80, 25]))["box"] == 0.0


def test_point_term_uses_the_better_pairing():
    # pred box [130, 20, 150, 40] (L1 = 60 -> box term 0); points (140, 30), (135, 25) inside it.
    # straight pairing: |(125, 5)| + |(115, -5)| = 125.10 + 115.11; crossed: |(120, 0)| + |(120, 0)| = 240
    # -> d = 240 / 2 = 120, point term (150 - 120) * 0.02 = 0.6
    t = terms(answer([130, 20, 150, 40], [140, 30], [135, 25]))
    assert t["points"] == pytest.approx(0.6, abs=1e-6)
    assert t["box"] == 0.0 and t["iou"] == 0.0 and t["total"] == pytest.approx(1.6, abs=1e-6)
    # d >= 150 -> 0
    assert terms(answer([170, 20, 200, 40], [180, 30], [185, 25]))["points"] == 0.0  # d = (165 + 165) / 2


def test_point_term_is_zero_unless_both_points_lie_inside_the_predicted_box():
    # the GT points exactly, but the predicted box [34, 20, 54, 40] does not contain them -> no point term
    t = terms(answer([34, 20, 54, 40], GT_PTS[0], GT_PTS[1]))
    assert t["points"] == 0.0 and t["total"] == pytest.approx(1.0 + 0.9, abs=1e-6)
    # one point inside, one outside -> 0
    assert terms(answer([14, 20, 19, 40], GT_PTS[0], GT_PTS[1]))["points"] == 0.0
    # both on the box's edges count as inside: box [15, 25, 20, 30] has the two GT points as corners
    edge = terms(answer([15, 25, 20, 30], GT_PTS[0], GT_PTS[1]))
    assert edge["points"] == 1.0
    # box L1 = (5 + 5 + 10 + 10) / 4 = 7.5 -> 1.125 -> 1; IoU = 25 / 400 -> 0
    assert edge["box"] == 1.0 and edge["iou"] == 0.0


def test_format_needs_the_three_keys_with_four_and_two_numbers():
    assert terms(answer(GT_BOX, GT_PTS[0], GT_PTS[1], extra_key="fine"))["format"] == 1.0
    # box without points: no format, no point term, but the box is still scored (1.4 + 1.0)
    t = terms(answer(GT_BOX))
    assert t["format"] == 0.0 and t["points"] == 0.0 and t["total"] == pytest.approx(2.4)
    for bad in (
        answer(GT_BOX[:3], GT_PTS[0], GT_PTS[1]),  # 3 box numbers
        answer(GT_BOX, [15, 25, 1], GT_PTS[1]),  # 3 point numbers
        answer(GT_BOX, ["15", 25], GT_PTS[1]),  # a string
        answer(GT_BOX, [True, 25], GT_PTS[1]),
    ):  # a boolean is not a number
        assert terms(bad)["format"] == 0.0, bad
    # a list of one object (Qwen's grounding habit) is read like the object
    listed = (
        '<think>x</think><answer>[{"bbox_2d": [10, 20, 30, 40], "points_1": [15, 25], "points_2": [20, 30]}]</answer>'
    )
    assert terms(listed)["total"] == pytest.approx(4.4)
    # nested braces inside the object decode (the release's regex {[^}]+} cannot)
    nested = answer(GT_BOX, GT_PTS[0], GT_PTS[1], meta={"a": {"b": 1}})
    assert terms(nested)["total"] == pytest.approx(4.4)


@pytest.mark.parametrize(
    "text",
    [
        None,
        17,
        "",
        "no tags at all",
        "<answer></answer>",
        "<answer>{bbox_2d: [1, 2, 3, 4]}</answer>",
        '<answer>{"bbox_2d": [10, 20, 30, 40]</answer>',  # truncated object
        '<answer>{"bbox_2d": [NaN, 20, 30, 40], "points_1": [1, 2], "points_2": [3, 4]}</answer>',
        '<answer>{"bbox_2d": [Infinity, 20, 30, 40], "points_1": [1, 2], "points_2": [3, 4]}</answer>',
        '<answer>{"bbox_2d": [1' + "0" * 400 + ", 20, 30, 40]}</answer>",  # an integer too large for a float
        '<answer>{"bbox_2d": "10, 20, 30, 40", "points_1": [1, 2], "points_2": [3, 4]}</answer>',
        "<answer>" + "{" * 50_000 + "</answer>",
        "<answer>" + "[" * 5000 + "</answer>",
        '<think>x</think><answer>{"bbox_2d": [10, 20, 30, 40], "points_1": [15, 25], "points_2": [20, 30]}',  # unclosed
    ],
)
def test_malformed_answers_score_zero_and_never_raise(text):
    total, comps = segzero_reward([text], GT_BOX, GT_PTS)
    assert total.dtype == np.float32 and total.tolist() == [0.0]
    assert all(v.tolist() == [0.0] for v in comps.values())
    assert parse_grounding_answer(text).formatted is False


def test_group_rewards_keep_the_row_order():
    texts = [answer(GT_BOX, GT_PTS[0], GT_PTS[1]), "junk", answer([130, 20, 150, 40], [140, 30], [135, 25])]
    total, comps = segzero_reward(texts, GT_BOX, GT_PTS)
    np.testing.assert_allclose(total, [4.4, 0.0, 1.6], atol=1e-6)
    np.testing.assert_allclose(comps["format"], [1, 0, 1])


# ------------------------------------------------------------------------------------------ GT points
def _disc(shape, cy, cx, r):
    yy, xx = np.indices(shape)
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_gt_points_of_two_disjoint_discs_are_their_centres():
    m = _disc((60, 100), 30, 25, 12) | _disc((60, 100), 20, 75, 7)
    pts = gt_points(m)
    # pixel (row, col) -> (col + 0.5, row + 0.5); the larger disc's centre comes first
    np.testing.assert_array_equal(pts, [[25.5, 30.5], [75.5, 20.5]])


def test_gt_points_of_a_bar_are_two_touching_circles():
    # a 10 x 40 bar (rows 10..19, cols 10..49): D = min(r + 1, 10 - r, c - 9, 50 - c) along the axes, max 5 on
    # rows 14 / 15, cols 14..45. First maximum in row-major order: (row 14, col 14). The second must satisfy
    # |p - p1| >= 5 + D(p) = 10: the first such D = 5 pixel is (row 14, col 24).
    m = np.zeros((30, 60), bool)
    m[10:20, 10:50] = True
    np.testing.assert_array_equal(gt_points(m), [[14.5, 14.5], [24.5, 14.5]])


def test_gt_points_of_one_disc_fall_back_to_its_centre_twice():
    # no second circle fits without overlapping the first, and no mask pixel lies outside the first circle
    pts = gt_points(_disc((40, 40), 20, 20, 8))
    np.testing.assert_array_equal(pts, [[20.5, 20.5], [20.5, 20.5]])


def test_gt_points_treat_the_image_border_as_background():
    # a mask filling the whole image: the deepest pixel is the centre, not a corner
    pts = gt_points(np.ones((9, 9), bool))
    np.testing.assert_array_equal(pts[0], [4.5, 4.5])
    assert gt_points(np.zeros((5, 5), bool)).tolist() == [[0, 0], [0, 0]]


def test_gt_box_and_points_follow_the_mask_resized_to_the_model_image():
    # rows 8..31, cols 10..29 of a 56 x 84 mask resized to 28 x 42: output pixel j samples input 2j + 1, so
    # cols 5..14 and rows 4..15 stay -> box (5, 4, 15, 16)
    m = np.zeros((56, 84), bool)
    m[8:32, 10:30] = True
    np.testing.assert_array_equal(resize_mask(m, 28, 42)[4:16, 5:15], True)
    assert resize_mask(m, 28, 42).sum() == 10 * 12
    box, pts = gt_box_and_points(m, (28, 42))
    np.testing.assert_array_equal(box, [5, 4, 15, 16])
    assert all(box[0] <= x <= box[2] and box[1] <= y <= box[3] for x, y in pts)
    empty_box, _ = gt_box_and_points(np.zeros((56, 84), bool), (28, 42))
    assert empty_box.tolist() == [0, 0, 0, 0]
