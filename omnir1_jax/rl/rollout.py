"""Host-side GRPO rollout plumbing of the segmentation tasks: System-2 queries, GT box sets, group rewards.

(Decoding completions is a policy service: :func:`omnir1_jax.policy.decode_completions`.)

Rows are ordered ``prompt * N + sample`` (N = group size), as the sampler returns them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from omnir1_jax.data.masks import frame_box_sets
from omnir1_jax.rewards import ParsedAnswer, RewardWeights, parse_answer, total_reward
from omnir1_jax.rewards.parsing import keep_first_items


def keyframe_queries(answer: ParsedAnswer, max_keyframes: int | None = None):
    """System-2 queries of one rollout: ``Keyframe(frame, description)`` per distinct keyframe (see
    :meth:`ParsedAnswer.queries`); empty for an invalid answer."""
    # lazy: the bridge's wire protocol pulls in msgpack
    from sam2_bridge.wire.protocol import Keyframe

    if not answer.valid:
        return []
    return [Keyframe(int(f), str(d)) for f, d in answer.queries(max_keyframes)]


def parse_group(
    texts: Sequence[str],
    num_frames: int,
    fps: float = 2.0,
    num_keyframes: int | None = None,
    answers: Sequence[ParsedAnswer] | None = None,
) -> list[ParsedAnswer]:
    """Parsed answers of a group (``answers`` when given), each cut to its first ``num_keyframes`` items
    (``grpo.num_keyframes``; None keeps all) — build System 2's queries from these."""
    if answers is None:
        answers = [parse_answer(t, num_frames, fps) for t in texts]
    return [keep_first_items(a, num_keyframes) for a in answers]


def boxes_by_frame(queries, boxes: Sequence[np.ndarray]) -> dict[int, np.ndarray]:
    """``{frame: [k, 4]}`` from the bridge's per-keyframe boxes (aligned with ``queries``)."""
    out: dict[int, np.ndarray] = {}
    for q, b in zip(queries, boxes):
        b = np.asarray(b, np.float32).reshape(-1, 4)
        out[q.frame_idx] = np.concatenate([out[q.frame_idx], b]) if q.frame_idx in out else b
    return out


def gt_boxes_by_frame(gt_boxes: np.ndarray, valid: np.ndarray) -> list[np.ndarray]:
    """Per frame the GT box set ``[n_t, 4]``: one box per target object visible on that frame (the tight box of
    that object's own mask), empty where none is.

    Args:
      gt_boxes: ``[T, O, 4]`` per-object boxes (one example of the batch's ``gt_boxes``); the older
        one-box-per-frame ``[T, 4]`` is accepted too.
      valid: ``[T, O]`` (or ``[T]``) — which of those boxes are real.
    """
    return frame_box_sets(gt_boxes, valid)


def gt_box_lists(batch: Mapping[str, Any], index: int, num_frames: int | None = None) -> list[np.ndarray]:
    """The GT box sets of example ``index`` of a pipeline batch: one ``[n_t, 4]`` float32 array per sampled frame
    (``num_frames`` of them, default the example's ``num_frames``), holding the boxes of the target objects
    visible on that frame in original pixels. What ``alignment_reward`` takes as ``gt_boxes``; RefAID's GT is
    element 0 (the first frame)."""
    t = int(batch["num_frames"][index]) if num_frames is None else int(num_frames)
    return gt_boxes_by_frame(np.asarray(batch["gt_boxes"][index])[:t], np.asarray(batch["gt_box_valid"][index])[:t])


def group_rewards(
    texts: Sequence[str],
    num_frames: int,
    gt_masks: np.ndarray,
    gt_boxes: np.ndarray,
    gt_box_valid: np.ndarray,
    results: Any,
    queries: Sequence[Sequence[Any]],
    *,
    weights: RewardWeights,
    preset: str = "paper",
    fps: float = 2.0,
    answers: Sequence[ParsedAnswer] | None = None,
    num_objects: int | None = None,
    num_keyframes: int | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rewards of one GRPO group from its texts and the bridge's answer (a ``GroupResult`` or None when the
    weights need no System 2).

    ``gt_boxes [T, O, 4]`` / ``gt_box_valid [T, O]`` are the example's per-object GT boxes (the batch's
    ``gt_boxes[b][:T]``, ``gt_box_valid[b][:T]``); R_A matches System 2's boxes on each keyframe against the
    boxes of every target object visible there. ``num_objects`` (the batch's ``num_objects[b]``) is O of the
    ``official`` preset; by default the number of object columns visible on some frame of the clip.
    ``num_keyframes`` (``grpo.num_keyframes``) keeps the first K items of each answer (:func:`parse_group`);
    ``queries`` must have been built from the same truncated answers."""
    answers = parse_group(texts, num_frames, fps, num_keyframes, answers)
    pred_masks = pred_boxes = None
    if results is not None:
        pred_masks = np.stack([r.masks for r in results.rollouts]).astype(bool)
        pred_boxes = [boxes_by_frame(q, r.boxes) for q, r in zip(queries, results.rollouts)]
    if pred_masks is None and weights.alpha_g > 0:
        raise ValueError("alpha_g > 0 needs the bridge's masks")
    visible = np.asarray(gt_box_valid, bool)
    visible = visible[:, None] if visible.ndim == 1 else visible
    if num_objects is None:
        num_objects = max(int(visible.any(axis=0).sum()), 1)
    return total_reward(
        list(texts),
        num_frames=num_frames,
        gt_masks=gt_masks,
        gt_boxes=gt_boxes_by_frame(gt_boxes, gt_box_valid),
        pred_boxes=pred_boxes,
        pred_masks=pred_masks,
        weights=weights,
        preset=preset,  # type: ignore[arg-type]
        fps=fps,
        answers=answers,
        num_objects=num_objects,
        object_visible=visible[:, : max(num_objects, 1)],
    )


def summarize(values: dict[str, np.ndarray], prefix: str = "") -> dict[str, float]:
    """mean / min / max of each [R] array."""
    out = {}
    for k, v in values.items():
        v = np.asarray(v, np.float64)
        if v.size == 0:
            continue
        out[f"{prefix}{k}"] = float(v.mean())
        out[f"{prefix}{k}_min"] = float(v.min())
        out[f"{prefix}{k}_max"] = float(v.max())
    return out
