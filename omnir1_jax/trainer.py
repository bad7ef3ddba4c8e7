"""The GRPO trainer: policy -> bridge -> rewards -> update (Omni-R1 section 3.2; SPEC section 4).

One step: take a batch of prompts, sample ``group_size`` answers per prompt with the KV-cached sampler, parse
them, send each group's keyframe queries to the bridge (all groups in flight at once), compute the rewards and
group-normalised advantages, then ``mu`` AdamW updates of the clipped GRPO loss with a KL penalty to the frozen
reference. Metrics go to stdout, ``metrics.jsonl`` and TensorBoard; checkpoints (params, optimiser, step,
data-iterator state, PRNG key) every ``run.checkpoint_every`` steps; a restarted run resumes exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from typing import Any

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np

from omnir1_jax.config import ExperimentConfig, to_dict
from omnir1_jax.rewards import parse_answer
from omnir1_jax.rl import group_advantages, zero_variance_fraction
from omnir1_jax.rl import rollout as R
from omnir1_jax.rl.update import (
    LossSpec,
    apply_grads,
    grpo_grads,
    grpo_step,
    loss_weight,
    make_optimizer,
    score,
)
from omnir1_jax.runtime import distributed as D
from omnir1_jax.runtime import setup as S
from omnir1_jax.runtime.checkpoint import RunCheckpointer, key_from_data, key_to_data
from omnir1_jax.runtime.metrics import MetricsWriter, format_metrics


class TrainingDivergedError(RuntimeError):
    """The loss or a reward became NaN / infinite; the last good checkpoint is left intact."""


def _bucket(n: int, multiple: int = 32) -> int:
    return max(multiple, -(-n // multiple) * multiple)


def eos_ids_of(tokenizer) -> list[int]:
    ids = {tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(i for i in ids if i is not None and i >= 0)


@functools.lru_cache(maxsize=None)  # one object per setting: it is a static jit argument (cache key)
def make_scorer(remat: bool, temperature: float, group_size: int | None = None):
    """The policy's completion scorer (a fixed function object, so jit caches stay warm).

    With ``group_size`` the rows are GRPO groups sharing a prompt (``repeat_prompt(inputs, group_size)``): the
    prompt is run once per group and the completions attend to the shared prefix — same log-probs and
    gradients as full rows, (group_size - 1) / group_size less prompt compute."""
    from omnir1_jax.models.qwen2_5_omni import completion_logprobs, group_completion_logprobs

    if group_size and group_size > 1:
        return functools.partial(group_completion_logprobs, group_size=group_size, remat=remat,
                                 temperature=temperature)
    return functools.partial(completion_logprobs, remat=remat, temperature=temperature)


@functools.lru_cache(maxsize=None)
def _cached_optimizer(lr, weight_decay, b1, b2, eps, warmup_steps, grad_clip):
    # The optax transformation is static in the optimiser's graph: a new one per trainer would recompile
    # grpo_step for every trainer object (a resumed run, tests building several trainers in one process).
    return make_optimizer(lr, weight_decay=weight_decay, b1=b1, b2=b2, eps=eps, warmup_steps=warmup_steps,
                          grad_clip=grad_clip)


class GRPOTrainer:
    """Owns the policy, its reference, the optimiser, the data iterator, the bridge and the run directory."""

    def __init__(self, cfg: ExperimentConfig, *, policy=None, tokenizer=None, bridge: S.Bridge | None = None,
                 records=None):
        self.cfg = cfg
        self.out_dir = cfg.run.out_dir
        os.makedirs(self.out_dir, exist_ok=True)
        self.primary = jax.process_index() == 0  # only process 0 writes config, metrics and logs
        if self.primary:
            with open(os.path.join(self.out_dir, "config.json"), "w") as f:
                json.dump(to_dict(cfg), f, indent=1)
        self.tokenizer = tokenizer or S.build_tokenizer(cfg.model)
        self.eos_ids = eos_ids_of(self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id or 0
        self.policy = policy if policy is not None else S.build_policy(cfg.model, seed=cfg.run.seed)
        # The config's mesh; in a multi-process run each process lays its replica out on its own slice of it.
        self.mesh, self.local_mesh = D.run_meshes(cfg.mesh)
        self.multi_process = jax.process_count() > 1
        if self.local_mesh is not None:
            from omnir1_jax.models.qwen2_5_omni import fsdp_tp, shard_model

            self.policy = shard_model(self.policy, self.local_mesh, fsdp_tp())
        self.reference = S.frozen_copy(self.policy) if cfg.grpo.beta > 0 else None
        g = cfg.grpo
        self.loss_spec = LossSpec(epsilon_low=g.epsilon_low, epsilon_high=g.epsilon_high, beta=g.beta, kl=g.kl,
                                  agg=g.agg)
        o = cfg.optim
        tx = _cached_optimizer(o.lr, o.weight_decay, o.b1, o.b2, o.eps, o.warmup_steps, o.grad_clip)
        self.optimizer = nnx.Optimizer(self.policy, tx, wrt=nnx.Param)
        self.scorer = make_scorer(cfg.model.remat, g.temperature, g.group_size)
        self.records = records if records is not None else S.read_records(cfg.data, cfg.data.split)
        # multi-process: every process reads its own share of the records and of the global batch
        self.local_records, local_batch = D.shard_records(self.records, cfg.data.batch_size)
        self._pipe_cfg = S.pipeline_config(cfg.data, train=True, seed=cfg.run.seed, batch_size=local_batch)
        from omnir1_jax.data import build_pipeline

        self._pipeline = build_pipeline(self.local_records, self.tokenizer, self._pipe_cfg)
        self.data_iter = iter(self._pipeline)
        self.key = jax.random.key(cfg.run.seed)
        self.step = 0
        self.checkpointer = RunCheckpointer(self.out_dir, keep=cfg.run.keep_checkpoints)
        self.bridge = bridge
        self._own_bridge = bridge is None
        self.writer = MetricsWriter(self.out_dir) if self.primary else None
        if cfg.run.resume:
            self.restore()

    # ----------------------------------------------------------------------------------------- state
    def _state(self) -> dict[str, Any]:
        """Everything array-valued that determines the next step. The frozen reference is included: on a
        resume the policy handed in is not the one the reference was copied from (e.g. ``train.py`` skips the
        SFT warm-up when resuming), so it must come from the checkpoint too."""
        state = {"params": nnx.state(self.policy, nnx.Param), "opt": nnx.state(self.optimizer),
                 "key": key_to_data(self.key)}
        if self.reference is not None:
            state["reference"] = nnx.state(self.reference, nnx.Param)
        return state

    def save(self) -> None:
        meta = {"step": self.step, "data_state": self.data_iter.get_state(), "config": to_dict(self.cfg)}
        state = self._state()
        if self.multi_process:  # one global array per leaf: Orbax writes each replicated leaf once
            state = D.to_global(state, self.mesh, self.local_mesh)
        self.checkpointer.save(self.step, state, meta)

    def restore(self) -> bool:
        template = self._state()
        if self.multi_process:
            template = D.to_global(template, self.mesh, self.local_mesh)
        got = self.checkpointer.restore(template)
        if got is None:
            return False
        step, state, meta = got
        if self.multi_process:
            state = D.from_global(state, self.local_mesh)
        nnx.update(self.policy, state["params"])
        nnx.update(self.optimizer, state["opt"])
        if self.reference is not None:
            nnx.update(self.reference, state["reference"])
        self.key = key_from_data(state["key"])
        self.data_iter.set_state(meta["data_state"])
        self.step = int(meta["step"])
        print(f"[train] resumed from step {self.step} ({self.checkpointer.directory})", flush=True)
        return True

    def ensure_bridge(self) -> S.Bridge:
        if self.bridge is None:
            self.bridge = S.open_bridge(self.cfg.bridge, self.out_dir, data_roots=[self.cfg.data.root])
        return self.bridge

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.checkpointer.close()
        if self._own_bridge and self.bridge is not None:
            self.bridge.close()
            self.bridge = None

    # ------------------------------------------------------------------------------------------ step
    def rollout(self, batch: dict[str, Any], key) -> dict[str, Any]:
        """Sample, parse, query the bridge, score: everything of a step before the update."""
        from omnir1_jax.models.qwen2_5_omni import generate, repeat_prompt
        from omnir1_jax.models.qwen2_5_omni.thinker import as_model_inputs

        g = self.cfg.grpo
        n = g.group_size
        t0 = time.perf_counter()
        prompt = as_model_inputs(self.policy.config, batch["model_inputs"])
        out = generate(self.policy, prompt, max_new_tokens=g.max_new_tokens, key=key, num_samples=n,
                       temperature=g.temperature, top_k=g.top_k, top_p=g.top_p, eos_token_id=self.eos_ids,
                       pad_token_id=self.pad_id)
        tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
        t_sample = time.perf_counter() - t0
        texts = R.decode_completions(self.tokenizer, tokens, lengths, self.eos_ids)

        t1 = time.perf_counter()
        if self.cfg.data.task == "refaid":
            rewards, components, bridge_stats = self._refaid_rewards(batch, texts)
            return self._finish_rollout(prompt, tokens, lengths, texts, rewards, components, bridge_stats,
                                        t_sample, time.perf_counter() - t1)
        weights = g.rewards
        need_bridge = weights.alpha_a > 0 or weights.alpha_g > 0
        groups, futures = [], []
        for b in range(len(batch["num_frames"])):
            t = int(batch["num_frames"][b])
            rows = texts[b * n:(b + 1) * n]
            answers = [parse_answer(x, t, batch["fps_s1"]) for x in rows]
            queries = [R.keyframe_queries(a) for a in answers]
            groups.append((rows, answers, queries, t))
            if need_bridge:
                futures.append(self.ensure_bridge().client.submit_group(batch["frames"][b], queries))
        rewards, comps, bridge_stats = [], [], {"n_unparseable": 0, "n_detections": 0}
        for b, (rows, answers, queries, t) in enumerate(groups):
            result = futures[b].result().raise_for_status() if need_bridge else None
            if result is not None:
                bridge_stats["n_unparseable"] += result.n_unparseable
                bridge_stats["n_detections"] += result.n_detections
            r, c = R.group_rewards(rows, t, batch["gt_masks"][b], batch["gt_boxes"][b][:t],
                                   batch["gt_box_valid"][b][:t], result, queries, weights=weights,
                                   preset=g.reward_preset, fps=batch["fps_s1"], answers=answers)
            rewards.append(r)
            comps.append(c)
        rewards = np.concatenate(rewards)
        components = {k: np.concatenate([c[k] for c in comps]) for k in comps[0]}
        return self._finish_rollout(prompt, tokens, lengths, texts, rewards, components, bridge_stats, t_sample,
                                    time.perf_counter() - t1)

    def _refaid_rewards(self, batch, texts):
        """RefAID (appendix B): one description per rollout, System-2 boxes on the first frame, reward
        ``R_fmt + (1 - L_H(pred, gt))``; no segmentation."""
        from omnir1_jax.rewards import format_reward, parse_description, refaid_reward
        from sam2_bridge.protocol import Keyframe

        n = self.cfg.grpo.group_size
        rewards, fmt, box, stats = [], [], [], {"n_unparseable": 0, "n_detections": 0}
        for b in range(len(batch["num_frames"])):
            rows = texts[b * n:(b + 1) * n]
            descs = [parse_description(x) for x in rows]
            asked = [i for i, d in enumerate(descs) if d]
            pred = [np.zeros((0, 4), np.float32) for _ in rows]
            if asked:
                reply = self.ensure_bridge().client.ground(batch["frames"][b][:1],
                                                           [Keyframe(0, descs[i]) for i in asked])
                stats["n_unparseable"] += reply.n_unparseable
                for i, boxes in zip(asked, reply.boxes):
                    pred[i] = np.asarray(boxes, np.float32).reshape(-1, 4)
                    stats["n_detections"] += len(pred[i])
            gt = batch["gt_boxes"][b][:1] if batch["gt_box_valid"][b][0] else np.zeros((0, 4), np.float32)
            r = refaid_reward(rows, pred, gt)
            f = format_reward(rows)
            rewards.append(r)
            fmt.append(f)
            box.append(r - f)
        components = {"format": np.concatenate(fmt), "alignment": np.concatenate(box)}
        return np.concatenate(rewards), components, stats

    def _finish_rollout(self, prompt, tokens, lengths, texts, rewards, components, bridge_stats, t_sample, t_reward):
        from omnir1_jax.models.qwen2_5_omni import repeat_prompt

        g = self.cfg.grpo
        n = g.group_size
        adv = np.asarray(group_advantages(jnp.asarray(rewards), n, g.adv_scale, g.adv_eps))
        width = min(_bucket(int(lengths.max())), tokens.shape[1])
        mask = (np.arange(width)[None] < lengths[:, None]).astype(np.int32)
        return {
            "prompt": repeat_prompt(prompt, n), "completion_ids": jnp.asarray(tokens[:, :width]),
            "completion_mask": jnp.asarray(mask), "advantages": jnp.asarray(adv), "rewards": rewards,
            "components": components, "texts": texts, "lengths": lengths, "t_sample": t_sample,
            "t_reward": t_reward, "bridge": bridge_stats,
        }

    def update(self, ro: dict[str, Any]) -> dict[str, float]:
        g = self.cfg.grpo
        args = (ro["prompt"], ro["completion_ids"], ro["completion_mask"])
        old = score(self.policy, *args, scorer=self.scorer) if g.mu > 1 else None
        ref = score(self.reference, *args, scorer=self.scorer) if self.reference is not None else None
        metrics: dict[str, Any] = {}
        for _ in range(g.mu):
            if not self.multi_process:
                metrics = grpo_step(self.policy, self.optimizer, *args, old, ref, ro["advantages"],
                                    scorer=self.scorer, spec=self.loss_spec)
                continue
            # data parallel across processes: average the gradients (and metrics) of every process's rows,
            # weighted so that the result is the gradient of the global batch, then the same AdamW step
            grads, metrics = grpo_grads(self.policy, *args, old, ref, ro["advantages"], scorer=self.scorer,
                                        spec=self.loss_spec)
            grads, metrics = D.allreduce_mean((grads, metrics), loss_weight(ro["completion_mask"], self.loss_spec))
            metrics = dict(metrics, grad_norm=apply_grads(self.policy, self.optimizer, grads))
        return {k: float(v) for k, v in jax.device_get(metrics).items()}

    def train_step(self) -> dict[str, float]:
        t0 = time.perf_counter()
        batch = next(self.data_iter)
        t_data = time.perf_counter() - t0
        self.key, sk = jax.random.split(self.key)
        if self.multi_process:  # the replicas share self.key; each samples its own rows
            sk = jax.random.fold_in(sk, jax.process_index())
        ro = self.rollout(batch, sk)
        t1 = time.perf_counter()
        m = self.update(ro)
        t_update = time.perf_counter() - t1
        m.update(R.summarize(ro["components"], "reward/"))
        m.update(R.summarize({"total": ro["rewards"]}, "reward/"))
        m["response_length"] = float(np.mean(ro["lengths"]))
        m["zero_variance_groups"] = float(zero_variance_fraction(jnp.asarray(ro["rewards"]), self.cfg.grpo.group_size))
        m.update({f"bridge/{k}": float(v) for k, v in ro["bridge"].items()})
        elapsed = time.perf_counter() - t0
        m.update({"time/data": t_data, "time/rollout": ro["t_sample"], "time/reward": ro["t_reward"],
                  "time/update": t_update, "time/step": elapsed,
                  "tokens_per_s": float(np.sum(ro["lengths"])) / max(ro["t_sample"], 1e-9)})
        bad = [k for k in ("loss", "reward/total") if not math.isfinite(m.get(k, 0.0))]
        if bad:
            raise TrainingDivergedError(
                f"step {self.step + 1}: non-finite {', '.join(bad)} ({ {k: m[k] for k in bad} }); stopping. The last "
                f"good checkpoint is in {self.checkpointer.directory} (step {self.checkpointer.latest_step()})")
        self.step += 1
        self.last_texts = ro["texts"]
        return m

    def train(self, steps: int | None = None, *, progress: bool = True) -> list[dict[str, float]]:
        """Run until ``steps`` total steps (default ``run.steps``); returns the per-step metrics."""
        total = self.cfg.run.steps if steps is None else steps
        history = []
        keys = ("loss", "reward/total", "reward/grounding", "reward/keyframe", "kl_mean", "time/step")
        while self.step < total:
            m = self.train_step()
            history.append(m)
            if self.writer is not None:
                self.writer.write(self.step, m)
            if progress and self.primary:
                print(f"[train] step {self.step}/{total} {format_metrics(m, keys)}", flush=True)
            if self.cfg.run.checkpoint_every and self.step % self.cfg.run.checkpoint_every == 0:
                self.save()
        if self.cfg.run.checkpoint_every and self.checkpointer.latest_step() != self.step:
            self.save()
        return history
