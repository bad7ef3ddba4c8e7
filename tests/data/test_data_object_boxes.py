"""Per-object GT boxes: one box per target object visible on a frame, from the reader through
the transforms, the batch and ``rl.rollout`` into R_A — never one box of the union mask."""

import numpy as np
import pytest

from omnir1_jax.data import readers, transforms
from omnir1_jax.data.masks import frame_box_sets, object_masks_to_boxes
from omnir1_jax.data.pipeline import collate
from omnir1_jax.rewards import alignment_reward, parse_answer
from omnir1_jax.rl import rollout

H, W = 20, 28  # the fixture trees' frame size (conftest.py)


def test_ground_truth_has_one_box_per_anno_id(revos_tree):
    # conftest: anno 11 = rect(2,6,3,9), None, rect(4,8,5,12), rect(0,3,0,4); anno 12 = None, rect(10,15,10,20),
    # rect(6,9,10,14), None; _rect(y0, y1, x0, x1) -> box (x0, y0, x1, y1) (pixel-edge convention).
    root, truth = revos_tree
    rec = next(r for r in readers.read_revos(root, "train") if r.exp_id == "1" and r.video_id.startswith("UVO"))
    ex = {"record": rec, "frame_indices": np.array([0, 1, 2, 3], np.int32), "orig_size": np.array([H, W])}
    ex = transforms.GroundTruth().map(ex)
    expected = np.array(
        [
            [[3, 2, 9, 6], [0, 0, 0, 0]],
            [[0, 0, 0, 0], [10, 10, 20, 15]],
            [[5, 4, 12, 8], [10, 6, 14, 9]],
            [[0, 0, 4, 3], [0, 0, 0, 0]],
        ],
        np.float32,
    )
    np.testing.assert_array_equal(ex["gt_boxes"], expected)
    np.testing.assert_array_equal(ex["gt_box_valid"], [[1, 0], [0, 1], [1, 1], [1, 0]])
    np.testing.assert_array_equal(ex["gt_masks"], truth[(rec.video_id, "1")])  # the union is still the mask GT
    # frame 2: two boxes, not the union's (5, 4, 14, 9)
    sets = frame_box_sets(ex["gt_boxes"], ex["gt_box_valid"])
    np.testing.assert_array_equal(sets[2], [[5, 4, 12, 8], [10, 6, 14, 9]])
    assert [len(s) for s in sets] == [1, 1, 2, 1]


def test_object_masks_to_boxes_no_object_and_legacy_layout():
    boxes, valid = object_masks_to_boxes(np.zeros((0, 3, 4, 5), bool))
    assert boxes.shape == (3, 1, 4) and not valid.any()
    # the one-box-per-frame layout [T, 4] / [T] is still read
    sets = frame_box_sets(np.array([[1, 2, 3, 4], [0, 0, 0, 0]], np.float32), np.array([True, False]))
    np.testing.assert_array_equal(sets[0], [[1, 2, 3, 4]])
    assert sets[1].shape == (0, 4)
    with pytest.raises(ValueError, match="T, O, 4"):
        frame_box_sets(np.zeros((2, 3)), np.zeros(2, bool))


def _example(t, boxes, valid):
    return {
        "model_inputs": {"input_ids": np.ones(3, np.int32), "attention_mask": np.ones(3, np.int32)},
        "use_audio_in_video": False,
        "dataset": "x",
        "video_id": "v",
        "exp_id": "0",
        "subset": "",
        "type_id": -1,
        "expression": "e",
        "frame_paths": ("a",) * t,
        "gt_masks": np.zeros((t, 2, 2), bool),
        "orig_size": np.array([2, 2]),
        "prompt": "p",
        "audio_path": "",
        "num_frames": t,
        "frame_indices": np.arange(t, dtype=np.int32),
        "gt_boxes": boxes,
        "gt_box_valid": valid,
        "fps_s1": 2.0,
    }


