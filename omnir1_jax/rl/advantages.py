"""Group-normalised GRPO advantages (Omni-R1 eq. 1; docs/design.md §4.2).

Shape legend: B = batch of completions (prompts x group_size), ordered group-major: completions
``[g * group_size : (g + 1) * group_size]`` answer the same prompt g.
"""

from __future__ import annotations

from typing import Literal

import jax.numpy as jnp
from jaxtyping import Array, Float

Scale = Literal["group", "batch", "none"]


def group_advantages(
    rewards: Float[Array, " B"],
    group_size: int,
    scale: Scale = "group",
    eps: float = 1e-4,
    *,
    unbiased: bool = True,
) -> Float[Array, " B"]:
    """Advantages ``A_n = (r_n - mean_group) / (std + eps)``.

    Args:
      rewards: [B] total reward per completion, group-major (B = num_prompts * group_size).
      group_size: N, the number of completions per prompt (8 in the paper).
      scale: ``"group"`` divides by the std of the completion's own group (GRPO, the default);
        ``"batch"`` divides by the std of the whole batch (centring stays per group);
        ``"none"`` does not divide (Dr. GRPO).
      eps: added to the std (docs/design.md §4.2: 1e-4), so zero-variance groups do not divide by 0. A group
        whose rewards are all equal gets advantage exactly 0.0 for every eps (each group is shifted by its first
        reward before the mean is taken, so no rounded mean is subtracted).
      unbiased: Bessel-corrected std (``ddof=1``, as ``torch.std``); ``False`` for the population std.

    Returns:
      [B] float32 advantages.
    """
    rewards = jnp.asarray(rewards, jnp.float32)
    if rewards.ndim != 1:
        raise ValueError(f"rewards must be 1-D [B], got shape {rewards.shape}")
    if group_size < 1 or rewards.shape[0] % group_size:
        raise ValueError(f"batch of {rewards.shape[0]} rewards is not a multiple of group_size={group_size}")
    if scale not in ("group", "batch", "none"):
        raise ValueError(f"scale must be 'group', 'batch' or 'none', got {scale!r}")
    ddof = 1 if unbiased else 0
    if unbiased and scale == "group" and group_size < 2:
        raise ValueError("an unbiased group std needs group_size >= 2 (pass unbiased=False)")
    grouped = rewards.reshape(-1, group_size)
    # Shift each group by its first reward before averaging: a constant group becomes exact zeros, so its mean,
    # centred rewards and advantages are exactly 0 (float32 rounding of mean(0.7 * 16) left 1e-3 .. 0.1 otherwise);
    # the shift also keeps the small differences of near-constant groups exact. Exact in real arithmetic.
    grouped = grouped - grouped[:, :1]
    centred = grouped - grouped.mean(axis=1, keepdims=True)
    if scale == "group":
        centred = centred / (grouped.std(axis=1, ddof=ddof, keepdims=True) + eps)
    elif scale == "batch":
        if unbiased and rewards.shape[0] < 2:
            raise ValueError("an unbiased batch std needs at least 2 rewards")
        centred = centred / (rewards.std(ddof=ddof) + eps)
    return centred.reshape(-1)


def zero_variance_fraction(rewards: Float[Array, " B"], group_size: int, atol: float = 1e-6) -> Float[Array, ""]:
    """Fraction of groups whose rewards are all equal (they carry no GRPO signal)."""
    grouped = jnp.asarray(rewards, jnp.float32).reshape(-1, group_size)
    spread = grouped.max(axis=1) - grouped.min(axis=1)
    return jnp.mean((spread <= atol).astype(jnp.float32))
