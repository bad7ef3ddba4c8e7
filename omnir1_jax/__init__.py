"""omnir1-jax: Omni-R1 two-system omni-modal reasoning and CrossOmni GRPO in JAX.

Subpackages (import what you need; nothing heavy is imported here):

- :mod:`omnir1_jax.rewards` — answer parsing and every reward of the papers (pure functions).
- :mod:`omnir1_jax.rl` — GRPO advantages, token log-probs and the clipped, KL-regularised loss.
- :mod:`omnir1_jax.evaluation.metrics` — DAVIS J&F (numpy reference + batched JAX), QA accuracy, statistics;
  :mod:`omnir1_jax.evaluation.protocols` — the dataset protocols; :mod:`omnir1_jax.evaluation` — the evaluator.
- :mod:`omnir1_jax.models` — the Flax Qwen2.5-Omni Thinker policy.
- :mod:`omnir1_jax.data` — Grain pipelines and the synthetic world.

This package never imports PyTorch; the PyTorch side lives in :mod:`sam2_bridge`.
"""

__version__ = "0.1.0"
