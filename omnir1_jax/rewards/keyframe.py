"""Format reward and the keyframe-quality reward R_K (Omni-R1 section 3.3, appendix B; docs/design.md §3.2–3.3).

Every reward takes the whole GRPO group (N completions / parsed answers) and returns float32 [N].

Notation: S = sorted keyframes with repeats (M of them), K = number of distinct keyframes,
``areas[t]`` = pixel area of the union of the target objects' GT masks on frame t of the clip.

Presets:

- ``"paper"`` (default): the formulas of the paper / docs/design.md §3.3.
- ``"official"``: the arithmetic of the released PyTorch code with its bugs fixed. Differences:
  R_num = ``0.4*K if K <= 4 else 0.4*(7 - K)`` (max 1.6, as released); R_diversity =
  ``-0.2 * sum_i(len_i - 1) - 0.5 * (sum_i len_i - K)`` over the valid intervals (a length penalty per interval
  plus 0.5 per repeated frame); R_saliency averages over the first 4 distinct keyframes only (the released code
  grounds only those). Fixed bugs: times ``mm:ss.f`` read as decimals (not ``ss + f/100``); JSON parsed with a
  real decoder (the regex ``({[\\s\\S]*?})`` broke on nested braces); areas of the union of the target objects
  (the released code summed per-object areas, counting overlaps twice).
  The official per-object JSON bonus is :func:`official_structure_reward`. Every other difference between
  ``official`` and the release (reproduced or deliberate) is tabled in :mod:`omnir1_jax.rewards.total`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import numpy as np

from omnir1_jax.rewards.parsing import ParsedAnswer

Preset = Literal["paper", "official"]
_THINK_TO_ANSWER_RE = re.compile(r"</think>\s*<answer>")
OFFICIAL_MAX_KEYFRAMES = 4


def _check_preset(preset: str) -> None:
    if preset not in ("paper", "official"):
        raise ValueError(f"preset must be 'paper' or 'official', got {preset!r}")


def _has_format(text: str) -> bool:
    # Equivalent to fullmatch(r"<think>.*?</think>\s*<answer>.*?</answer>", DOTALL) in linear time (the regex
    # backtracks quadratically over many "</think><answer>" pairs): starts with <think>, ends with </answer>, and
    # some "</think> ws <answer>" lies between them. "</think>" cannot overlap itself, so successive matches end
    # ever later and the leftmost one is the one to check.
    if not (text.startswith("<think>") and text.endswith("</answer>")):
        return False
    m = _THINK_TO_ANSWER_RE.search(text, len("<think>"))
    return m is not None and m.end() <= len(text) - len("</answer>")


def format_reward(completions: Sequence[object]) -> np.ndarray:
    """R_fmt in {0, 1}: the whole completion matches ``<think>.*?</think>\\s*<answer>.*?</answer>`` (DOTALL),
    surrounding whitespace allowed; linear in the completion's length."""
    return np.asarray([1.0 if isinstance(c, str) and _has_format(c.strip()) else 0.0 for c in completions], np.float32)


def diversity_reward(
    answers: Sequence[ParsedAnswer],
    *,
    overlap_punish: float = -0.2,
    dist_reward: float = 0.25,
    preset: Preset = "paper",
) -> np.ndarray:
    """R_diversity (appendix B, docs/design.md §3.3): ``overlap_punish * |J| + dist_reward * (M - |J|)``.

    S = the keyframes of every valid answer item (an item covers each frame of its interval), sorted by frame
    (``ParsedAnswer.keyframes``), M = len(S). J = consecutive pairs of S that share the frame index **or come from
    the same answer item** (the appendix's identifier ``idx(s)`` is the item): a long interval is a run of
    overlaps, so stretching one interval over the clip cannot buy reward. With the defaults four single-frame
    items score 4 * 0.25 = 1.0 and one item over 24 frames scores -0.2 * 23 + 0.25 = -4.35.
    Range: unbounded below, ``dist_reward * K`` above; 0 when invalid.
    """
    _check_preset(preset)
    out = np.zeros(len(answers), np.float32)
    for n, a in enumerate(answers):
        if not a.valid:
            continue
        if preset == "official":
            lengths = [len(it.frames) for it in a.items if it.valid]
            distinct = len(set(a.keyframes))
            out[n] = -0.2 * sum(length - 1 for length in lengths) - 0.5 * (sum(lengths) - distinct)
            continue
        s, owner = a.keyframes, _keyframe_items(a)
        joined = sum(1 for i in range(len(s) - 1) if s[i] == s[i + 1] or owner[i] == owner[i + 1])
        out[n] = overlap_punish * joined + dist_reward * (len(s) - joined)
    return out


def _keyframe_items(a: ParsedAnswer) -> tuple[int, ...]:
    if len(a.keyframe_items) != len(a.keyframes):
        raise ValueError(
            f"ParsedAnswer has {len(a.keyframes)} keyframes but {len(a.keyframe_items)} item ids; build it with "
            "parse_answer / answer_from_items"
        )
    return a.keyframe_items


