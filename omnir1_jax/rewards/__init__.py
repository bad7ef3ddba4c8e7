"""Answer parsing and every reward of Omni-R1 and CrossOmni — pure functions over one GRPO group.

Each reward takes the N completions (or their parsed answers) of one prompt and returns float32 [N].

Omni-R1 (docs/design.md §2–3)::

    parse_answer(completion, num_frames, fps=2.0) -> ParsedAnswer(.keyframes, .descriptions, .valid, .error)
    format_reward(completions)
    diversity_reward(answers), num_reward(answers), saliency_reward(answers, gt_masks)
    keyframe_reward(answers, gt_masks, lambdas=(1, 1, 1))                 # R_K
    alignment_reward(answers, pred_boxes, gt_boxes)                       # R_A (Hungarian)
    grounding_reward(pred_masks[N,T,H,W], gt_masks[T,H,W])                # R_G (jit)
    refaid_reward(completions, pred_boxes, gt_boxes)                      # RefAID
    segzero_reward(completions, gt_box, gt_points) -> (total, components) # grounding task (SegZero-style)
    total_reward(completions, num_frames=..., gt_masks=..., ..., weights=RewardWeights(), preset="paper")

CrossOmni (paper 004, Table 18)::

    choice_accuracy_reward(completions, gold), think_format_reward(completions)
    judge_reward(judge, "consistency" | "coherence", completions, references)

``preset="official"`` reproduces the released code's arithmetic with its bugs fixed; see
:mod:`omnir1_jax.rewards.keyframe` (fixed bugs) and :mod:`omnir1_jax.rewards.total` (the table of every other
difference, reproduced or deliberate).
"""

from omnir1_jax.rewards.alignment import alignment_reward, box_iou_matrix, hungarian_loss, linear_assignment
from omnir1_jax.rewards.crossomni import (
    COHERENCE_PROMPT,
    CONSISTENCY_PROMPT,
    choice_accuracy_reward,
    extract_choice,
    judge_reward,
    parse_judge_score,
    think_format_reward,
)
from omnir1_jax.rewards.grounding import grounding_reward, grounding_reward_numpy
from omnir1_jax.rewards.keyframe import (
    diversity_reward,
    format_reward,
    keyframe_reward,
    num_reward,
    official_structure_reward,
    saliency_reward,
)
from omnir1_jax.rewards.parsing import (
    AnswerItem,
    ParsedAnswer,
    extract_rationale,
    extract_tag,
    parse_answer,
    parse_description,
    parse_time,
)
from omnir1_jax.rewards.refaid import refaid_reward
from omnir1_jax.rewards.segzero import gt_points, parse_grounding_answer, segzero_reward
from omnir1_jax.rewards.total import TABLE4_WEIGHTS, RewardWeights, mismatch_reward, total_reward

__all__ = [
    "COHERENCE_PROMPT",
    "CONSISTENCY_PROMPT",
    "TABLE4_WEIGHTS",
    "AnswerItem",
    "ParsedAnswer",
    "RewardWeights",
    "alignment_reward",
    "box_iou_matrix",
    "choice_accuracy_reward",
    "diversity_reward",
    "extract_choice",
    "extract_rationale",
    "extract_tag",
    "format_reward",
    "grounding_reward",
    "grounding_reward_numpy",
    "gt_points",
    "hungarian_loss",
    "judge_reward",
    "keyframe_reward",
    "linear_assignment",
    "mismatch_reward",
    "num_reward",
    "official_structure_reward",
    "parse_answer",
    "parse_description",
    "parse_grounding_answer",
    "parse_judge_score",
    "parse_time",
    "refaid_reward",
    "saliency_reward",
    "segzero_reward",
    "think_format_reward",
    "total_reward",
]
