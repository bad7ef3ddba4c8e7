"""The mapping P of Omni-R1 appendix B: detection tuples of one GRPO group <-> SAM2 object ids.

Every detection ``(rollout_idx, frame_idx, pred_obj_idx, bbox)`` of a group becomes its own SAM2 object;
``pred_obj_idx`` numbers the detections of one rollout on one frame in request order, so duplicate boxes
(same rollout, frame and box) are still distinct tuples with distinct objects. Object ids are assigned in
request order (``obj_id = d`` for the d-th detection). Torch-free (numpy only).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

DetectionTuple = tuple[int, int, int, tuple[float, float, float, float]]


@dataclasses.dataclass(frozen=True)
class ObjectTable:
    """P and its inverse for one group; build with :meth:`from_detections`."""

    num_rollouts: int
    tuples: tuple[DetectionTuple, ...]  # indexed by obj_id

    @classmethod
    def from_detections(
        cls, num_rollouts: int, det_rollout: np.ndarray, det_frame: np.ndarray, det_boxes: np.ndarray
    ) -> ObjectTable:
        """One object per detection, ``pred_obj_idx`` counted per (rollout, frame) in request order."""
        det_rollout = np.asarray(det_rollout).reshape(-1)
        det_frame = np.asarray(det_frame).reshape(-1)
        det_boxes = np.asarray(det_boxes, np.float32).reshape(-1, 4)
        if not len(det_rollout) == len(det_frame) == len(det_boxes):
            raise ValueError(f"detection arrays disagree: {len(det_rollout)}, {len(det_frame)}, {len(det_boxes)}")
        counter: dict[tuple[int, int], int] = {}
        tuples = []
        for r, f, box in zip(det_rollout.tolist(), det_frame.tolist(), det_boxes.tolist()):
            if not 0 <= r < num_rollouts:
                raise ValueError(f"rollout_idx {r} outside [0, {num_rollouts})")
            k = counter.get((r, f), 0)
            counter[(r, f)] = k + 1
            tuples.append((int(r), int(f), k, tuple(float(v) for v in box)))
        return cls(num_rollouts, tuple(tuples))

    def __len__(self) -> int:
        return len(self.tuples)

    @property
    def obj_ids(self) -> np.ndarray:
        """int32 [D]: the object of each detection (request order)."""
        return np.arange(len(self.tuples), dtype=np.int32)

    def obj_id(self, det: DetectionTuple) -> int:
        """P(tuple)."""
        return self._index[det]

    def __iter__(self) -> Iterator[tuple[int, DetectionTuple]]:
        return iter(enumerate(self.tuples))

    @property
    def _index(self) -> dict[DetectionTuple, int]:
        index = self.__dict__.get("_index_cache")
        if index is None:
            index = {t: i for i, t in enumerate(self.tuples)}
            if len(index) != len(self.tuples):
                raise ValueError("detection tuples are not unique")
            object.__setattr__(self, "_index_cache", index)
        return index

    def rollout_of(self) -> np.ndarray:
        """int32 [D]: rollout of each object."""
        return np.asarray([t[0] for t in self.tuples], np.int32).reshape(-1)

    def union_by_rollout(self, obj_masks: np.ndarray) -> np.ndarray:
        """bool [D, T, H, W] per-object masks -> bool [R, T, H, W]: per rollout, the union of its objects.

        A rollout without detections gets all-False masks.
        """
        obj_masks = np.asarray(obj_masks, bool)
        if obj_masks.shape[0] != len(self.tuples):
            raise ValueError(f"{obj_masks.shape[0]} object masks for {len(self.tuples)} objects")
        out = np.zeros((self.num_rollouts, *obj_masks.shape[1:]), bool)
        for obj_id, (r, _f, _k, _box) in enumerate(self.tuples):
            out[r] |= obj_masks[obj_id]
        return out
