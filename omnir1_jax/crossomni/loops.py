"""CrossOmni training and answering loops on the Flax Thinker (paper 004, section 4.2.2 and appendix B.2).

- :func:`qa_sft`: CoT supervision (``<think> rationale </think>`` + letter) with LoRA (rank 16, alpha 32,
  lr 1e-5, batch 32, one epoch in the paper) through :func:`omnir1_jax.rl.update.nll_step`; the factors are
  merged into the returned policy.
- :class:`QAGRPO`: GRPO from the SFT policy (lr 5e-6, batch 16, 4 rollouts, one epoch) with the format,
  accuracy and judge-scored consistency / coherence rewards, through :func:`omnir1_jax.rl.update.grpo_step`.
- :func:`greedy_answers`: the evaluation's answers.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable, Iterator, Sequence

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np

from omnir1_jax.config import ConfigError, ExperimentConfig
from omnir1_jax.crossomni.batches import iterate_batches
from omnir1_jax.crossomni.prompts import sft_target
from omnir1_jax.crossomni.rewards import QARewardWeights, qa_rewards


def eos_pad(tokenizer):
    """(EOS ids, pad id) of ``tokenizer`` as the samplers take them (pad 0 when the tokenizer has none)."""
    from omnir1_jax.trainer import eos_ids_of

    return eos_ids_of(tokenizer), tokenizer.pad_token_id or 0


def greedy_answers(cfg: ExperimentConfig, policy, tokenizer, records: Sequence) -> Iterator[tuple[Any, str]]:
    """``(record, greedy completion)`` for each record, batched by ``cfg.data.batch_size``."""
    from omnir1_jax.models.qwen2_5_omni import generate
    from omnir1_jax.models.qwen2_5_omni.thinker import as_model_inputs
    from omnir1_jax.rl.rollout import decode_completions

    eos, pad = eos_pad(tokenizer)
    for chunk, batch in iterate_batches(list(records), tokenizer, cfg.data, cfg.data.batch_size, shuffle=False):
        out = generate(policy, as_model_inputs(policy.config, batch["model_inputs"]),
                       max_new_tokens=cfg.grpo.max_new_tokens, greedy=True, eos_token_id=eos, pad_token_id=pad)
        texts = decode_completions(tokenizer, np.asarray(out.tokens), np.asarray(out.lengths), eos)
        yield from zip(chunk, texts)


def qa_sft(cfg: ExperimentConfig, policy, tokenizer, records: Sequence, *, steps: int | None = None,
           writer=None, progress: bool = True) -> tuple[Any, list[dict]]:
    """Supervised fine-tuning on the records' rationales; returns ``(policy with LoRA merged, history)``.

    ``cfg.sft``: ``lora_rank`` (0 = full fine-tuning), ``lora_alpha``, ``lr``, ``batch_size``,
    ``weight_decay``, ``target`` (``rationale``: CoT supervision; ``answer``: the letter only), ``steps``
    (0 = one epoch).
    """
    from omnir1_jax.lora import apply_lora, merge_lora
    from omnir1_jax.models.qwen2_5_omni.thinker import as_model_inputs
    from omnir1_jax.rl.update import make_optimizer, nll_step
    from omnir1_jax.sft import tokenize_targets
    from omnir1_jax.trainer import make_scorer

    s = cfg.sft
    if s.target not in ("rationale", "answer"):
        raise ConfigError(f"sft.target for CrossOmni must be 'rationale' or 'answer', got {s.target!r}")
    model = apply_lora(policy, s.lora_rank, s.lora_alpha, seed=cfg.run.seed) if s.lora_rank > 0 else policy
    opt = nnx.Optimizer(model, make_optimizer(s.lr, weight_decay=s.weight_decay, grad_clip=1.0), wrt=nnx.Param)
    scorer = make_scorer(cfg.model.remat, 1.0)
    eos, pad = eos_pad(tokenizer)
    total = steps if steps is not None else (s.steps or math.ceil(len(records) / s.batch_size))
    it = iterate_batches(list(records), tokenizer, cfg.data, s.batch_size, seed=cfg.run.seed, epochs=None)
    hist, t0 = [], time.time()
    for i in range(total):
        chunk, batch = next(it)
        ids, mask = tokenize_targets(tokenizer, [sft_target(r, with_rationale=s.target == "rationale")
                                                 for r in chunk], eos[0], pad)
        m = {k: float(v) for k, v in nll_step(model, opt, as_model_inputs(model.config, batch["model_inputs"]), ids,
                                               mask, scorer=scorer).items()}
        hist.append(m)
        if writer is not None:
            writer.write(i + 1, m, prefix="sft/")
        if progress:
            print(f"[crossomni sft] step {i + 1}/{total} loss={m['loss']:.4f} ({time.time() - t0:.0f}s)", flush=True)
    return (merge_lora(model) if s.lora_rank > 0 else model), hist


class QAGRPO:
    """GRPO on CrossOmni questions: sample ``group_size`` answers per question, score, update."""

    def __init__(self, cfg: ExperimentConfig, policy, tokenizer, records: Sequence, judge: Callable | None,
                 weights: QARewardWeights = QARewardWeights()):
        from omnir1_jax.rl.update import LossSpec, make_optimizer
        from omnir1_jax.runtime.setup import frozen_copy
        from omnir1_jax.trainer import make_scorer

        self.cfg, self.policy, self.tokenizer, self.judge, self.weights = cfg, policy, tokenizer, judge, weights
        g, o = cfg.grpo, cfg.optim
        self.reference = frozen_copy(policy) if g.beta > 0 else None
        self.loss_spec = LossSpec(epsilon_low=g.epsilon_low, epsilon_high=g.epsilon_high, beta=g.beta, kl=g.kl,
                                  agg=g.agg)
        self.optimizer = nnx.Optimizer(policy, make_optimizer(o.lr, weight_decay=o.weight_decay, b1=o.b1, b2=o.b2,
                                                              eps=o.eps, warmup_steps=o.warmup_steps,
                                                              grad_clip=o.grad_clip), wrt=nnx.Param)
        self.scorer = make_scorer(cfg.model.remat, g.temperature)
        self.eos, self.pad = eos_pad(tokenizer)
        self.data = iterate_batches(list(records), tokenizer, cfg.data, cfg.data.batch_size, seed=cfg.run.seed,
                                    epochs=None)
        self.key = jax.random.key(cfg.run.seed)
        self.step_count = 0

    def step(self) -> dict[str, float]:
        from omnir1_jax.models.qwen2_5_omni import generate, repeat_prompt
        from omnir1_jax.models.qwen2_5_omni.thinker import as_model_inputs
        from omnir1_jax.rl import group_advantages, zero_variance_fraction
        from omnir1_jax.rl.rollout import decode_completions, summarize
        from omnir1_jax.rl.update import grpo_step, score

        g = self.cfg.grpo
        n = g.group_size
        t0 = time.perf_counter()
        chunk, batch = next(self.data)
        prompt = as_model_inputs(self.policy.config, batch["model_inputs"])
        self.key, sk = jax.random.split(self.key)
        out = generate(self.policy, prompt, max_new_tokens=g.max_new_tokens, key=sk, num_samples=n,
                       temperature=g.temperature, top_k=g.top_k, top_p=g.top_p, eos_token_id=self.eos,
                       pad_token_id=self.pad)
        tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
        texts = decode_completions(self.tokenizer, tokens, lengths, self.eos)
        t1 = time.perf_counter()
        rewards, comps, judge_metrics = qa_rewards(texts, [r for r in chunk for _ in range(n)], self.judge,
                                                   self.weights)
        t2 = time.perf_counter()
        adv = group_advantages(jnp.asarray(rewards), n, g.adv_scale, g.adv_eps)
        width = min(max(32, -(-int(lengths.max()) // 32) * 32), tokens.shape[1])
        mask = jnp.asarray((np.arange(width)[None] < lengths[:, None]).astype(np.int32))
        args = (repeat_prompt(prompt, n), jnp.asarray(tokens[:, :width]), mask)
        old = score(self.policy, *args, scorer=self.scorer) if g.mu > 1 else None
        ref = score(self.reference, *args, scorer=self.scorer) if self.reference is not None else None
        for _ in range(g.mu):
            m = grpo_step(self.policy, self.optimizer, *args, old, ref, adv, scorer=self.scorer, spec=self.loss_spec)
        metrics = {k: float(v) for k, v in jax.device_get(m).items()}
        metrics.update(summarize(comps, "reward/"))
        metrics.update(summarize({"total": rewards}, "reward/"))
        metrics.update({f"judge/{k}": v for k, v in judge_metrics.items()})
        metrics["zero_variance_groups"] = float(zero_variance_fraction(jnp.asarray(rewards), n))
        metrics["response_length"] = float(lengths.mean())
        metrics.update({"time/rollout": t1 - t0, "time/reward": t2 - t1, "time/step": time.perf_counter() - t0})
        if not all(math.isfinite(metrics[k]) for k in ("loss", "reward/total")):
            raise FloatingPointError(f"step {self.step_count + 1}: non-finite loss or reward: {metrics}")
        self.step_count += 1
        self.last_texts = texts
        return metrics

    def train(self, steps: int, *, writer=None, progress: bool = True) -> list[dict[str, float]]:
        hist = []
        while self.step_count < steps:
            m = self.step()
            hist.append(m)
            if writer is not None:
                writer.write(self.step_count, m)
            if progress:
                print(f"[crossomni grpo] step {self.step_count}/{steps} loss={m['loss']:.4f} "
                      f"reward={m['reward/total']:.3f} acc={m['reward/accuracy']:.3f}", flush=True)
        return hist


def run(cfg: ExperimentConfig, *, stage: str = "both", judge=None, policy=None, tokenizer=None,
        sft_steps: int | None = None, grpo_steps: int | None = None, save: str | None = None,
        progress: bool = True) -> dict[str, Any]:
    """SFT (``stage`` sft / both) then GRPO (grpo / both) on ``cfg.data``'s train split; metrics go to
    ``<run.out_dir>/metrics.jsonl``; ``save`` writes the final policy as a Hugging Face directory."""
    from omnir1_jax.crossomni.batches import read_split
    from omnir1_jax.runtime import setup as S
    from omnir1_jax.runtime.metrics import MetricsWriter

    if stage not in ("sft", "grpo", "both"):
        raise ConfigError(f"stage must be sft, grpo or both, got {stage!r}")
    os.makedirs(cfg.run.out_dir, exist_ok=True)
    tokenizer = tokenizer or S.build_tokenizer(cfg.model)
    policy = policy if policy is not None else S.build_policy(cfg.model, seed=cfg.run.seed)
    records = read_split(cfg.data, cfg.data.split)
    out: dict[str, Any] = {"name": cfg.name}
    with MetricsWriter(cfg.run.out_dir, tensorboard=False) as writer:
        if stage in ("sft", "both"):
            policy, hist = qa_sft(cfg, policy, tokenizer, records, steps=sft_steps, writer=writer, progress=progress)
            out["sft_final_loss"] = hist[-1]["loss"] if hist else None
        if stage in ("grpo", "both"):
            steps = grpo_steps if grpo_steps is not None else cfg.run.steps
            trainer = QAGRPO(cfg, policy, tokenizer, records, judge)
            hist = trainer.train(steps, writer=writer, progress=progress)
            out["grpo_last"] = hist[-1] if hist else None
    if save:
        from omnir1_jax.models.qwen2_5_omni import to_hf

        to_hf(policy, save, overwrite=True)
    out["policy"] = policy
    return out
