"""CrossOmni GRPO rewards for whole groups: values in, values out.

Total reward of a completion (paper 004, section 4.2.2; equal weights by default, each term in [0, 1])::

    R = w_fmt * R_format + w_acc * R_accuracy + w_cons * R_consistency + w_coh * R_coherence

``R_consistency`` compares the completion's ``<think>`` with the record's reference rationale (judge score 0-5,
/5); ``R_coherence`` rates it alone (0-3, /3) — :func:`omnir1_jax.rewards.judge_reward` with the Table-18
prompts. The judge arrives as a value: any batched callable ``list[str] -> list[str]``. Building one (a Python
callable, a judge bridge) is the CrossOmni task's business (:mod:`omnir1_jax.tasks.crossomni_judge`); nothing here
talks to a bridge.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from omnir1_jax.rewards import choice_accuracy_reward, judge_reward, think_format_reward


@dataclasses.dataclass(frozen=True)
class QARewardWeights:
    """Weights of the four CrossOmni reward terms (0 disables a term; the judge is then not called for it)."""

    format: float = 1.0
    accuracy: float = 1.0
    consistency: float = 1.0
    coherence: float = 1.0

    @property
    def needs_judge(self) -> bool:
        return self.consistency > 0 or self.coherence > 0


def qa_rewards(
    completions: Sequence[str], records: Sequence, judge: Callable | None, weights: QARewardWeights = QARewardWeights()
) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """Rewards of completions ``[N]`` with their records ``[N]`` (a group repeats its record).

    Returns ``(total [N] float32, components {format, accuracy, consistency, coherence} [N], judge metrics)``.
    """
    if len(records) != len(completions):
        raise ValueError(f"{len(completions)} completions but {len(records)} records")
    n = len(completions)
    comps = {
        "format": think_format_reward(completions),
        "accuracy": choice_accuracy_reward(completions, [r.answer for r in records]),
        "consistency": np.zeros(n, np.float32),
        "coherence": np.zeros(n, np.float32),
    }
    metrics: dict[str, float] = {}
    if weights.needs_judge:
        if judge is None:
            raise ValueError("consistency / coherence weights > 0 need a judge (--judge ...)")
        if weights.consistency > 0:
            comps["consistency"], m = judge_reward(
                judge, "consistency", completions, [r.rationale or "" for r in records], batched=True
            )
            metrics.update({f"consistency/{k}": v for k, v in m.items()})
        if weights.coherence > 0:
            comps["coherence"], m = judge_reward(judge, "coherence", completions, batched=True)
            metrics.update({f"coherence/{k}": v for k, v in m.items()})
    total = sum(getattr(weights, k) * comps[k] for k in comps).astype(np.float32)
    return total, comps, metrics
