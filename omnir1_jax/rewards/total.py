"""The total Omni-R1 reward ``R = R_fmt + a_K R_K + a_A R_A + a_G R_G`` (eq. 4; SPEC section 3).

Default weights follow the paper's best ablation row (R_K + R_G). Every row of the paper's Table 4 is in
:data:`TABLE4_WEIGHTS`.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Mapping, Sequence

import numpy as np

from omnir1_jax.rewards.alignment import alignment_reward
from omnir1_jax.rewards.grounding import grounding_reward
from omnir1_jax.rewards.keyframe import (
    diversity_reward,
    format_reward,
    num_reward,
    official_structure_reward,
    saliency_reward,
)
from omnir1_jax.rewards.parsing import ParsedAnswer, parse_answer


@dataclasses.dataclass(frozen=True)
class RewardWeights:
    """Weights of the total reward.

    Attributes:
      format: weight of R_fmt (the paper adds it with weight 1).
      alpha_k, alpha_a, alpha_g: a_K, a_A, a_G of eq. 4 (default: the R_K + R_G row of Table 4).
      lambdas: (l1, l2, l3) of R_K = l1 R_diversity + l2 R_num + l3 R_saliency (section 3.3).
      target_keyframes: K0 of R_num ("about 4 moments" in the System-1 prompt).
      overlap_punish, dist_reward: the R_diversity coefficients of appendix B.
    """

    format: float = 1.0
    alpha_k: float = 1.0
    alpha_a: float = 0.0
    alpha_g: float = 1.0
    lambdas: tuple[float, float, float] = (1.0, 1.0, 1.0)
    target_keyframes: int = 4
    overlap_punish: float = -0.2
    dist_reward: float = 0.25

    def __post_init__(self):
        for name in ("format", "alpha_k", "alpha_a", "alpha_g"):
            if getattr(self, name) < 0:
                raise ValueError(f"RewardWeights.{name} must be >= 0, got {getattr(self, name)}")
        if len(self.lambdas) != 3:
            raise ValueError(f"RewardWeights.lambdas must have 3 entries, got {self.lambdas}")
        if self.target_keyframes < 1:
            raise ValueError(f"RewardWeights.target_keyframes must be >= 1, got {self.target_keyframes}")


# Omni-R1 Table 4 (appendix C): the four reward ablation rows.
TABLE4_WEIGHTS: Mapping[str, RewardWeights] = {
    "R_K": RewardWeights(alpha_k=1.0, alpha_a=0.0, alpha_g=0.0),
    "R_K+R_A": RewardWeights(alpha_k=1.0, alpha_a=1.0, alpha_g=0.0),
    "R_K+R_G": RewardWeights(alpha_k=1.0, alpha_a=0.0, alpha_g=1.0),
    "R_K+R_A+R_G": RewardWeights(alpha_k=1.0, alpha_a=1.0, alpha_g=1.0),
}


def total_reward(
    completions: Sequence[object],
    *,
    num_frames: int,
    gt_masks: np.ndarray,
    gt_boxes: Mapping[int, np.ndarray] | Sequence[np.ndarray] | None = None,
    pred_boxes: Sequence[Mapping[int, np.ndarray]] | None = None,
    pred_masks: np.ndarray | None = None,
    weights: RewardWeights = RewardWeights(),
    preset: Literal["paper", "official"] = "paper",
    fps: float = 2.0,
    answers: Sequence[ParsedAnswer] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Total reward of one GRPO group and every component.

    Args:
      completions: N completions of one prompt.
      num_frames: T, frames of the clip System 1 saw.
      gt_masks: [T, H, W] union GT masks of the clip (or [T] areas when a_G = 0).
      gt_boxes: GT boxes per frame (needed when a_A > 0).
      pred_boxes: per rollout ``{frame: [k, 4]}`` System-2 boxes (needed when a_A > 0).
      pred_masks: [N, T, H, W] per-rollout union masks from SAM2 (needed when a_G > 0).
      weights: see :class:`RewardWeights`.
      preset: ``"paper"`` or ``"official"`` (see :mod:`omnir1_jax.rewards.keyframe`); ``official`` also adds
        :func:`official_structure_reward` as component ``structure``.
      answers: already parsed answers (parsed here otherwise).

    Returns:
      ``(total [N] float32, components)`` with keys ``format, diversity, num, saliency, keyframe, alignment,
      grounding, valid`` (and ``structure`` for ``official``); unused components are zeros.
    """
    n = len(completions)
    if answers is None:
        answers = [parse_answer(c, num_frames, fps) for c in completions]
    if len(answers) != n:
        raise ValueError(f"{n} completions but {len(answers)} parsed answers")
    w = weights
    comp: dict[str, np.ndarray] = {"format": format_reward(completions)}
    comp["valid"] = np.asarray([a.valid for a in answers], np.float32)
    comp["diversity"] = diversity_reward(
        answers, overlap_punish=w.overlap_punish, dist_reward=w.dist_reward, preset=preset
    )
    comp["num"] = num_reward(answers, target=w.target_keyframes, preset=preset)
    comp["saliency"] = saliency_reward(answers, gt_masks, preset=preset)
    l1, l2, l3 = w.lambdas
    comp["keyframe"] = (l1 * comp["diversity"] + l2 * comp["num"] + l3 * comp["saliency"]).astype(np.float32)
    comp["alignment"] = np.zeros(n, np.float32)
    if w.alpha_a > 0:
        if pred_boxes is None or gt_boxes is None:
            raise ValueError("alpha_a > 0 needs pred_boxes and gt_boxes")
        comp["alignment"] = alignment_reward(answers, pred_boxes, gt_boxes, preset=preset)
    comp["grounding"] = np.zeros(n, np.float32)
    if w.alpha_g > 0:
        if pred_masks is None:
            raise ValueError("alpha_g > 0 needs pred_masks [N, T, H, W]")
        comp["grounding"] = np.asarray(grounding_reward(pred_masks, gt_masks, rollout_valid=comp["valid"] > 0))
    total = w.format * comp["format"] + w.alpha_k * comp["keyframe"] + w.alpha_a * comp["alignment"]
    total = total + w.alpha_g * comp["grounding"]
    if preset == "official":
        comp["structure"] = official_structure_reward(answers, gt_masks)
        total = total + comp["structure"]
    return total.astype(np.float32), comp
