"""R_A: frame-instruction alignment by optimal (Hungarian) box matching (Omni-R1 eq. 2, appendix B).

Boxes are ``(x1, y1, x2, y2)`` in pixels of one image space (the System-2 view or the original frame: IoU
does not change under a per-axis rescaling). The optimal one-to-one assignment is our own O(n^3)
shortest-augmenting-path solver (same optimum as ``scipy.optimize.linear_sum_assignment``; tested against it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from omnir1_jax.rewards.keyframe import OFFICIAL_MAX_KEYFRAMES
from omnir1_jax.rewards.parsing import ParsedAnswer

__all__ = ["alignment_reward", "box_iou_matrix", "hungarian_loss", "linear_assignment"]


def _as_boxes(boxes, what: str) -> np.ndarray:
    b = np.asarray(boxes if boxes is not None else np.zeros((0, 4)), np.float64)
    if b.size == 0:
        return np.zeros((0, 4))
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{what} must be [n, 4] (x1, y1, x2, y2), got shape {b.shape}")
    return b


def box_iou_matrix(a, b, *, inclusive: bool = False) -> np.ndarray:
    """IoU of every box of ``a`` [n, 4] with every box of ``b`` [m, 4] -> [n, m].

    ``inclusive=True`` counts pixels as the released code did (width = x2 - x1 + 1). Degenerate boxes have
    area 0 and IoU 0 (never NaN).
    """
    a, b = _as_boxes(a, "boxes a"), _as_boxes(b, "boxes b")
    one = 1.0 if inclusive else 0.0
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1 + one, 0, None) * np.clip(y2 - y1 + one, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0] + one, 0, None) * np.clip(a[:, 3] - a[:, 1] + one, 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0] + one, 0, None) * np.clip(b[:, 3] - b[:, 1] + one, 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.nan_to_num(iou, nan=0.0, posinf=0.0, neginf=0.0)


def linear_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one assignment of a rectangular cost matrix (``linear_sum_assignment`` semantics).

    Returns ``(rows, cols)`` sorted by row, ``min(n, m)`` pairs. Shortest augmenting paths with potentials
    (Jonker-Volgenant style), O(n^2 m) for n <= m.
    """
    c = np.asarray(cost, np.float64)
    if c.ndim != 2:
        raise ValueError(f"cost must be 2-D, got shape {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError("cost matrix contains NaN or infinite entries")
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    n, m = c.shape
    if n == 0:
        return np.zeros(0, int), np.zeros(0, int)
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    match_col = np.zeros(m + 1, int)  # match_col[j] = row (1-based) assigned to column j; 0 = free
    way = np.zeros(m + 1, int)
    for i in range(1, n + 1):
        match_col[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = match_col[j0]
            cur = c[i0 - 1] - u[i0] - v[1:]
            free = ~used[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            cand = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(cand)) + 1
            delta = cand[j1 - 1]
            u[match_col[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if match_col[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            match_col[j0] = match_col[j1]
            j0 = j1
    cols = np.nonzero(match_col[1:])[0]
    rows = match_col[1:][cols] - 1
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows)
    return rows[order], cols[order]


def hungarian_loss(pred_boxes, gt_boxes) -> float:
    """``L_H = 1 - sum(IoU of the optimal matching) / max(|B|, |B*|)``; 0 when both are empty, 1 when one is.

    Missing and extra predicted boxes both cost, since the sum is divided by the larger set's size.
    """
    pred, gt = _as_boxes(pred_boxes, "pred_boxes"), _as_boxes(gt_boxes, "gt_boxes")
    if len(pred) == 0 and len(gt) == 0:
        return 0.0
    if len(pred) == 0 or len(gt) == 0:
        return 1.0
    iou = box_iou_matrix(pred, gt)
    rows, cols = linear_assignment(-iou)
    return float(1.0 - iou[rows, cols].sum() / max(len(pred), len(gt)))


def _frame_boxes(boxes_by_frame, f: int, what: str) -> np.ndarray:
    if isinstance(boxes_by_frame, Mapping):
        return _as_boxes(boxes_by_frame.get(f), f"{what}[{f}]")
    if f >= len(boxes_by_frame):
        raise ValueError(f"{what} has {len(boxes_by_frame)} frames, keyframe {f} is out of range")
    return _as_boxes(boxes_by_frame[f], f"{what}[{f}]")


def _max_boxes(gt_boxes) -> int:
    values = gt_boxes.values() if isinstance(gt_boxes, Mapping) else gt_boxes
    return max([len(_as_boxes(b, "gt_boxes")) for b in values] + [1])


def alignment_reward(
    answers: Sequence[ParsedAnswer],
    pred_boxes: Sequence[Mapping[int, np.ndarray]],
    gt_boxes: Mapping[int, np.ndarray] | Sequence[np.ndarray],
    *,
    preset: Literal["paper", "official"] = "paper",
    num_objects: int | None = None,
) -> np.ndarray:
    """R_A = (1/K) sum over distinct keyframes s of ``1 - L_H(B_s, B*_s)``; range [0, 1]; 0 when invalid.

    Args:
      answers: N parsed answers.
      pred_boxes: per rollout, ``{frame: [k, 4]}`` boxes System 2 found on that keyframe (all boxes found for
        that frame's description; a frame missing from the mapping has no boxes).
      gt_boxes: per clip frame (mapping or sequence), the GT boxes [m, 4] of the target objects present on it.
      preset: ``"official"`` reproduces the released arithmetic with its x1 = 0 bug fixed: on each of the first 4
        distinct keyframes only the first ``num_objects`` boxes of System 2's answer count (the release keeps
        that many, later ones are ignored), matched one-to-one to the GT boxes; R_A = mean IoU of the matched
        pairs over all GT boxes of those frames (an unmatched GT box scores 0; extra boxes are free).
        IoU counts pixels inclusively (width = x2 - x1 + 1) against the GT box in the release's inclusive
        convention (last column / row, i.e. our x2 - 1, y2 - 1).
      num_objects: O, the expression's number of target objects (``official`` only; default: the most GT boxes
        on any frame, at least 1).
    """
    if len(pred_boxes) != len(answers):
        raise ValueError(f"{len(answers)} answers but {len(pred_boxes)} pred_boxes entries")
    out = np.zeros(len(answers), np.float32)
    for n, (a, boxes) in enumerate(zip(answers, pred_boxes)):
        if not a.valid:
            continue
        frames = sorted(set(a.keyframes))
        if preset == "official":
            ious = []
            keep = num_objects if num_objects is not None else _max_boxes(gt_boxes)
            for f in frames[:OFFICIAL_MAX_KEYFRAMES]:
                gt, pr = _frame_boxes(gt_boxes, f, "gt_boxes"), _frame_boxes(boxes, f, "pred_boxes")[:keep]
                if len(gt) == 0:
                    continue
                gt = gt - np.array([0.0, 0.0, 1.0, 1.0])  # pixel-edge -> inclusive last column / row
                matched = np.zeros(len(gt))
                if len(pr):
                    iou = box_iou_matrix(gt, pr, inclusive=True)
                    r, c = linear_assignment(-iou)
                    matched[r] = iou[r, c]
                ious.extend(matched.tolist())
            out[n] = float(np.mean(ious)) if ious else 0.0
        elif preset == "paper":
            losses = [
                hungarian_loss(_frame_boxes(boxes, f, "pred_boxes"), _frame_boxes(gt_boxes, f, "gt_boxes"))
                for f in frames
            ]
            out[n] = float(np.mean([1.0 - x for x in losses]))
        else:
            raise ValueError(f"preset must be 'paper' or 'official', got {preset!r}")
    return out
