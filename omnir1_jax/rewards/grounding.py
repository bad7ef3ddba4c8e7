"""R_G: global temporal-consistency reward, the mean per-frame mask IoU over the clip (Omni-R1 eq. 3).

Shape legend: N rollouts, T frames, H x W pixels.

``m_hat_t`` is the union of all masks the rollout's detections produced on frame t (the bridge already returns
that union per rollout); the IoU of two empty masks is 1 (DAVIS convention, docs/design.md §3.5).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from omnir1_jax.evaluation.metrics.davis_jax import db_eval_iou_jax


@jax.jit
def _grounding_core(pred, gt, frame_valid, rollout_valid):
    # DAVIS J per rollout and frame (bit-packed, exact; both empty -> 1), then the masked mean over frames.
    iou = db_eval_iou_jax(jnp.broadcast_to(gt[None], pred.shape), pred)
    w = frame_valid.astype(jnp.float32)[None]
    mean = jnp.sum(iou * w, axis=1) / jnp.maximum(jnp.sum(w), 1.0)
    return jnp.where(rollout_valid, mean, 0.0)


def grounding_reward(
    pred_masks: Bool[ArrayLike, "N T H W"],
    gt_masks: Bool[ArrayLike, "T H W"],
    frame_valid: Bool[ArrayLike, " T"] | None = None,
    rollout_valid: Bool[ArrayLike, " N"] | None = None,
) -> Float[Array, " N"]:
    """R_G per rollout: ``(1/T) sum_t IoU(m_hat_t, m*_t)``, range [0, 1]; jit-compiled, batched over N x T.

    Args:
      pred_masks: [N, T, H, W] per-rollout union masks (bool or 0/1) on the frames SAM2 ran on.
      gt_masks: [T, H, W] union of the target objects' GT masks on the same frames.
      frame_valid: optional [T] mask of the frames to average over (all by default).
      rollout_valid: optional [N]; rollouts marked False (e.g. unparseable answers) get 0, not the IoU of their
        empty masks.
    """
    pred = jnp.asarray(pred_masks).astype(bool)
    gt = jnp.asarray(gt_masks).astype(bool)
    if pred.ndim != 4 or gt.ndim != 3 or pred.shape[1:] != gt.shape:
        raise ValueError(
            f"expected pred [N, T, H, W] and gt [T, H, W] with equal T, H, W; got {pred.shape}, {gt.shape}"
        )
    n, t = pred.shape[:2]
    fv = jnp.ones((t,), bool) if frame_valid is None else jnp.asarray(frame_valid).astype(bool)
    rv = jnp.ones((n,), bool) if rollout_valid is None else jnp.asarray(rollout_valid).astype(bool)
    if fv.shape != (t,) or rv.shape != (n,):
        raise ValueError(f"frame_valid must be [{t}] and rollout_valid [{n}], got {fv.shape}, {rv.shape}")
    return _grounding_core(pred, gt, fv, rv)


def grounding_reward_numpy(pred_masks, gt_masks, frame_valid=None, rollout_valid=None) -> np.ndarray:
    """The numpy reference of :func:`grounding_reward` (a plain loop over rollouts and frames)."""
    pred, gt = np.asarray(pred_masks).astype(bool), np.asarray(gt_masks).astype(bool)
    n, t = pred.shape[:2]
    fv = np.ones(t, bool) if frame_valid is None else np.asarray(frame_valid, bool)
    out = np.zeros(n, np.float32)
    for i in range(n):
        if rollout_valid is not None and not rollout_valid[i]:
            continue
        ious = []
        for f in range(t):
            if not fv[f]:
                continue
            union = np.logical_or(pred[i, f], gt[f]).sum()
            ious.append(1.0 if union == 0 else np.logical_and(pred[i, f], gt[f]).sum() / union)
        out[i] = np.mean(ious) if ious else 0.0
    return out
