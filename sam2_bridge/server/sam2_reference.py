"""The stock ``sam2.SAM2VideoPredictor`` API, used as the reference in tests and the baseline in benchmarks.

:func:`stock_rollout_logits` runs one rollout (or a whole group) in its own inference state through
``init_state`` / ``add_new_points_or_box`` / ``propagate_in_video`` with the two full sweeps of
:mod:`sam2_bridge.server.segmenter`. The only change to sam2 1.1.0 is :class:`StockPredictor`: after sam2 stores a
memory feature (it casts to bfloat16), the value is cast back to the model dtype off CUDA, so float32 CPU runs
do not fail with "mat1 and mat2 must have the same dtype". The stored values are therefore bfloat16-rounded,
which :class:`~sam2_bridge.server.segmenter.GroupSegmenter` reproduces with ``round_memory_to_bf16=True``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from sam2.sam2_video_predictor import SAM2VideoPredictor

os.environ.setdefault("TQDM_DISABLE", "1")  # propagate_in_video draws a progress bar per sweep


class StockPredictor(SAM2VideoPredictor):
    """sam2's predictor with memory features kept in the model dtype off CUDA (values bf16-rounded)."""

    def _restore_dtype(self, features):
        if features is not None and features.device.type != "cuda":
            return features.to(self.maskmem_tpos_enc.dtype)
        return features

    def _run_single_frame_inference(self, *args, **kwargs):
        out, masks = super()._run_single_frame_inference(*args, **kwargs)
        out["maskmem_features"] = self._restore_dtype(out["maskmem_features"])
        return out, masks

    def _run_memory_encoder(self, *args, **kwargs):
        features, pos = super()._run_memory_encoder(*args, **kwargs)
        return self._restore_dtype(features), pos


def as_stock(predictor: SAM2VideoPredictor) -> StockPredictor:
    """The same module (same weights) seen as a :class:`StockPredictor`."""
    predictor.__class__ = StockPredictor
    return predictor


def write_jpeg_clip(frames: np.ndarray, directory: str, quality: int = 95) -> np.ndarray:
    """Write frames as ``00000.jpg ...`` (sam2's loader reads JPEG folders) and return the decoded pixels."""
    from PIL import Image

    decoded = []
    for i, frame in enumerate(frames):
        path = os.path.join(directory, f"{i:05d}.jpg")
        Image.fromarray(frame).save(path, quality=quality)
        with Image.open(path) as img:
            decoded.append(np.asarray(img.convert("RGB")))
    return np.stack(decoded)


@torch.inference_mode()
def stock_rollout_logits(
    predictor: StockPredictor, video_dir: str, detections: Sequence[tuple[int, Sequence[float]]], num_frames: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward / backward video-res logits float32 [D, T, H, W] of ``detections`` ((frame, box) each, one
    object per detection, obj_id = index) in one fresh inference state over ``video_dir``."""
    state = predictor.init_state(video_dir)
    for obj_id, (frame_idx, box) in enumerate(detections):
        predictor.add_new_points_or_box(state, frame_idx=frame_idx, obj_id=obj_id, box=np.asarray(box, np.float32))
    sweeps = []
    for start, reverse in ((0, False), (num_frames - 1, True)):
        per_frame = {}
        for t, _obj_ids, video_res in predictor.propagate_in_video(state, start_frame_idx=start, reverse=reverse):
            per_frame[t] = video_res[:, 0].float()
        sweeps.append(torch.stack([per_frame[t] for t in range(num_frames)], dim=1))
    return sweeps[0], sweeps[1]


def stock_group_masks(
    predictor: StockPredictor,
    video_dir: str,
    shape: tuple[int, int, int],
    num_rollouts: int,
    det_rollout,
    det_frame,
    det_boxes,
    per_rollout: bool = True,
) -> np.ndarray:
    """bool [R, T, H, W] with the stock API over the JPEG clip in ``video_dir`` (``shape`` = (T, H, W)):
    one inference state per rollout (``per_rollout``) or one state for the whole group."""
    t, h, w = shape
    masks = np.zeros((num_rollouts, t, h, w), bool)
    det_rollout = np.asarray(det_rollout)
    dets = [(int(f), b) for f, b in zip(det_frame, np.asarray(det_boxes, np.float32))]
    batches = [np.flatnonzero(det_rollout == r) for r in range(num_rollouts)] if per_rollout else [np.arange(len(dets))]
    for idx in batches:
        if len(idx) == 0:
            continue
        fwd, bwd = stock_rollout_logits(predictor, video_dir, [dets[i] for i in idx], t)
        obj = ((fwd > 0) | (bwd > 0)).cpu().numpy()
        for j, d in enumerate(idx):
            masks[det_rollout[d]] |= obj[j]
    return masks
