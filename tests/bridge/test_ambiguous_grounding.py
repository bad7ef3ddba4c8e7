"""The synthetic grounder on the ambiguous world: a description naming colour + shape, even with
the query's motion / order words, grounds BOTH look-alikes on a keyframe (one frame cannot show motion), which is
what makes the one-way pipeline fail; position words still pick one."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from omnir1_jax.data.synthetic import writer
from sam2_bridge.server.synthetic import SyntheticGrounder, parse_description


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return iw * ih / union


@pytest.mark.parametrize(
    "text, positions",
    [
        ("the red circle moving left", []),
        ("blue square heading to the right", []),
        ("the square that moves towards the left", []),
        ("the red circle on the left", ["left"]),
        ("the red circle moving left at the top", ["top"]),
        ("left red circle", ["left"]),
    ],
)
def test_directions_after_motion_words_are_not_positions(text, positions):
    assert parse_description(text)[2] == positions


def test_colour_and_shape_ground_both_lookalikes_of_every_ambiguous_scene(tmp_path):
    root = writer.write_vos(
        str(tmp_path / "amb"),
        8,
        seed=11,
        height=120,
        width=200,
        min_frames=8,
        max_frames=10,
        objects=(2, 3),
        ambiguous=True,
    )
    oracle = json.load(open(os.path.join(root, writer.ORACLE_FILE)))
    meta = {
        **json.load(open(os.path.join(root, "meta_expressions_train_.json")))["videos"],
        **json.load(open(os.path.join(root, "meta_expressions_valid_.json")))["videos"],
    }
    grounder = SyntheticGrounder()
    for vid, facts in oracle["videos"].items():
        pair = next(iter(facts["expressions"].values()))["lookalikes"]
        objs = {o["obj_id"]: o for o in facts["objects"]}
        last = len(facts["frames"]) - 1  # both look-alikes are whole in view on the last frame
        gt = [objs[i]["box"][last] for i in pair]  # the writer's tight boxes (exclusive ends)
        frame = np.asarray(Image.open(os.path.join(root, "JPEGImages", vid, f"{facts['frames'][last]}.jpg")))
        name = objs[pair[0]]["description"]
        for text in [f"the {name}"] + [e["exp"] for e in meta[vid]["expressions"].values()]:
            boxes, labels = grounder.ground(frame, text)
            assert len(boxes) == 2 and labels == [name, name], (vid, text, boxes)
            for g in gt:  # each look-alike is one of the two boxes
                assert max(_iou(g, b) for b in boxes) > 0.8, (vid, text, g, boxes)
        boxes, _ = grounder.ground(frame, f"the {name} on the left")  # a position does pick one
        left = min(gt, key=lambda b: b[0] + b[2])
        assert len(boxes) == 1 and _iou(left, boxes[0]) > 0.8
