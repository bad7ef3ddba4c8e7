"""CrossOmni multiple-choice QA (paper 004, section 4.2): clip + audio + Table-17 prompt; rewards format,
accuracy and the judge-scored contextual consistency / logical coherence; SFT targets are the CoT rationale +
letter (``sft.target = rationale``) or the letter alone (``answer``).

The task owns its judge: it builds it (:func:`omnir1_jax.tasks.crossomni_judge.make_judge`: a Python callable, or a
judge bridge it talks to), hands it to the rewards as a value, and closes it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omnir1_jax.config import ConfigError, ExperimentConfig
from omnir1_jax.crossomni.batches import qa_batch
from omnir1_jax.crossomni.prompts import sft_target
from omnir1_jax.crossomni.rewards import QARewardWeights, qa_rewards
from omnir1_jax.tasks.base import RecordBatches, Scored, Task
from omnir1_jax.tasks.crossomni_judge import make_judge


class CrossOmniQATask(Task):
    """The ``qa`` task; ``judge`` is a judge spec (``python:MODULE:FUNCTION``, ``bridge:ADDRESS``, ``hf:PATH``), a
    callable (``list[str] -> list[str]`` with ``batched = True``, else ``str -> str``) or None when no
    judge-scored term has a weight (see :func:`omnir1_jax.tasks.crossomni_judge.make_judge`)."""

    name = "crossomni_qa"

    def __init__(self, cfg: ExperimentConfig, tokenizer, judge=None):
        self.cfg, self.tokenizer = cfg, tokenizer
        self.judge = make_judge(judge, run_dir=cfg.run.out_dir)
        self.qa_weights = QARewardWeights()
        self.weights = {
            "format": self.qa_weights.format,
            "accuracy": self.qa_weights.accuracy,
            "consistency": self.qa_weights.consistency,
            "coherence": self.qa_weights.coherence,
        }

    def batches(
        self, records: Sequence[Any], *, batch_size: int, seed: int, sft: bool = False, share: tuple[int, int] = (0, 1)
    ):
        return RecordBatches(
            records,
            lambda chunk: qa_batch(chunk, self.tokenizer, self.cfg.data),
            batch_size=batch_size,
            seed=seed,
            share=share,
        )

    def score(self, batch: dict[str, Any], texts: Sequence[str], group_size: int) -> Scored:
        rows = [r for r in batch["records"] for _ in range(group_size)]
        rewards, comps, judge_metrics = qa_rewards(list(texts), rows, self.judge, self.qa_weights)
        return Scored(rewards, comps, {f"judge/{k}": float(v) for k, v in judge_metrics.items()})

    def sft_targets(self, batch: dict[str, Any]) -> list[str]:
        target = self.cfg.sft.target
        if target not in ("rationale", "answer"):
            raise ConfigError(f"sft.target for CrossOmni must be 'rationale' or 'answer', got {target!r}")
        return [sft_target(r, with_rationale=target == "rationale") for r in batch["records"]]

    def close(self) -> None:
        if self.judge is not None and hasattr(self.judge, "close"):
            self.judge.close()
