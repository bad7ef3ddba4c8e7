"""Object mapping P, grounding-output parsing, and the synthetic grounder / segmenter on JPEG frames."""

import io

import numpy as np
import pytest
from PIL import Image

from sam2_bridge.server import synthetic
from sam2_bridge.server.grounder import SyntheticBackend, parse_grounding
from sam2_bridge.server.objects import ObjectTable
from sam2_bridge.wire.constants import PALETTE


def test_object_table_roundtrip_duplicates_empty_rollouts_many_objects():
    rng = np.random.default_rng(0)
    n = 300
    det_rollout = rng.integers(0, 7, n)  # rollout 7 of 8 never appears: an empty rollout
    det_frame = rng.integers(0, 16, n)
    det_boxes = rng.integers(0, 50, (n, 4)).astype(np.float32)
    det_rollout[:3], det_frame[:3], det_boxes[:3] = 2, 5, [1, 2, 3, 4]  # three identical detections
    table = ObjectTable.from_detections(8, det_rollout, det_frame, det_boxes)
    assert len(set(table.tuples)) == n and table.obj_ids.tolist() == list(range(n))
    assert [t[2] for t in table.tuples[:3]] == [0, 1, 2]  # duplicates get distinct pred_obj_idx
    for d, tup in table:
        assert table.obj_id(tup) == d
        assert (tup[0], tup[1], tup[3]) == (det_rollout[d], det_frame[d], tuple(det_boxes[d]))
    # pred_obj_idx numbers each (rollout, frame)'s detections 0..k-1 in request order
    for r in range(8):
        for f in range(16):
            ks = [t[2] for t in table.tuples if t[0] == r and t[1] == f]
            assert ks == list(range(len(ks)))
    obj_masks = rng.random((n, 2, 3, 4)) > 0.97
    union = table.union_by_rollout(obj_masks)
    for r in range(8):
        expect = np.zeros((2, 3, 4), bool)
        for d in range(n):
            if det_rollout[d] == r:
                expect |= obj_masks[d]
        np.testing.assert_array_equal(union[r], expect)
    assert not union[7].any()


def test_parse_grounding_maps_and_survives_garbage():
    g = parse_grounding(
        'Sure!\n```json\n[{"bbox_2d": [14, 28, 70, 56], "label": "red circle"}]\n```',
        resized_hw=(112, 140),
        original_hw=(240, 300),
    )
    assert g.parsed and g.labels == ("red circle",)
    np.testing.assert_allclose(g.boxes, [[14 * 300 / 140, 28 * 240 / 112, 70 * 300 / 140, 56 * 240 / 112]], rtol=1e-6)
    g = parse_grounding('{"bbox_2d": [50, 40, 10, 20]}', (100, 100), (100, 100))  # one object, corners swapped
    np.testing.assert_array_equal(g.boxes, [[10, 20, 50, 40]])
    g = parse_grounding(
        '[{"bbox_2d": [-5, 10, 500, 20]}, {"bbox_2d": [1, 2, 3]}, {"bbox_2d": [1, 1, 1, 9]}, '
        '{"bbox_2d": ["a", 1, 2, 3]}, {"bbox_2d": [1, 2, 3, true]}]',
        (50, 60),
        (50, 60),
    )
    np.testing.assert_array_equal(g.boxes, [[0, 10, 60, 20]])  # clipped; invalid and empty boxes dropped
    assert parse_grounding("[]", (10, 10), (10, 10)).parsed
    for garbage in ["", "no boxes here", "[{", "[1, 2, 3]", "{{{{", "```json\n```", "\x00\xff"]:
        g = parse_grounding(garbage, (10, 10), (10, 10))
        assert not g.parsed and g.boxes.shape == (0, 4), garbage


def _draw(shapes, height=120, width=200, seed=0):
    """Frames like the synthetic world's writer: noisy background, exact shapes, JPEG quality 92."""
    world = pytest.importorskip("omnir1_jax.data.synthetic.world")
    rng = np.random.default_rng(seed)
    img = np.clip(25 + rng.integers(-6, 7, (height, width, 3)), 0, 255).astype(np.uint8)
    gt = []
    for colour, shape, cx, cy, s in shapes:
        m = world.shape_mask(shape, cx, cy, s, height, width)
        img[m] = PALETTE[colour]
        ys, xs = np.nonzero(m)
        gt.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=92)
    return np.asarray(Image.open(buf).convert("RGB")), np.asarray(gt, np.float32)


def test_synthetic_grounder_finds_the_right_boxes():
    frame, gt = _draw(
        [
            ("red", "circle", 40, 40, 18),
            ("blue", "square", 110, 70, 20),
            ("green", "triangle", 165, 60, 22),
            ("yellow", "square", 40, 95, 14),
        ]
    )
    backend = SyntheticBackend()
    queries = [
        "the red circle",
        "blue square on the right",
        "green triangle",
        "square",
        "square on the left",
        "the purple circle",
        "something",
    ]
    out = backend.ground([frame] * len(queries), queries)
    expect = [gt[[0]], gt[[1]], gt[[2]], gt[[1, 3]], gt[[3]], gt[[]], gt[[]]]
    for q, g, e in zip(queries, out, expect):
        got = g.boxes[np.lexsort(g.boxes.T[::-1])]
        e = e[np.lexsort(e.T[::-1])] if len(e) else e
        assert got.shape == e.shape, (q, got, e)
        np.testing.assert_allclose(got, e, atol=1, err_msg=q)  # JPEG may move an edge pixel
        assert g.parsed
    assert out[0].labels == ("red circle",)


def test_synthetic_segmenter_tracks_a_moving_shape():
    world = pytest.importorskip("omnir1_jax.data.synthetic.world")
    frames, gts = [], []
    for t in range(6):
        frame, _ = _draw([("red", "square", 30 + 15 * t, 50, 15), ("blue", "circle", 150, 60 - 5 * t, 16)], seed=t)
        frames.append(frame)
        gts.append(world.shape_mask("square", 30 + 15 * t, 50, 15, 120, 200))
    frames, gts = np.stack(frames), np.stack(gts)
    box = np.asarray([[30 + 15 * 3 - 15, 35, 30 + 15 * 3 + 16, 66]], np.float32)  # prompt on frame 3
    masks, table = synthetic.SyntheticSegmenter().segment(frames, 2, [1], [3], box)
    assert not masks[0].any()  # rollout 0 has no detection
    for t in range(6):
        inter = (masks[1, t] & gts[t]).sum()
        assert inter / (masks[1, t] | gts[t]).sum() > 0.95, t
