"""Classical System 2 for the synthetic world: a colour/shape grounder and a colour-region tracker.

The synthetic world (``omnir1_jax.data.synthetic``) draws filled shapes from ``SHAPES`` in the colours of
``PALETTE`` on a near-uniform ``BACKGROUND`` and stores JPEG frames; both sides read these constants from
:mod:`sam2_bridge.wire.constants`. Both components are numpy/scipy only, so the out-of-the-box run needs no weights.

Grounding: pixels are labelled with the nearest palette colour (or background) when within
``max_colour_dist``; the description's colour words select colours (none = every colour), its shape words
select shapes (none = every shape); each 8-connected component of a selected colour with at least
``min_area`` pixels is classified by its fill ratio (area / box area: square ~1, circle ~pi/4, triangle ~1/2)
and kept when its shape is selected. Position words narrow several matches to one: "left"/"right" keep the
smallest/largest centre x, "top"/"upper"/"bottom"/"lower" the smallest/largest centre y. A direction after a
motion word ("moving left", "heading to the right") is not a position: one frame cannot show motion, so "the
red circle moving left" grounds every red circle, as "the red circle that appears second" does — what makes
the one-way pipeline fail on the ambiguous synthetic world (``--ambiguous``). Boxes are ``(x1, y1, x2, y2)``
with exclusive ends, in the frame's pixels.

Segmentation (:class:`SyntheticSegmenter`): each box prompt takes the dominant palette colour inside the box
on its frame, then follows the component of that colour that best overlaps the previous box, frame by frame,
forward and backward from the prompt (the same two-sweep / union rule as the SAM2 segmenter).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
from scipy import ndimage

from sam2_bridge.server.objects import ObjectTable
from sam2_bridge.wire.constants import BACKGROUND, PALETTE, SHAPES

_COLOURS = tuple(PALETTE)
_FILL = {"square": 1.0, "circle": np.pi / 4, "triangle": 0.5}
_POSITION = {
    "left": (0, min),
    "right": (0, max),
    "top": (1, min),
    "upper": (1, min),
    "bottom": (1, max),
    "lower": (1, max),
}
_WORD = re.compile(r"[a-z]+")
# words after which a direction describes motion, not position; "to" / "the" / "towards" may sit in between
_MOTION = frozenset(
    {
        "moving",
        "moves",
        "move",
        "going",
        "goes",
        "heading",
        "heads",
        "travelling",
        "traveling",
        "travels",
        "drifting",
        "drifts",
        "running",
        "runs",
        "rolling",
        "rolls",
        "sliding",
        "slides",
    }
)
_FILLER = frozenset({"to", "the", "towards", "toward"})


def label_colours(frame: np.ndarray, max_colour_dist: float = 80.0) -> np.ndarray:
    """uint8 [H, W, 3] -> int8 [H, W]: palette index (order of ``PALETTE``), -1 background / unknown."""
    centres = np.asarray([BACKGROUND, *PALETTE.values()], np.float32)
    dist = np.linalg.norm(frame.astype(np.float32)[..., None, :] - centres, axis=-1)
    nearest = dist.argmin(-1)
    labels = nearest.astype(np.int8) - 1
    labels[dist.min(-1) > max_colour_dist] = -1
    return labels


def parse_description(description: str) -> tuple[list[str], list[str], list[str]]:
    """(colour words, shape words, position words) of a description, in order of appearance."""
    words = _WORD.findall(description.lower())
    words = [w[:-1] if w.endswith("s") and w[:-1] in SHAPES else w for w in words]
    positions = []
    for i, w in enumerate(words):
        if w not in _POSITION:
            continue
        j = i - 1
        while j >= 0 and words[j] in _FILLER:
            j -= 1
        if j < 0 or words[j] not in _MOTION:
            positions.append(w)
    return [w for w in words if w in PALETTE], [w for w in words if w in SHAPES], positions


def classify_shape(component: np.ndarray) -> str:
    """Shape of a boolean component by its fill ratio within its bounding box."""
    ys, xs = np.nonzero(component)
    box_area = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    ratio = component.sum() / box_area
    return min(_FILL, key=lambda s: abs(_FILL[s] - ratio))


@dataclasses.dataclass(frozen=True)
class SyntheticGrounder:
    """Boxes of the components matching a description (see the module docstring)."""

    max_colour_dist: float = 80.0
    min_area: int = 12

    def __post_init__(self):
        if self.max_colour_dist <= 0 or self.min_area < 1:
            raise ValueError(f"SyntheticGrounder: max_colour_dist={self.max_colour_dist}, min_area={self.min_area}")

    def ground(self, frame: np.ndarray, description: str) -> tuple[np.ndarray, list[str]]:
        """float32 [n, 4] boxes (x1, y1, x2, y2, exclusive ends) and their labels ("red circle")."""
        colours, shapes, positions = parse_description(description)
        if not colours and not shapes:
            return np.zeros((0, 4), np.float32), []
        labels = label_colours(frame, self.max_colour_dist)
        found = []
        for ci, colour in enumerate(_COLOURS):
            if colours and colour not in colours:
                continue
            comps, n = ndimage.label(labels == ci, structure=np.ones((3, 3)))
            for sl_idx, sl in enumerate(ndimage.find_objects(comps)):
                comp = comps[sl] == sl_idx + 1
                if comp.sum() < self.min_area:
                    continue
                shape = classify_shape(comp)
                if shapes and shape not in shapes:
                    continue
                box = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
                found.append((box, f"{colour} {shape}"))
        if len(found) > 1 and positions:
            axis, pick = _POSITION[positions[0]]
            centre = [(b[axis] + b[axis + 2]) / 2 for b, _ in found]
            found = [found[centre.index(pick(centre))]]
        boxes = np.asarray([b for b, _ in found], np.float32).reshape(-1, 4)
        return boxes, [name for _, name in found]


def _box_iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class SyntheticSegmenter:
    """Box-prompted colour-region tracking over a clip (see the module docstring)."""

    max_colour_dist: float = 80.0

    def track(self, labels: np.ndarray, frame_idx: int, box, components=None) -> np.ndarray:
        """bool [T, H, W]: one object prompted by ``box`` on ``frame_idx``; ``labels`` from :func:`label_colours`.
        ``components(t, colour) -> (label image, slices)``: the connected components of a colour on a frame
        (:func:`_components`, shared between the prompts of a group by :meth:`segment`)."""
        components = components or (lambda t, c: _components(labels, t, c))
        t_count, h, w = labels.shape
        x1, y1 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
        x2, y2 = min(int(np.ceil(box[2])), w), min(int(np.ceil(box[3])), h)
        out = np.zeros((t_count, h, w), bool)
        inside = labels[frame_idx, y1:y2, x1:x2]
        inside = inside[inside >= 0]
        if x2 <= x1 or y2 <= y1 or inside.size == 0:
            return out
        colour = np.bincount(inside).argmax()
        for order in (range(frame_idx, t_count), range(frame_idx, -1, -1)):
            prev = (x1, y1, x2, y2)
            for t in order:
                comps, slices = components(t, int(colour))
                best, best_iou = None, 0.0
                for i, sl in enumerate(slices):
                    cand = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
                    iou = _box_iou(prev, cand)
                    if iou > best_iou:
                        best, best_iou = (i + 1, sl, cand), iou
                if best is None:
                    continue  # lost on this frame: keep the last box and look again on the next one
                label_id, sl, prev = best
                out[t] |= comps == label_id
        return out

    def segment(
        self, frames: np.ndarray, num_rollouts: int, det_rollout, det_frame, det_boxes
    ) -> tuple[np.ndarray, ObjectTable]:
        """bool [R, T, H, W] per rollout (union of its objects) and the object table."""
        table = ObjectTable.from_detections(num_rollouts, det_rollout, det_frame, det_boxes)
        labels = np.stack([label_colours(f, self.max_colour_dist) for f in frames]) if len(table) else None
        obj = np.zeros((len(table), *frames.shape[:3]), bool)
        cache: dict[tuple[int, int], tuple] = {}  # the prompts of a group follow the same few colours

        def components(t, colour):
            if (t, colour) not in cache:
                cache[(t, colour)] = _components(labels, t, colour)
            return cache[(t, colour)]

        for obj_id, (_r, f, _k, box) in table:
            obj[obj_id] = self.track(labels, f, box, components)
        return table.union_by_rollout(obj), table


def _components(labels: np.ndarray, t: int, colour: int):
    """8-connected components of ``colour`` on frame ``t``: ``(label image, find_objects slices)``."""
    comps, _ = ndimage.label(labels[t] == colour, structure=np.ones((3, 3)))
    return comps, ndimage.find_objects(comps)