def num_reward(answers: Sequence[ParsedAnswer], *, target: int = 4, preset: Preset = "paper") -> np.ndarray:
    """R_num: ``max(0, 1 - |K - K0| / K0)`` with K0 = ``target`` (paper), or the release's
    ``0.4K if K <= 4 else 0.4(7 - K)`` (official; its ``total_frame_reward``, not rescaled). Range [0, 1] (paper);
    <= 1.6 (official). 0 when invalid."""
    _check_preset(preset)
    if target < 1:
        raise ValueError(f"target must be >= 1, got {target}")
    out = np.zeros(len(answers), np.float32)
    for n, a in enumerate(answers):
        if not a.valid:
            continue
        k = len(set(a.keyframes))
        if preset == "official":
            out[n] = 0.4 * k if k <= 4 else 0.4 * (7 - k)
        else:
            out[n] = max(0.0, 1.0 - abs(k - target) / target)
    return out


def frame_areas(gt_masks_or_areas: np.ndarray) -> np.ndarray:
    """Per-frame target areas [T] from union masks [T, H, W] (or areas [T] passed through)."""
    x = np.asarray(gt_masks_or_areas)
    if x.ndim == 3:
        return x.reshape(x.shape[0], -1).astype(bool).sum(axis=1).astype(np.float64)
    if x.ndim == 1:
        return x.astype(np.float64)
    raise ValueError(f"expected GT masks [T, H, W] or areas [T], got shape {x.shape}")


def saliency_reward(
    answers: Sequence[ParsedAnswer], gt_masks_or_areas: np.ndarray, *, preset: Preset = "paper"
) -> np.ndarray:
    """R_saliency = mean over distinct keyframes s of ``area(m*_s) / max_t area(m*_t)``; range [0, 1].

    0 when the answer is invalid or the target is never visible in the clip.
    """
    _check_preset(preset)
    areas = frame_areas(gt_masks_or_areas)
    peak = areas.max() if areas.size else 0.0
    out = np.zeros(len(answers), np.float32)
    if peak <= 0:
        return out
    for n, a in enumerate(answers):
        if not a.valid:
            continue
        if a.num_frames != areas.shape[0]:
            raise ValueError(f"answer refers to {a.num_frames} frames but the GT has {areas.shape[0]}")
        frames = sorted(set(a.keyframes))
        if preset == "official":
            frames = frames[:OFFICIAL_MAX_KEYFRAMES]
        out[n] = float(np.mean(areas[frames] / peak))
    return out


def keyframe_reward(
    answers: Sequence[ParsedAnswer],
    gt_masks_or_areas: np.ndarray,
    *,
    lambdas: tuple[float, float, float] = (1.0, 1.0, 1.0),
    target: int = 4,
    overlap_punish: float = -0.2,
    dist_reward: float = 0.25,
    preset: Preset = "paper",
) -> np.ndarray:
    """R_K = l1 * R_diversity + l2 * R_num + l3 * R_saliency (section 3.3). 0 when invalid."""
    l1, l2, l3 = lambdas
    return (
        l1 * diversity_reward(answers, overlap_punish=overlap_punish, dist_reward=dist_reward, preset=preset)
        + l2 * num_reward(answers, target=target, preset=preset)
        + l3 * saliency_reward(answers, gt_masks_or_areas, preset=preset)
    ).astype(np.float32)


def official_structure_reward(
    answers: Sequence[ParsedAnswer], gt_masks_or_areas: np.ndarray, object_visible: np.ndarray | None = None
) -> np.ndarray:
    """The released code's per-object bonus (``official`` preset only), averaged over the decoded objects:
    0.2 per object, +0.2 when it has start/end/description, +0.2 when its times are consistent and inside the
    clip, + the fraction of its frames where the target is visible. Range [0, 1.6]; 0 with no object. A JSON
    object that is no interval (``ParsedAnswer.other_objects``) counts as the release counts it: 0.2, and one in
    the divisor.

    ``object_visible [T, O]`` (object o visible on frame t) gives the release's per-object fraction: visible
    (object, frame) pairs over ``frames * O`` (two objects, one visible: 0.5); without it, the fraction of frames
    where the union is visible."""
    areas = frame_areas(gt_masks_or_areas)
    if object_visible is not None:
        object_visible = np.asarray(object_visible, bool).reshape(areas.shape[0], -1)
    out = np.zeros(len(answers), np.float32)
    for n, a in enumerate(answers):
        others = getattr(a, "other_objects", 0)
        if not a.items and not others:
            continue
        total = 0.2 * others
        for it in a.items:
            total += 0.2
            if it.start is not None and it.end is not None and it.description:
                total += 0.2
                if it.valid:
                    frames = list(it.frames)
                    seen = object_visible[frames] if object_visible is not None else areas[frames] > 0
                    total += 0.2 + float(np.mean(seen))
        out[n] = total / (len(a.items) + others)
    return out
