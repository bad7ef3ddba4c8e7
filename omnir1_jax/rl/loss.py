"""The GRPO objective: clipped importance ratio, KL to a frozen reference, three aggregation modes.

Shape legend: B completions, T completion tokens (right-padded; ``mask`` marks real tokens).

Per token (docs/design.md §4.3–4.4, Omni-R1 section 3.2)::

    rho  = exp(clamp(logp - old_logp, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))
    loss = -min(rho * A, clip(rho, 1 - eps_low, 1 + eps_high) * A) + beta * KL(logp, ref_logp)

with KL one of the Schulman estimators of KL(pi || ref) on samples of pi:
``k3 = exp(ref - logp) - (ref - logp) - 1`` (GRPO / DeepSeekMath, the default), ``k1 = logp - ref``,
``k2 = (logp - ref)^2 / 2``.

Aggregation over tokens:

- ``seq_mean_token_mean``: mean over sequences of each sequence's token mean (the original GRPO).
- ``token_mean``: sum over all tokens / number of tokens (DAPO).
- ``seq_mean_token_sum_norm``: sum over all tokens / (B * max_len) (Dr. GRPO). ``max_len`` is a constant of
  the run, the answer-token budget (Dr. GRPO's "generation budget"; TRL's ``dr_grpo`` divides by
  ``max_completion_length``): the learner passes ``grpo.max_new_tokens``, or ``grpo.max_turns *
  grpo.max_new_tokens`` for multi-turn trajectories, so the same rows give the same loss however wide the batch
  is padded. Left at None it falls back to the padded width T, which moves with the padding (rows padded to 32,
  64 or 256 tokens give 8x different losses); pass it whenever the batch is cut to its longest row.

A row without a single completion token (an *empty row*: a micro-batch's padding row, a completion cut to 0
tokens) adds 0 to the ``seq_mean_token_mean`` sum; ``empty_rows`` says whether it still counts in the divisor:
``"batch"`` (default) divides by all B rows, as TRL's ``loss_type="grpo"`` does (``.mean()`` over rows);
``"nonempty"`` divides by the rows with at least one token, as verl's ``agg_loss`` and tunix do.

verl's dual clip (``clip_ratio_c = c > 1``, Ye et al. 2020) bounds the loss of a token with a negative advantage
from above: for A < 0 the policy term is ``min(max(-rho A, -clip(rho) A), -c A)``, so a ratio far above 1 cannot
push an unlikely token's loss (and gradient) without limit; tokens with A >= 0 are unchanged. ``None`` (default)
is the plain clipped objective.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

KL = Literal["k1", "k2", "k3"]
Agg = Literal["seq_mean_token_mean", "token_mean", "seq_mean_token_sum_norm"]
EmptyRows = Literal["batch", "nonempty"]

# exp(20) ~ 4.9e8: keeps the ratio finite when a stale sample is far off-policy.
LOG_RATIO_CLAMP = 20.0


def kl_estimate(logps: Float[Array, "B T"], ref_logps: Float[Array, "B T"], kind: KL = "k3") -> Float[Array, "B T"]:
    """Per-token estimate of KL(pi || ref) from log-probs of tokens sampled from pi.

    ``k3`` for ``delta = ref - logp > LOG_RATIO_CLAMP`` (C) uses ``exp(C) * (1 + delta - C)`` in place of
    ``exp(delta)``, so there its gradient w.r.t. logp is ``1 - exp(C)`` (about -4.85e8): the sign of the exact
    gradient ``1 - exp(delta)``, bounded in size. Below the clamp it is the exact formula and gradient.
    """
    delta = ref_logps - logps
    if kind == "k3":
        # Past delta = C = LOG_RATIO_CLAMP, exp is continued by its tangent at C, exp(C) * (1 + delta - C): the
        # value and gradient stay finite and continuous, and d k3 / d logp = 1 - exp(C) keeps the sign of the true
        # gradient 1 - exp(delta) (clamping only the exponent left the linear term, a gradient of +1 that pushed
        # logp further away from the reference). Exact for delta <= C.
        clamped = jnp.minimum(delta, LOG_RATIO_CLAMP)
        return jnp.exp(clamped) * (1.0 + (delta - clamped)) - delta - 1.0
    if kind == "k1":
        return -delta
    if kind == "k2":
        return 0.5 * delta**2
    raise ValueError(f"kl must be 'k1', 'k2' or 'k3', got {kind!r}")


def aggregate(
    per_token: Float[Array, "B T"],
    mask: Float[Array, "B T"],
    agg: Agg,
    max_len: int | None = None,
    *,
    empty_rows: EmptyRows = "batch",
):
    """Reduce a masked per-token quantity to a scalar with one of the three GRPO aggregation modes
    (``empty_rows``: the ``seq_mean_token_mean`` divisor, see the module docstring)."""
    mask = mask.astype(per_token.dtype)
    summed = per_token * mask
    if agg == "seq_mean_token_mean":
        per_seq = summed.sum(-1) / jnp.maximum(mask.sum(-1), 1.0)
        return per_seq.sum() / _seq_divisor(mask, empty_rows)
    if agg == "token_mean":
        return summed.sum() / jnp.maximum(mask.sum(), 1.0)
    if agg == "seq_mean_token_sum_norm":
        length = per_token.shape[-1] if max_len is None else max_len
        return summed.sum() / (per_token.shape[0] * length)
    raise ValueError(f"agg must be one of seq_mean_token_mean, token_mean, seq_mean_token_sum_norm; got {agg!r}")


def _seq_divisor(mask, empty_rows: str):
    """The number of rows ``seq_mean_token_mean`` divides by: all of them, or those with a token (>= 1)."""
    if empty_rows == "batch":
        return jnp.float32(mask.shape[0])
    if empty_rows == "nonempty":
        return jnp.maximum((mask.sum(-1) > 0).sum(), 1).astype(jnp.float32)
    raise ValueError(f"empty_rows must be 'batch' or 'nonempty', got {empty_rows!r}")


def _masked_stats(x, mask, prefix):
    m = mask > 0
    n = jnp.maximum(m.sum(), 1)
    mean = jnp.where(m, x, 0.0).sum() / n
    return {
        f"{prefix}_mean": mean,
        f"{prefix}_min": jnp.where(m, x, jnp.inf).min(),
        f"{prefix}_max": jnp.where(m, x, -jnp.inf).max(),
    }


def grpo_loss(
    logps: Float[Array, "B T"],
    old_logps: Float[Array, "B T"] | None,
    ref_logps: Float[Array, "B T"] | None,
    advantages: Float[Array, " B"] | Float[Array, "B T"],
    mask: Float[Array, "B T"],
    *,
    epsilon_low: float = 0.2,
    epsilon_high: float = 0.2,
    beta: float = 0.04,
    kl: KL = "k3",
    agg: Agg = "seq_mean_token_mean",
    max_len: int | None = None,
    clip_ratio_c: float | None = None,
    empty_rows: EmptyRows = "batch",
) -> tuple[Float[Array, ""], dict[str, Float[Array, ""]]]:
    """GRPO loss and diagnostics.

    Args:
      logps: [B, T] float32 log-probs of the completion tokens under the policy being optimised.
      old_logps: [B, T] log-probs under the policy that sampled them (cached before the first of the mu
        updates). ``None`` means on-policy (``stop_gradient(logps)``: ratio 1, gradient of ``-A * logp``).
      ref_logps: [B, T] log-probs under the frozen reference; may be ``None`` only when ``beta == 0``.
      advantages: [B] (broadcast over tokens) or [B, T].
      mask: [B, T] 1 for completion tokens, 0 for padding (bool or float).
      epsilon_low, epsilon_high: the clip range ``[1 - epsilon_low, 1 + epsilon_high]`` (DAPO's clip-higher when
        they differ).
      beta: KL coefficient (0.04 in the paper; 0.001 in its hallucination ablation).
      kl: which estimator of KL(pi || ref): ``"k3"`` (default), ``"k1"``, ``"k2"``.
      agg: token aggregation, see the module docstring.
      max_len: the constant divisor of ``seq_mean_token_sum_norm``: the answer-token budget (see the module
        docstring); None = the padded width T.
      clip_ratio_c: verl's dual-clip bound ``c > 1`` on negative-advantage tokens (module docstring); None = off.
      empty_rows: ``seq_mean_token_mean``'s divisor, ``"batch"`` (TRL) or ``"nonempty"`` (verl, tunix).

    Returns:
      ``(loss, metrics)``; metrics (all stop-gradient scalars): ``clip_frac_low`` / ``clip_frac_high`` (tokens whose
      ratio is below / above the range with a negative / positive advantage, i.e. the ones the clip zeroes),
      ``clip_frac``, ``clip_frac_dual`` (negative-advantage tokens held at ``-c A`` by the dual clip),
      ``kl_mean``, ``ratio_mean/min/max``, ``adv_mean/std/min/max``, ``pg_loss``, ``num_tokens``.
    """
    logps = jnp.asarray(logps, jnp.float32)
    if logps.ndim != 2:
        raise ValueError(f"logps must be [B, T], got {logps.shape}")
    mask = jnp.asarray(mask).astype(jnp.float32)
    if mask.shape != logps.shape:
        raise ValueError(f"mask shape {mask.shape} != logps shape {logps.shape}")
    if not 0.0 <= epsilon_low < 1.0 or epsilon_high < 0.0:
        raise ValueError(f"need 0 <= epsilon_low < 1 and epsilon_high >= 0, got {epsilon_low}, {epsilon_high}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if clip_ratio_c is not None and not clip_ratio_c > 1.0:
        raise ValueError(f"clip_ratio_c must be > 1 (or None), got {clip_ratio_c}")
    adv = jnp.asarray(advantages, jnp.float32)
    if adv.ndim == 1:
        adv = adv[:, None]
    adv = jnp.broadcast_to(adv, logps.shape)
    old = jax.lax.stop_gradient(logps) if old_logps is None else jnp.asarray(old_logps, jnp.float32)

    log_ratio = jnp.clip(logps - old, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = jnp.exp(log_ratio)
    clipped = jnp.clip(ratio, 1.0 - epsilon_low, 1.0 + epsilon_high)
    pg = -jnp.minimum(ratio * adv, clipped * adv)
    dual = jnp.zeros_like(pg)
    if clip_ratio_c is not None:  # verl's dual clip: for A < 0 the loss is at most -c A
        bound = -clip_ratio_c * adv
        dual = ((adv < 0) & (pg > bound)).astype(jnp.float32)
        pg = jnp.where(adv < 0, jnp.minimum(pg, bound), pg)
    per_token = pg
    kl_tok = None
    if beta > 0.0 or ref_logps is not None:
        if ref_logps is None:
            raise ValueError("ref_logps is required when beta > 0")
        kl_tok = kl_estimate(logps, jnp.asarray(ref_logps, jnp.float32), kl)
        if beta > 0.0:
            per_token = pg + beta * kl_tok
    loss = aggregate(per_token, mask, agg, max_len, empty_rows=empty_rows)

    sg = jax.lax.stop_gradient
    n_tok = jnp.maximum(mask.sum(), 1.0)
    low = ((ratio < 1.0 - epsilon_low) & (adv < 0)).astype(jnp.float32)
    high = ((ratio > 1.0 + epsilon_high) & (adv > 0)).astype(jnp.float32)
    adv_rows = adv[:, 0]
    metrics = {
        "pg_loss": sg(aggregate(pg, mask, agg, max_len, empty_rows=empty_rows)),
        "clip_frac_low": sg((low * mask).sum() / n_tok),
        "clip_frac_high": sg((high * mask).sum() / n_tok),
        "clip_frac": sg(((low + high) * mask).sum() / n_tok),
        "clip_frac_dual": sg((dual * mask).sum() / n_tok),
        "kl_mean": sg((kl_tok * mask).sum() / n_tok) if kl_tok is not None else jnp.float32(0.0),
        "adv_mean": sg(adv_rows.mean()),
        "adv_std": sg(adv_rows.std()),
        "adv_min": sg(adv_rows.min()),
        "adv_max": sg(adv_rows.max()),
        "num_tokens": sg(mask.sum()),
    }
    metrics.update({k: sg(v) for k, v in _masked_stats(ratio, mask, "ratio").items()})
    return loss, metrics
