"""Compatibility shim for the training entry point: evaluation and figures live in :mod:`omnir1_jax.evaluation`.

``evaluate_split`` and ``plot_rewards`` keep their old call signatures (``omnir1_jax.train`` uses them) and are
thin wrappers over :func:`omnir1_jax.evaluation.evaluate_policy` and
:func:`omnir1_jax.evaluation.plot_rewards`.
"""

from __future__ import annotations

import os
from typing import Any

from omnir1_jax.evaluation.figures import plot_rewards  # noqa: F401  (same positional arguments as before)

REWARD_KEYS = ("reward/total", "reward/format", "reward/keyframe", "reward/alignment", "reward/grounding")


def evaluate_split(cfg, policy, tokenizer, records, bridge, *, tag: str, max_expressions: int | None = None,
                   overlays: int = 3) -> dict[str, Any]:
    """J&F of the two-system pipeline on ``records`` (benchmark protocol, full videos), written under
    ``<run.out_dir>/eval/<tag>/`` (``results.jsonl``, ``summary.json``, ``summary.md``, ``overlays/``); see
    :func:`omnir1_jax.evaluation.evaluate_policy`. ``max_expressions`` defaults to
    ``run.eval_max_expressions``."""
    from omnir1_jax.evaluation import evaluate_policy

    return evaluate_policy(cfg, policy, tokenizer, records, client=bridge.client,
                           out_dir=os.path.join(cfg.run.out_dir, "eval"), tag=tag,
                           max_items=max_expressions or None, overlays=overlays)
