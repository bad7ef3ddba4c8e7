"""RefAID (appendix B): the AVS training variant — first frame + full audio, System 1 answers one grounding
description, System 2 finds boxes on frame 0, and the reward is ``R_fmt + (1 - L_H(pred, gt))`` (best matching
by the same Hungarian loss as R_A). No SAM2.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from omnir1_jax.rewards.alignment import hungarian_loss
from omnir1_jax.rewards.keyframe import format_reward
from omnir1_jax.rewards.parsing import parse_description


def refaid_reward(
    completions: Sequence[object],
    pred_boxes: Sequence[np.ndarray | None],
    gt_boxes: np.ndarray,
    *,
    format_weight: float = 1.0,
) -> np.ndarray:
    """Per rollout ``format_weight * R_fmt + (1 - L_H(pred_boxes[n], gt_boxes))``; range [0, 2].

    A completion without a usable description gets 0 for the box part whatever boxes are passed.
    """
    if len(pred_boxes) != len(completions):
        raise ValueError(f"{len(completions)} completions but {len(pred_boxes)} pred_boxes entries")
    box = np.zeros(len(completions), np.float32)
    for n, (c, boxes) in enumerate(zip(completions, pred_boxes)):
        if parse_description(c) is not None:
            box[n] = 1.0 - hungarian_loss(boxes, gt_boxes)
    return (format_weight * format_reward(completions) + box).astype(np.float32)
