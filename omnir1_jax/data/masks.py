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


def object_masks_to_boxes(object_masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame, per-object tight boxes of ``[O, T, H, W]`` masks -> (boxes ``[T, max(O, 1), 4]`` float32,
    valid ``[T, max(O, 1)]`` bool).

    Object o's box on frame t is the tight box of its own mask (never of the union of the objects);
    ``valid[t, o]`` is False (and the box 0) where the object is absent. With O = 0 one all-invalid column is
    kept, so batches always have an object axis of size >= 1.
    """
    object_masks = np.asarray(object_masks, dtype=bool)
    if object_masks.ndim != 4:
        raise ValueError(f"expected object masks [O, T, H, W], got shape {object_masks.shape}")
    num_objects, num_frames = object_masks.shape[:2]
    boxes = np.zeros((num_frames, max(num_objects, 1), 4), dtype=np.float32)
    valid = np.zeros((num_frames, max(num_objects, 1)), dtype=bool)
    for o in range(num_objects):
        boxes[:, o], valid[:, o] = masks_to_boxes(object_masks[o])
    return boxes, valid


def frame_box_sets(boxes: np.ndarray, valid: np.ndarray) -> list[np.ndarray]:
    """Per frame the GT box set ``[n_t, 4]`` float32 (the valid objects' boxes, object order kept).

    Accepts the per-object layout (``boxes [T, O, 4]``, ``valid [T, O]``) and the older one-box-per-frame layout
    (``[T, 4]``, ``[T]``).
    """
    boxes, valid = np.asarray(boxes, np.float32), np.asarray(valid, bool)
    if boxes.ndim == 2 and valid.ndim == 1:
        boxes, valid = boxes[:, None], valid[:, None]
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or valid.shape != boxes.shape[:2]:
        raise ValueError(f"expected boxes [T, O, 4] with valid [T, O], got {boxes.shape} and {valid.shape}")
    return [boxes[t][valid[t]].reshape(-1, 4) for t in range(boxes.shape[0])]