def test_collate_pads_objects_and_gt_box_lists_reads_them_back():
    a = _example(
        2,
        np.array([[[0, 0, 2, 2], [4, 4, 6, 6]], [[1, 1, 3, 3], [0, 0, 0, 0]]], np.float32),
        np.array([[True, True], [True, False]]),
    )
    b = _example(3, np.array([[[7, 7, 8, 8]]] * 3, np.float32), np.array([[True], [False], [True]]))
    batch = collate([a, b], pad_id=0)
    assert batch["gt_boxes"].shape == (2, 3, 2, 4) and batch["gt_box_valid"].shape == (2, 3, 2)
    assert not batch["gt_box_valid"][0, 2].any() and not batch["gt_box_valid"][1, :, 1].any()  # padding invalid
    first = rollout.gt_box_lists(batch, 0)
    assert len(first) == 2
    np.testing.assert_array_equal(first[0], [[0, 0, 2, 2], [4, 4, 6, 6]])
    np.testing.assert_array_equal(first[1], [[1, 1, 3, 3]])
    second = rollout.gt_box_lists(batch, 1)
    assert [len(s) for s in second] == [1, 0, 1]
    np.testing.assert_array_equal(second[2], [[7, 7, 8, 8]])
    assert len(rollout.gt_box_lists(batch, 1, num_frames=1)) == 1


def test_two_perfect_object_boxes_score_one_and_a_spanning_box_does_not():
    # Two objects on frame 0: A = (0, 0, 10, 10), B = (20, 0, 30, 10) (areas 100 each).
    # Two perfect boxes: L_H = 1 - (1 + 1) / 2 = 0 -> R_A = 1. One box (0, 0, 30, 10) (area 300) spanning both:
    # IoU with A = IoU with B = 100 / 300; one match of 1/3 over max(1, 2) = 2 boxes -> R_A = 1/6.
    # (With the old union GT box (0, 0, 30, 10) these were 0.05 and 1.0.)
    gt_boxes = np.array([[[0, 0, 10, 10], [20, 0, 30, 10]]] * 2, np.float32)
    gt_valid = np.array([[True, True], [False, False]])
    gt = rollout.gt_boxes_by_frame(gt_boxes, gt_valid)
    ans = parse_answer(
        '<think>t</think><answer>{"start_time": "00:00.00", "end_time": "00:00.00", "description": "both"}</answer>', 2
    )
    perfect = {0: np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)}
    spanning = {0: np.array([[0, 0, 30, 10]], np.float32)}
    np.testing.assert_allclose(alignment_reward([ans, ans], [perfect, spanning], gt), [1.0, 1 / 6], rtol=1e-6)


def test_system2_view_maps_every_object_box():
    frames = np.zeros((2, 480, 854, 3), np.uint8)
    boxes = np.array([[[0, 0, 854, 480], [427, 240, 854, 480]], [[0, 0, 0, 0], [0, 0, 0, 0]]], np.float32)
    valid = np.array([[True, True], [False, False]])
    out = transforms.system2_view(frames, [0, 1], boxes, valid)
    h, w = out[0]["image"].shape[:2]
    # whole frame -> whole resized image; the bottom-right quarter -> (w/2, h/2, w, h) (scale w/854, h/480)
    np.testing.assert_allclose(out[0]["gt_boxes"], [[0, 0, w, h], [427 * w / 854, 240 * h / 480, w, h]], rtol=1e-5)
    assert out[1]["gt_boxes"].shape == (0, 4)


def test_group_rewards_official_uses_per_object_visibility():
    from omnir1_jax.rewards import TABLE4_WEIGHTS

    # T = 4; object A visible on frames 0, 1; object B on frame 0 only; the union is 4 px on frames 0 and 1.
    # One item over frames 0..1: format 1 + R_K (official diversity -0.2 * 1 + num 0.4 * 2 + saliency 1)
    # + structure (0.2 + 0.2 + 0.2 + 3 of 4 object-frames visible) = 1 + 1.6 + 1.35 = 3.95
    masks = np.zeros((4, 2, 2), bool)
    masks[:2] = True
    boxes = np.zeros((4, 2, 4), np.float32)
    valid = np.array([[1, 1], [1, 0], [0, 0], [0, 0]], bool)
    text = '<think>t</think><answer>{"start_time": "00:00.00", "end_time": "00:00.50", "description": "x"}</answer>'
    total, comps = rollout.group_rewards(
        [text], 4, masks, boxes, valid, None, [[]], weights=TABLE4_WEIGHTS["R_K"], preset="official"
    )
    assert total[0] == pytest.approx(3.95) and comps["structure"][0] == pytest.approx(1.35)
