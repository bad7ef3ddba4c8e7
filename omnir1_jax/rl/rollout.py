"""Host-side GRPO rollout plumbing: decode completions, build System-2 queries, gather group rewards.

Rows are ordered ``prompt * N + sample`` (N = group size), as the sampler returns them.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from omnir1_jax.rewards import ParsedAnswer, RewardWeights, parse_answer, total_reward


def decode_completions(tokenizer, tokens: np.ndarray, lengths: np.ndarray, eos_ids: Sequence[int]) -> list[str]:
    """Text of each row's first ``lengths[r]`` tokens, a final EOS dropped, special tokens skipped."""
    tokens, lengths = np.asarray(tokens), np.asarray(lengths)
    eos = set(int(e) for e in eos_ids)
    texts = []
    for r in range(tokens.shape[0]):
        ids = tokens[r, : int(lengths[r])].tolist()
        if ids and ids[-1] in eos:
            ids = ids[:-1]
        texts.append(tokenizer.decode(ids, skip_special_tokens=True))
    return texts


def keyframe_queries(answer: ParsedAnswer, max_keyframes: int | None = None):
    """System-2 queries of one rollout: ``Keyframe(frame, description)`` per distinct keyframe (see
    :meth:`ParsedAnswer.queries`); empty for an invalid answer."""
    from sam2_bridge.protocol import Keyframe

    if not answer.valid:
        return []
    return [Keyframe(int(f), str(d)) for f, d in answer.queries(max_keyframes)]


def boxes_by_frame(queries, boxes: Sequence[np.ndarray]) -> dict[int, np.ndarray]:
    """``{frame: [k, 4]}`` from the bridge's per-keyframe boxes (aligned with ``queries``)."""
    out: dict[int, np.ndarray] = {}
    for q, b in zip(queries, boxes):
        b = np.asarray(b, np.float32).reshape(-1, 4)
        out[q.frame_idx] = np.concatenate([out[q.frame_idx], b]) if q.frame_idx in out else b
    return out


def gt_boxes_by_frame(gt_boxes: np.ndarray, valid: np.ndarray) -> list[np.ndarray]:
    """Per frame the GT box set: one tight box of the union mask where the target is present, else empty."""
    return [np.asarray(gt_boxes[t], np.float32)[None] if valid[t] else np.zeros((0, 4), np.float32)
            for t in range(len(valid))]


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
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rewards of one GRPO group from its texts and the bridge's answer (a ``GroupResult`` or None when the
    weights need no System 2)."""
    if answers is None:
        answers = [parse_answer(t, num_frames, fps) for t in texts]
    pred_masks = pred_boxes = None
    if results is not None:
        pred_masks = np.stack([r.masks for r in results.rollouts]).astype(bool)
        pred_boxes = [boxes_by_frame(q, r.boxes) for q, r in zip(queries, results.rollouts)]
    if pred_masks is None and weights.alpha_g > 0:
        raise ValueError("alpha_g > 0 needs the bridge's masks")
    return total_reward(
        list(texts), num_frames=num_frames, gt_masks=gt_masks,
        gt_boxes=gt_boxes_by_frame(gt_boxes, gt_box_valid), pred_boxes=pred_boxes, pred_masks=pred_masks,
        weights=weights, preset=preset, fps=fps, answers=answers,  # type: ignore[arg-type]
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
