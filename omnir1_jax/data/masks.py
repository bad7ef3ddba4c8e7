"""Small mask helpers shared by readers, transforms and the synthetic world (numpy only)."""

from __future__ import annotations

import numpy as np


def mask_to_box(mask: np.ndarray) -> np.ndarray:
    """Tight box of an ``[H, W]`` mask as float32 ``[4]`` ``(x1, y1, x2, y2)``, or shape ``[0, 4]`` if empty.

    Convention: pixel edges, so ``x2 = last column + 1`` and ``(x2 - x1) * (y2 - y1)`` is the box's pixel count
    (COCO's ``xywh`` box of the same mask is ``(x1, y1, x2 - x1, y2 - y1)``).
    """
    mask = np.asarray(mask, dtype=bool)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return np.zeros((0, 4), dtype=np.float32)
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)


def masks_to_boxes(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame tight boxes of ``[T, H, W]`` masks -> (boxes ``[T, 4]`` float32, valid ``[T]`` bool).

    Rows of frames where the mask is empty are zeros with ``valid = False`` (the target is absent there).
    """
    masks = np.asarray(masks, dtype=bool)
    boxes = np.zeros((masks.shape[0], 4), dtype=np.float32)
    valid = np.zeros((masks.shape[0],), dtype=bool)
    for t in range(masks.shape[0]):
        b = mask_to_box(masks[t])
        if b.ndim == 1:
            boxes[t], valid[t] = b, True
    return boxes, valid
