"""GRPO in pure JAX: advantages, token log-probs, the clipped + KL-regularised loss.

Public API::

    group_advantages(rewards, group_size, scale="group"|"batch"|"none", eps=1e-4, unbiased=True)
    zero_variance_fraction(rewards, group_size)
    token_logprobs(logits, tokens, chunk_size=None, temperature=1.0)   # float32, no full f32 copy
    token_entropy(logits, chunk_size=None, temperature=1.0)
    head_token_logprobs(hidden, kernel, tokens, chunk_size=128, temperature=1.0)  # lm_head fused per chunk
    grpo_loss(logps, old_logps, ref_logps, advantages, mask, *, epsilon_low=0.2, epsilon_high=0.2,
              beta=0.04, kl="k3"|"k1"|"k2", agg="seq_mean_token_mean"|"token_mean"|"seq_mean_token_sum_norm",
              max_len=None) -> (loss, metrics)
    kl_estimate(logps, ref_logps, kind), aggregate(per_token, mask, agg, max_len)
"""

from omnir1_jax.rl.advantages import group_advantages, zero_variance_fraction
from omnir1_jax.rl.logprobs import head_token_logprobs, token_entropy, token_logprobs
from omnir1_jax.rl.loss import LOG_RATIO_CLAMP, aggregate, grpo_loss, kl_estimate

__all__ = [
    "LOG_RATIO_CLAMP",
    "aggregate",
    "group_advantages",
    "grpo_loss",
    "head_token_logprobs",
    "kl_estimate",
    "token_entropy",
    "token_logprobs",
    "zero_variance_fraction",
]
