"""SegZero-style grounding reward (System-2 training on refCOCOg, Omni-R1 section 4.1;
docs/design.md §3.9). Not to be confused with R_G (:mod:`omnir1_jax.rewards.grounding`).

The policy sees one image (resized to at most 900*28*28 pixels) and a referring expression and answers
``<think>...</think><answer>{"bbox_2d": [x1, y1, x2, y2], "points_1": [x, y], "points_2": [x, y]}</answer>`` in
pixels of the resized image: the target's box and the centres of the two largest inscribed circles of its mask.
Per completion (range [0, 4.4])::

    R = format + iou_term + box_term + point_term
    format     = 1 if the answer's JSON object has bbox_2d (4 finite numbers), points_1 and points_2 (2 each)
    iou_term   = 2 * max(0, IoU - 0.5) + (0.4 if IoU > 0.5 else 0)              IoU of bbox_2d with the GT box
    box_term   = clip((30 - mean_i |bbox_2d[i] - gt[i]|) * 0.05, 0, 1)
    point_term = clip((150 - d) * 0.02, 0, 1), d = mean distance of the two points to the two GT points under
                 the better of the two pairings; 0 unless both points lie inside bbox_2d (edges included)

The grounding task's total (:class:`omnir1_jax.tasks.grounding.GroundingTask`) adds the release trainer's two
other terms, each with its weight in :class:`SegZeroSpec` (``grpo.segzero``; defaults as released)::

    total = (format + iou_term + box_term + point_term)                          "accuracy", as released
            + think_format * [completion matches <think>.*?</think>\\s*<answer>.*?</answer>]   (weight 1.0)
            + length * length_bonus                                                         (weight 1.0)
    length_bonus = 1 if accuracy > 0.1 and 320 <= completion tokens <= 750, and more than one completion of the
                   batch has accuracy > 0.1 (the release's ``len_control``, default on); else 0

Keys: an answer's JSON keys must be exactly ``bbox_2d``, ``points_1``, ``points_2``. The release's box, IoU and
point terms find them by substring instead (the first key containing ``bbox``, the first two containing
``points``, case-insensitive: ``BBox_2D``, ``bbox``, ``Points_1`` ...), while its format term (``strict=True`` in
the SegZero task) wants the exact keys; ``lenient_keys=True`` (``grpo.segzero.lenient_keys``) reproduces that.
Exact keys are the default because the prompt asks for them and a near-miss key is a format error, which the
substring match would otherwise pay for in three of the four terms.

Decisions (the released code, ``segzero_reward`` of the Omni-R1 release, is the reference for the constants):

- Parsing never raises and is linear-time: the ``<answer>`` block is found with the same tag scan as VOS answers
  and decoded with the same bounded JSON decoder (:mod:`omnir1_jax.rewards.parsing`); the first decoded JSON
  object (or the first object of a decoded list) is the answer. The release takes the first ``{[^}]+}`` match.
- Each term is scored from what parses: a usable ``bbox_2d`` gives the IoU and box terms even when the points are
  missing (format 0); the point term needs the box and both points. No usable answer -> every term 0.
- Boxes use pixel edges (``x2`` = last column + 1, :func:`omnir1_jax.data.masks.mask_to_box`) and continuous
  areas; the release counts inclusive pixels (``+ 1``). Points are compared as floats (the release casts them to
  int first). A box with ``x2 < x1`` or ``y2 < y1`` is kept as written: its area is 0 and no point lies inside it.
- GT points (:func:`gt_points`): the release reads precomputed points from the SegZero data; here they are
  derived from the mask (rule in the function's docstring).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from omnir1_jax.rewards.alignment import box_iou_matrix
from omnir1_jax.rewards.parsing import _MAX_ANSWER_CHARS, _decode_values, extract_tag

__all__ = [
    "GroundingAnswer",
    "SegZeroSpec",
    "gt_box_and_points",
    "gt_points",
    "length_bonus",
    "parse_grounding_answer",
    "resize_mask",
    "segzero_reward",
    "segzero_terms",
]

COMPONENTS = ("format", "iou", "box", "points")


@dataclasses.dataclass(frozen=True)
class SegZeroSpec:
    """The grounding task's extra reward terms and key matching (``grpo.segzero``; module docstring).

    Attributes:
      think_format: weight of the ``<think>...</think><answer>...</answer>`` format term (release: 1).
      length: weight of the length bonus (release: 1, its ``len_control`` default on; 0 turns it off).
      length_range: inclusive completion-token range of the bonus (release: 320..750).
      length_min_accuracy: the bonus needs accuracy (the four SegZero terms' sum) above this (release: 0.1).
      lenient_keys: find the box / points keys by substring, as the release's box, IoU and point terms do.
    """

    think_format: float = 1.0
    length: float = 1.0
    length_range: tuple[int, int] = (320, 750)
    length_min_accuracy: float = 0.1
    lenient_keys: bool = False

    def __post_init__(self):
        for name in ("think_format", "length", "length_min_accuracy"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ValueError(f"grpo.segzero.{name} must be a number >= 0, got {v!r}")
        lo_hi = tuple(self.length_range)
        if (
            len(lo_hi) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in lo_hi)
            or not (0 <= lo_hi[0] <= lo_hi[1])
        ):
            raise ValueError(f"grpo.segzero.length_range must be two ints 0 <= low <= high, got {self.length_range!r}")
        object.__setattr__(self, "length_range", lo_hi)
        if not isinstance(self.lenient_keys, bool):
            raise ValueError(f"grpo.segzero.lenient_keys must be true or false, got {self.lenient_keys!r}")


@dataclasses.dataclass(frozen=True)
class GroundingAnswer:
    """A parsed grounding answer; a field is None when missing or not the right count of finite numbers.

    Attributes:
      box: ``(x1, y1, x2, y2)``; points: ``((x, y), (x, y))`` when both points are usable.
      error: why the answer is not fully formatted (None when it is).
    """

    box: tuple[float, float, float, float] | None
    points: tuple[tuple[float, float], tuple[float, float]] | None
    error: str | None

    @property
    def formatted(self) -> bool:
        return self.error is None


def _numbers(value: Any, n: int) -> tuple[float, ...] | None:
    """``value`` as n finite floats (a JSON list of n numbers, booleans excluded), else None."""
    if not isinstance(value, list) or len(value) != n:
        return None
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        try:
            f = float(v)
        except OverflowError:  # an integer of hundreds of digits
            return None
        if not math.isfinite(f):
            return None
        out.append(f)
    return tuple(out)


def _lenient(obj: dict, part: str, count: int) -> list:
    """Values of the first ``count`` keys of ``obj`` containing ``part`` (case-insensitive), in key order."""
    return [obj[k] for k in obj if isinstance(k, str) and part in k.lower()][:count]


def parse_grounding_answer(completion: Any, lenient_keys: bool = False) -> GroundingAnswer:
    """The box and points of a grounding completion; never raises (anything unusable -> None fields + error).
    ``error`` (the format term) always wants the exact keys; ``lenient_keys`` takes the box and points from the
    first keys containing ``bbox`` / ``points`` (module docstring)."""
    if not isinstance(completion, str):
        return GroundingAnswer(None, None, f"completion is {type(completion).__name__}, not str")
    body = extract_tag(completion[: _MAX_ANSWER_CHARS * 2], "answer")
    if body is None:
        return GroundingAnswer(None, None, "no <answer>...</answer> block")
    obj = None
    for value in _decode_values(body[:_MAX_ANSWER_CHARS]):
        if isinstance(value, list):  # a one-element list of the object (Qwen's grounding habit)
            value = next((v for v in value if isinstance(v, dict)), None)
        if isinstance(value, dict):
            obj = value
            break
    if obj is None:
        return GroundingAnswer(None, None, "no JSON object in the answer")
    box = _numbers(obj.get("bbox_2d"), 4)
    p1, p2 = _numbers(obj.get("points_1"), 2), _numbers(obj.get("points_2"), 2)
    missing = [k for k, v in (("bbox_2d", box), ("points_1", p1), ("points_2", p2)) if v is None]
    error = f"missing or malformed: {', '.join(missing)}" if missing else None
    if lenient_keys:
        boxes, pts = _lenient(obj, "bbox", 1), _lenient(obj, "points", 2)
        box = _numbers(boxes[0], 4) if boxes else None
        p1, p2 = (_numbers(pts[0], 2), _numbers(pts[1], 2)) if len(pts) == 2 else (None, None)
    points = (p1, p2) if p1 is not None and p2 is not None else None
    return GroundingAnswer(box, points, error)  # type: ignore[arg-type]


def _point_distance(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean distance of two predicted points to two GT points under the better pairing (both [2, 2])."""
    straight = np.linalg.norm(pred[0] - gt[0]) + np.linalg.norm(pred[1] - gt[1])
    crossed = np.linalg.norm(pred[0] - gt[1]) + np.linalg.norm(pred[1] - gt[0])
    return float(min(straight, crossed) / 2.0)


def segzero_terms(answer: GroundingAnswer, gt_box, gt_pts) -> dict[str, float]:
    """The four terms of one parsed answer against ``gt_box`` [4] and ``gt_pts`` [2, 2] (module docstring)."""
    terms = {"format": 1.0 if answer.formatted else 0.0, "iou": 0.0, "box": 0.0, "points": 0.0}
    if answer.box is None:
        return terms
    box, gt = np.asarray(answer.box, np.float64), np.asarray(gt_box, np.float64).reshape(4)
    iou = float(box_iou_matrix(box[None], gt[None])[0, 0])
    terms["iou"] = 2.0 * max(0.0, iou - 0.5) + (0.4 if iou > 0.5 else 0.0)
    terms["box"] = float(np.clip((30.0 - np.mean(np.abs(box - gt))) * 0.05, 0.0, 1.0))
    if answer.points is not None:
        pts = np.asarray(answer.points, np.float64)
        inside = np.all((pts[:, 0] >= box[0]) & (pts[:, 0] <= box[2]) & (pts[:, 1] >= box[1]) & (pts[:, 1] <= box[3]))
        if inside:
            d = _point_distance(pts, np.asarray(gt_pts, np.float64).reshape(2, 2))
            terms["points"] = float(np.clip((150.0 - d) * 0.02, 0.0, 1.0))
    return terms


def segzero_reward(
    completions: Sequence[object], gt_box, gt_pts, *, lenient_keys: bool = False
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rewards of a group of completions for one image: ``(total [N], {format, iou, box, points: [N]})``,
    float32; total = the sum of the four terms, range [0, 4.4]. Never raises on a completion."""
    rows = [segzero_terms(parse_grounding_answer(c, lenient_keys), gt_box, gt_pts) for c in completions]
    comps = {k: np.asarray([r[k] for r in rows], np.float32) for k in COMPONENTS}
    total = sum(comps[k] for k in COMPONENTS) if rows else np.zeros(0, np.float32)
    return np.asarray(total, np.float32), comps


def length_bonus(
    lengths: Sequence[int],
    accuracy: Sequence[float],
    *,
    length_range: tuple[int, int] = (320, 750),
    min_accuracy: float = 0.1,
) -> np.ndarray:
    """The release trainer's length bonus over one batch of completions, float32 ``[N]``: 1 for a completion
    whose accuracy exceeds ``min_accuracy`` and whose length (tokens, EOS included) lies in ``length_range``
    (inclusive), provided more than one completion of the batch exceeds ``min_accuracy``; 0 otherwise."""
    n_tokens, acc = np.asarray(lengths), np.asarray(accuracy, np.float64)
    if n_tokens.shape != acc.shape or n_tokens.ndim != 1:
        raise ValueError(f"lengths {n_tokens.shape} and accuracy {acc.shape} must be two [N] arrays")
    good = acc > min_accuracy
    if good.sum() <= 1:
        return np.zeros(len(n_tokens), np.float32)
    lo, hi = length_range
    return (good & (n_tokens >= lo) & (n_tokens <= hi)).astype(np.float32)


# ------------------------------------------------------------------------------------------ ground truth
def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an ``[H, W]`` mask to ``[height, width]``: output pixel (i, j) takes the input
    pixel under its centre, ``floor((i + 0.5) * H / height)`` (likewise for columns)."""
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return mask[rows][:, cols]


def gt_points(mask: np.ndarray) -> np.ndarray:
    """The centres of two large inscribed circles of an ``[H, W]`` mask, float32 ``[2, 2]`` of ``(x, y)`` pixel
    centres (pixel (row i, col j) -> ``(j + 0.5, i + 0.5)``).

    Rule: D = Euclidean distance transform of the mask, with everything outside the image counted as
    background (D(p) = radius of the largest circle centred at p inside the mask). The first point is the
    maximum of D (ties: first in row-major order). The second is the maximum of D over the pixels p far enough
    from the first point p1 for the two circles not to overlap, ``|p - p1| >= D(p1) + D(p)`` (ties likewise).
    When no pixel qualifies (a convex blob holds one big circle), the second point is the maximum of D outside
    the first circle (``|p - p1| >= D(p1)``), and when there is none either, the first point again. An empty mask
    gives two zero points.
    """
    from scipy.ndimage import distance_transform_edt

    mask = np.asarray(mask, bool)
    if not mask.any():
        return np.zeros((2, 2), np.float32)
    d = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    flat = d.ravel()
    first = int(np.argmax(flat))
    i1, j1 = divmod(first, mask.shape[1])
    ii, jj = np.indices(mask.shape)
    sep = np.hypot(ii - i1, jj - j1).ravel()
    second = first
    for ok in (mask.ravel() & (sep >= flat[first] + flat), mask.ravel() & (sep >= flat[first])):
        if ok.any():
            second = int(np.argmax(np.where(ok, flat, -1.0)))
            break
    i2, j2 = divmod(second, mask.shape[1])
    return np.asarray([[j1 + 0.5, i1 + 0.5], [j2 + 0.5, i2 + 0.5]], np.float32)


def gt_box_and_points(mask: np.ndarray, resized_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """GT of one image: the target mask (original resolution) resized to the model's image ``(h, w)``, its tight
    box float32 ``[4]`` (pixel edges; zeros when the target is not visible) and :func:`gt_points` ``[2, 2]``."""
    m = resize_mask(mask, int(resized_hw[0]), int(resized_hw[1]))
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    box = (
        np.asarray([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32) if rows.size else np.zeros(4, np.float32)
    )
    return box, gt_points(m)
