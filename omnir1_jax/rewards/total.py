"""The total Omni-R1 reward ``R = R_fmt + a_K R_K + a_A R_A + a_G R_G`` (eq. 4; docs/design.md §3.6).

Default weights follow the paper's best ablation row (R_K + R_G). Every row of the paper's Table 4 is in
:data:`TABLE4_WEIGHTS`.

The ``official`` preset against the released reward code
----------------------------------------------------------
The release (``omni_r1/reward.py`` + ``load_datasets/revos.py``) computes, per rollout,
``format + structure + a_k (frame + overlap) + a_k_ratio avg_ratio + a_a avg_iou + object_num_mismatch +
a_g sam_iou``. ``preset="official"`` maps these to ``format``, ``structure``, ``num`` + ``diversity``,
``saliency`` (weight ``a_K * l3``; the release's ``a_k_ratio`` = 1 = our default), ``alignment``, ``mismatch``
and ``grounding``. Beyond the bugs fixed in :mod:`omnir1_jax.rewards.keyframe` (times, JSON, union areas) and
:mod:`omnir1_jax.rewards.alignment` (x1 = 0), each arithmetic difference is reproduced or kept on purpose:

====================================  =========================================================================
release arithmetic                    ``official`` here
====================================  =========================================================================
object-count mismatch: on each of     reproduced: component ``mismatch`` =
the grounded keyframes G (first 4     ``-0.5 * sum_f max(0, n_f - O) / (O * |G|)``, n_f = System-2 boxes on f,
distinct), System 2's boxes beyond    O = target objects (:func:`mismatch_reward`)
the O target objects are counted
R_num = 0.4 K (K <= 4), else          reproduced: not rescaled (max 1.6; we used to divide by 1.6)
0.4 (7 - K)
R_A matches only the first O boxes    reproduced (:func:`~omnir1_jax.rewards.alignment.alignment_reward`
of System 2's answer per frame        ``num_objects``), inclusive-pixel IoU against the inclusive GT box
no System-2 box on any grounded       reproduced: ``saliency``, ``alignment``, ``mismatch`` and ``grounding``
keyframe: avg_ratio, avg_iou,         are 0 for that rollout (only when System 2 ran, i.e. ``pred_boxes`` is
mismatch and sam_iou are dropped      given)
structure bonus: visible fraction     reproduced when ``object_visible [T, O]`` is given (``group_rewards``
per (object, frame) pair              passes the GT boxes' validity); the union's visible fraction otherwise
structure bonus: a JSON object that   reproduced: 0.2 in the structure bonus and one more in its divisor
is no interval (``{"note": "x"}``)    (``ParsedAnswer.other_objects``); every other term ignores it, as the
counts 0.2 and in the divisor         release's do (it grounds nothing); ``paper`` ignores it entirely
saliency: sum of per-object areas     deliberate: the union's area (docs/design.md §3.3: ``area(m*_t)``); the sum counts
                                      pixels covered by two target objects twice
a_g = 0 drops avg_ratio, avg_iou and  deliberate: kept, so each Table-4 row is the reward it names (with the
the mismatch term                     release's arithmetic its R_K + R_A row has no R_A and no saliency)
one random target object per sample   deliberate: every target object (paper section 3.3: "B*_s can contain
(``select_number`` = 1 default)       multiple instances")
an item ending past the clip is       deliberate: its end is clamped to the last frame (docs/design.md §2.3)
invalid
====================================  =========================================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from omnir1_jax.rewards.alignment import alignment_reward
from omnir1_jax.rewards.grounding import grounding_reward
from omnir1_jax.rewards.keyframe import (
    OFFICIAL_MAX_KEYFRAMES,
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
    num_objects: int | None = None,
    object_visible: np.ndarray | None = None,
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
      num_objects: O, the expression's number of target objects (``official``: R_A's box cut and the mismatch
        term; default: the most GT boxes on one frame, at least 1).
      object_visible: [T, O] bool, object o visible on frame t (``official`` structure bonus; optional).

    Returns:
      ``(total [N] float32, components)`` with keys ``format, diversity, num, saliency, keyframe, alignment,
      grounding, valid`` (and ``structure``, ``mismatch`` for ``official``); unused components are zeros.
      ``official`` follows the release's arithmetic (module docstring table).
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
    official = preset == "official"
    if official and num_objects is None and gt_boxes is not None:
        num_objects = max(
            [
                len(np.asarray(b).reshape(-1, 4))
                for b in (gt_boxes.values() if isinstance(gt_boxes, Mapping) else gt_boxes)
            ]
            + [1]
        )
    num_objects = max(int(num_objects or 1), 1)
    # official: System 2 found no box on any grounded keyframe -> the release drops these terms
    boxed = np.ones(n, bool)
    if official and pred_boxes is not None:
        boxed = np.asarray([_any_box(a, b, num_objects) for a, b in zip(answers, pred_boxes)], bool)
        comp["saliency"] = np.where(boxed, comp["saliency"], 0.0).astype(np.float32)
    l1, l2, l3 = w.lambdas
    comp["keyframe"] = (l1 * comp["diversity"] + l2 * comp["num"] + l3 * comp["saliency"]).astype(np.float32)
    comp["alignment"] = np.zeros(n, np.float32)
    if w.alpha_a > 0:
        if pred_boxes is None or gt_boxes is None:
            raise ValueError("alpha_a > 0 needs pred_boxes and gt_boxes")
        comp["alignment"] = alignment_reward(
            answers, pred_boxes, gt_boxes, preset=preset, num_objects=num_objects if official else None
        )
    comp["grounding"] = np.zeros(n, np.float32)
    if w.alpha_g > 0:
        if pred_masks is None:
            raise ValueError("alpha_g > 0 needs pred_masks [N, T, H, W]")
        comp["grounding"] = np.asarray(grounding_reward(pred_masks, gt_masks, rollout_valid=comp["valid"] > 0))
    if official:
        comp["alignment"] = np.where(boxed, comp["alignment"], 0.0).astype(np.float32)
        comp["grounding"] = np.where(boxed, comp["grounding"], 0.0).astype(np.float32)
    total = w.format * comp["format"] + w.alpha_k * comp["keyframe"] + w.alpha_a * comp["alignment"]
    total = total + w.alpha_g * comp["grounding"]
    if official:
        comp["structure"] = official_structure_reward(answers, gt_masks, object_visible)
        comp["mismatch"] = np.zeros(n, np.float32)
        if pred_boxes is not None:
            comp["mismatch"] = np.where(boxed, mismatch_reward(answers, pred_boxes, num_objects), 0.0).astype(
                np.float32
            )
        total = total + comp["structure"] + comp["mismatch"]
    return total.astype(np.float32), comp


def _grounded(answer: ParsedAnswer) -> list[int]:
    return sorted(set(answer.keyframes))[:OFFICIAL_MAX_KEYFRAMES]


def _boxes_on(boxes: Mapping[int, np.ndarray], f: int) -> np.ndarray:
    b = boxes.get(f)
    return np.zeros((0, 4)) if b is None else np.asarray(b, np.float64).reshape(-1, 4)


def _any_box(answer: ParsedAnswer, boxes: Mapping[int, np.ndarray], num_objects: int) -> bool:
    return answer.valid and any(len(_boxes_on(boxes, f)[:num_objects]) for f in _grounded(answer))


def mismatch_reward(
    answers: Sequence[ParsedAnswer], pred_boxes: Sequence[Mapping[int, np.ndarray]], num_objects: int
) -> np.ndarray:
    """The release's object-count mismatch term (``official`` only), <= 0:
    ``-0.5 * sum_f max(0, n_f - O) / (O * |G|)`` over the grounded keyframes G (the first 4 distinct keyframes),
    n_f = number of boxes System 2 answered on frame f, O = ``num_objects``. Fewer boxes than O cost nothing
    here (they cost in R_A). 0 for an invalid answer."""
    if num_objects < 1:
        raise ValueError(f"num_objects must be >= 1, got {num_objects}")
    out = np.zeros(len(answers), np.float32)
    for n, (a, boxes) in enumerate(zip(answers, pred_boxes)):
        if not a.valid:
            continue
        frames = _grounded(a)
        excess = sum(max(0, len(_boxes_on(boxes, f)) - num_objects) for f in frames)
        out[n] = -0.5 * excess / (num_objects * len(frames))
    return out
