"""CrossOmni evaluation answers (greedy completions per record); training runs through the one learner
(:mod:`omnir1_jax.learner` with the ``crossomni_qa`` task, :mod:`omnir1_jax.crossomni.train`)."""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from omnir1_jax.config import ExperimentConfig
from omnir1_jax.crossomni.batches import iterate_batches


def greedy_answers(cfg: ExperimentConfig, policy, tokenizer, records: Sequence) -> Iterator[tuple[Any, str]]:
    """``(record, greedy completion)`` for each record, batched by ``cfg.data.batch_size``."""
    from omnir1_jax.policy import complete

    for chunk, batch in iterate_batches(list(records), tokenizer, cfg.data, cfg.data.batch_size, shuffle=False):
        out = complete(policy, tokenizer, batch["model_inputs"], max_new_tokens=cfg.grpo.max_new_tokens)
        yield from zip(chunk, out.texts)
