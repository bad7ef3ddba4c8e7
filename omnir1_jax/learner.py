"""The one learner: the training loop of every stage (SFT and GRPO, Omni-R1 and CrossOmni, LoRA or full).

One step: take the task's next prompt batch; for GRPO sample ``group_size`` answers per prompt with the
KV-cached sampler, let the task score them (possibly through the bridge), normalise the rewards per group into
advantages (docs/design.md §4.2) and run ``mu`` AdamW updates of the clipped GRPO loss with a KL penalty to the
frozen reference; for SFT take the task's supervised targets and run one AdamW update of their negative
log-likelihood. Around the step, once for every task: metrics (stdout progress bar with ETA, ``metrics.jsonl``,
TensorBoard), Orbax checkpoints (params, optimiser, reference, PRNG key, data-iterator state) every
``checkpoint_every`` steps with exact resume, periodic evaluation (``run.eval_every``), a NaN stop that names
the step and the last good checkpoint, and the export of the final policy to ``<out_dir>/hf``.

    from omnir1_jax.learner import Learner, grpo_stage, sft_stage
    learner = Learner(cfg, task, grpo_stage(cfg), policy=policy, tokenizer=tokenizer)
    history = learner.train()

The loss is a stage argument (``grpo`` or ``nll``); the task is a plug-in (:mod:`omnir1_jax.tasks`).
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np

from omnir1_jax import policy as policy_lib
from omnir1_jax.config import ConfigError, ExperimentConfig, to_dict
from omnir1_jax.lora import apply_lora, merge_lora
from omnir1_jax.models.qwen2_5_omni import fsdp_tp, repeat_prompt
from omnir1_jax.overlap import META_KEY, OneStepOverlap, rewind
from omnir1_jax.rl import group_advantages, zero_variance_fraction
from omnir1_jax.rl import rollout as rollout_lib
from omnir1_jax.rl.update import LossSpec, grpo_step, nll_step, resolve_micro_batches, score
from omnir1_jax.rl.zero import ShardedOptimizer
from omnir1_jax.runtime import distributed
from omnir1_jax.runtime.checkpoint import RunCheckpointer, key_from_data, key_to_data
from omnir1_jax.runtime.mesh import global_mesh
from omnir1_jax.runtime.metrics import MetricsWriter
from omnir1_jax.stages import PROGRESS_KEYS, Stage, grpo_stage, progress_line, sft_stage, stage_optimizer
from omnir1_jax.tasks.base import InteractiveTask, Rollout, Scored, Targets, Task

__all__ = ["PROGRESS_KEYS", "Learner", "Stage", "TrainingDivergedError", "grpo_stage", "progress_line", "sft_stage"]


class TrainingDivergedError(RuntimeError):
    """The loss or a reward became NaN / infinite; the last good checkpoint is left intact."""


@functools.partial(jax.jit, static_argnames=("graphdef", "scorer"))
def _score_split(graphdef, state, prompt, completion_ids, completion_mask, *, scorer):
    """``rl.update.score`` on a model given as (graphdef, state): float32 [R, C] log-probs, no gradient."""
    return jax.lax.stop_gradient(scorer(nnx.merge(graphdef, state), prompt, completion_ids, completion_mask))


def _commit(*modules: nnx.Module) -> None:
    """Commit every array of ``modules`` to the default device in place (a single-device run: no mesh places
    them). A jitted step's outputs are committed arrays; uncommitted inputs to its first call key another
    compilation than every later call's."""
    device = jax.devices()[0]
    put = lambda x: jax.device_put(x, device) if isinstance(x, jax.Array) else x
    for m in modules:
        nnx.update(m, jax.tree.map(put, nnx.state(m)))


def _bucket(n: int, multiple: int = 32) -> int:
    return max(multiple, -(-n // multiple) * multiple)


class Learner:
    """Owns the policy (and its LoRA wrapper), the frozen reference, the optimiser, the task's data iterator,
    the checkpoints and the metrics of one stage.

    Args:
      cfg: the experiment (sampling, loss and model settings are read from ``cfg.grpo`` / ``cfg.model``).
      task: the task plug-in (:func:`omnir1_jax.tasks.make_task`).
      stage: what to train (:func:`grpo_stage`, :func:`sft_stage`).
      policy, tokenizer: built from ``cfg.model`` when not given.
      records: training records (default: ``cfg.data.split`` read by the task's reader).
      evaluate: ``evaluate(policy, tag) -> {"metric": name, "value": float, ...}``, called every
        ``stage.eval_every`` steps; its value is logged as ``eval/<metric>``.
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        task: Task,
        stage: Stage,
        *,
        policy=None,
        tokenizer=None,
        records=None,
        evaluate: Callable[[Any, str], dict] | None = None,
    ):
        # lazy: the record readers pull in grain
        from omnir1_jax.runtime.records import read_records, resolve_steps

        self.cfg, self.task, self.stage = cfg, task, stage
        self.out_dir = stage.run.out_dir
        os.makedirs(self.out_dir, exist_ok=True)
        self.primary = jax.process_index() == 0  # only process 0 writes config, metrics and logs
        if self.primary:
            with open(os.path.join(self.out_dir, "config.json"), "w") as f:
                json.dump(to_dict(cfg), f, indent=1)
        self.tokenizer = tokenizer or policy_lib.build_tokenizer(cfg.model)
        self.eos_ids = policy_lib.eos_ids_of(self.tokenizer)
        # One mesh over every device of every process; parameters, reference and optimiser state are global
        # arrays on it, and every step is one jit program over it (runtime/distributed.py).
        self.mesh = global_mesh(cfg.mesh)
        policy = (
            policy
            if policy is not None
            else policy_lib.build_policy(
                cfg.model, seed=cfg.run.seed, mesh=self.mesh, decode_gather=cfg.mesh.decode_gather
            )
        )
        self.multi_process = jax.process_count() > 1
        if self.mesh is not None and not policy_lib.is_placed(policy, self.mesh):
            policy = policy_lib.place_policy(policy, self.mesh)
        self.policy = policy
        self.model = policy  # what the optimiser updates: the policy, or its LoRA wrapper
        if stage.lora_rank > 0:
            if self.multi_process:
                raise ConfigError(
                    "sft.lora_rank > 0 is not supported in a multi-process run yet (the LoRA factors "
                    "are created per process); use full fine-tuning or one process"
                )

            # the frozen base is stored in the compute dtype (it is never updated); the factors are float32
            self.policy = policy = policy_lib.frozen_copy(policy, cfg.model.dtype)
            self.model = apply_lora(policy, stage.lora_rank, stage.lora_alpha, seed=cfg.run.seed)
        g = cfg.grpo
        self.grpo = stage.loss == "grpo"
        if stage.loss not in ("grpo", "nll"):
            raise ValueError(f"stage.loss must be grpo or nll, got {stage.loss!r}")
        # the reference is stored in the compute dtype: it is never updated (see ModelSpec.param_dtype)
        self.reference = policy_lib.frozen_copy(self.model, cfg.model.dtype) if self.grpo and g.beta > 0 else None
        self._reference_split = None  # (graphdef, state) of the frozen reference, split once (_score_reference)
        micro = 1
        if self.grpo:  # gradient accumulation over the batch's rows (grpo.micro_batches; 0 = per device count)
            rows = cfg.data.batch_size * g.group_size
            try:
                micro = resolve_micro_batches(
                    g.micro_batches, rows, 1 if self.mesh is None else self.mesh.size, g.group_size
                )
            except ValueError as e:
                raise ConfigError(
                    f"grpo.micro_batches={g.micro_batches}: {e} (data.batch_size x grpo.group_size)"
                ) from None
        # Dr. GRPO divides by the answer-token budget, a constant of the run (rl.loss.aggregate)
        self.turns = int(task.max_turns)
        if self.turns > 1 and not isinstance(task, InteractiveTask):
            raise ConfigError(f"task {task.name!r} declares max_turns={self.turns} but is not an InteractiveTask")
        if not self.grpo and self.turns > 1 and cfg.sft.think_weight != 1.0:
            w = cfg.sft.think_weight
            raise ConfigError(f"sft.think_weight={w} is for one-turn answers, not turns={self.turns}")
        # grpo.overlap: the bridge scores batch t while the learner samples t + 1 and updates on t (overlap.py)
        self.overlap = OneStepOverlap(self) if self.grpo and g.overlap == "one_step" else None
        if self.overlap is not None and self.turns > 1:
            raise ConfigError(
                "grpo.overlap='one_step' needs single-turn rollouts (grpo.max_turns = 1): a multi-turn "
                "rollout waits for System 2 between its turns"
            )
        budget = g.max_new_tokens * (self.turns if self.grpo else 1)
        self.loss_spec = LossSpec(
            epsilon_low=g.epsilon_low,
            epsilon_high=g.epsilon_high,
            beta=g.beta,
            kl=g.kl,
            agg=g.agg,
            micro_batches=micro,
            max_len=budget,
            clip_ratio_c=g.clip_ratio_c,
            empty_rows=g.empty_rows,
        )
        tx = stage_optimizer(stage.optim)
        if self.mesh is not None and cfg.mesh.shard_optimizer:  # ZeRO stage 1: the moments split over data too
            self.optimizer = ShardedOptimizer(
                self.model, tx, wrt=nnx.Param, mesh=self.mesh, sharding=fsdp_tp(optimizer_axes=("data",))
            )
        else:
            self.optimizer = nnx.Optimizer(self.model, tx, wrt=nnx.Param)
        self._bound_steps: dict[Any, Any] = {}  # update functions with (model, optimizer) bound (_bound)
        if self.mesh is None:  # one device: a step's outputs and a restored checkpoint are committed to it, so
            # commit the initial state too (jit keys on it: else step 1 or a resume compiles the step again)
            _commit(self.model, self.optimizer, *([self.reference] if self.reference is not None else []))
        self.scorer = policy_lib.make_scorer(
            cfg.model.remat,
            g.temperature if self.grpo else 1.0,
            g.group_size if self.grpo else None,
            gather_weights=cfg.mesh.update_gather,
        )
        if self.turns > 1:  # multi-turn rollouts / targets: whole trajectories are scored, answers masked in
            self.scorer = policy_lib.make_trajectory_scorer(cfg.model.remat, g.temperature if self.grpo else 1.0)
        self.records = list(records) if records is not None else read_records(cfg.data, cfg.data.split)
        if stage.run.steps <= 0:  # run.steps = 0: derived from the data (run.epochs over expressions or videos)
            self.stage = stage = stage.with_steps(resolve_steps(cfg, self.records, stage.batch_size))
        # every process walks the same seeded order of records and prepares only its own block of each global
        # batch (share); the blocks become global arrays (distributed.global_inputs / distributed.global_rows)
        distributed.my_prompts(stage.batch_size)  # the global batch must split evenly over the processes
        self.share = (jax.process_index(), jax.process_count())
        self.pad_id = policy_lib.pad_id_of(self.tokenizer)
        self.data_iter = task.batches(
            self.records, batch_size=stage.batch_size, seed=stage.run.seed, sft=not self.grpo, share=self.share
        )
        self.key = jax.random.key(cfg.run.seed)
        self.step = 0
        self.evaluate_fn = evaluate
        self.evals: list[tuple[int, float]] = []
        self.checkpointer = RunCheckpointer(
            self.out_dir, keep=stage.run.keep_checkpoints, on_error=cfg.run.on_checkpoint_error
        )
        self.writer = MetricsWriter(self.out_dir, tensorboard=self.grpo) if self.primary else None
        self.last_texts: list[str] = []
        self.last_rollout: Rollout | None = None  # the last GRPO step's rollout (completions, advantages)
        if stage.run.resume:
            self.restore()
            if self.writer is not None:  # the steps after the restored one are re-run: each is logged once
                self.writer.rewind(self.step)

    # ----------------------------------------------------------------------------------------- state
    def _state(self) -> dict[str, Any]:
        """Everything array-valued that determines the next step. The frozen reference is included: on a
        resume the policy handed in is not the one the reference was copied from (e.g. ``train.py`` skips the
        SFT warm-up when resuming), so it must come from the checkpoint too."""
        state = {
            "params": nnx.state(self.model, nnx.Param),
            "opt": nnx.state(self.optimizer),
            "key": key_to_data(self.key),
        }
        if self.reference is not None:
            state["reference"] = nnx.state(self.reference, nnx.Param)
        return state

    def save(self) -> None:
        meta = {
            "step": self.step,
            "data_state": self.data_iter.get_state(),
            "config": to_dict(self.cfg),
            "stage": self.stage.name,
        }
        if self.overlap is not None:  # the batch in flight (overlap.py: drawn and scored again on resume)
            meta.update(self.overlap.meta())
        self.checkpointer.save(self.step, self._state(), meta)

    def restore(self) -> bool:
        """Restore the newest checkpoint of ``out_dir``; False when there is none."""
        got = self.checkpointer.restore(self._state())
        if got is None:
            return False
        step, state, meta = got
        nnx.update(self.model, state["params"])
        nnx.update(self.optimizer, state["opt"])
        if self.reference is not None:
            nnx.update(self.reference, state["reference"])
            self._reference_split = None
        self.key = key_from_data(state["key"])
        self.data_iter.set_state(meta["data_state"])
        self.step = int(meta["step"])
        if self.overlap is not None:
            self.overlap.restore(meta)
        elif META_KEY in meta:  # an overlapped run's checkpoint: sample its batch in flight again
            rewind(self, meta[META_KEY])
        if self.primary:
            print(f"[{self.stage.name}] resumed from step {self.step} ({self.checkpointer.directory})", flush=True)
        return True

    def close(self) -> None:
        if self.overlap is not None:
            self.overlap.close()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.checkpointer.close()

    # --------------------------------------------------------------------------------------- rollout
    def rollout(self, batch: dict[str, Any], key) -> Rollout:
        """Sample a group per prompt, let the task score it, compute advantages: the step before the update.

        ``batch`` is this process's share of the global batch. Its prompts become its part of the global prompt
        batch; generation is one program over the mesh; every process reads all completions back, rewards its own
        prompts (its bridge), and the rewards of all processes are gathered before the advantages."""
        if self.turns > 1:
            return self.interactive_rollout(batch, key)
        g, n = self.cfg.grpo, self.cfg.grpo.group_size
        t0 = time.perf_counter()
        local = self._prompt_of(batch)
        prompt = distributed.global_inputs(self.policy.config, local, self.mesh, pad_id=self.pad_id)
        comp = policy_lib.complete(
            self.model,
            self.tokenizer,
            prompt,
            max_new_tokens=g.max_new_tokens,
            greedy=False,
            num_samples=n,
            key=key,
            temperature=g.temperature,
            top_k=g.top_k,
            top_p=g.top_p,
            eos_ids=self.eos_ids,
        )
        t_sample = time.perf_counter() - t0
        t1 = time.perf_counter()
        b = int(np.shape(local.input_ids)[0])
        lo, hi = distributed.my_prompts(b * self.share[1])
        scored = self._gather_scored(self.task.score(batch, comp.texts[lo * n : hi * n], n))
        return self.assemble(local, comp.tokens, comp.lengths, comp.texts, scored, t_sample, time.perf_counter() - t1)

    def _prompt_of(self, batch: dict[str, Any]):
        """The prepared prompt of this process's share (the task's :meth:`~Task.model_inputs`)."""
        return self.task.model_inputs(self.policy.config, batch)

    def _gather_scored(self, mine: Scored) -> Scored:
        return Scored(
            distributed.gather_rows(mine.rewards, self.mesh),
            {k: distributed.gather_rows(v, self.mesh) for k, v in sorted(mine.components.items())},
            {
                k: float(distributed.gather_rows(np.asarray([v], np.float64)).sum())
                for k, v in sorted(mine.stats.items())
            },
        )

    def interactive_rollout(self, batch: dict[str, Any], key) -> Rollout:
        """Multi-turn rollouts (task ``vos_interactive``, ``grpo.max_turns`` answers): sample the group's first
        answers; then, per further turn, System 2's feedback is appended to each trajectory and its next answer
        is sampled from the re-prefilled conversation (one program over the mesh per turn). The final answers
        are rewarded; the update scores the whole trajectories with only the answer tokens in the mask."""
        g, n, task, cfg = self.cfg.grpo, self.cfg.grpo.group_size, self.task, self.policy.config
        # an answer becomes part of the next turn's prompt: it may not contain media tokens
        sample = dict(
            max_new_tokens=g.max_new_tokens,
            greedy=False,
            temperature=g.temperature,
            top_k=g.top_k,
            top_p=g.top_p,
            eos_ids=self.eos_ids,
            suppress_ids=policy_lib.media_token_ids(self.tokenizer),
        )
        t0 = time.perf_counter()
        local = self._prompt_of(batch)
        key, sk = jax.random.split(key)
        comp = policy_lib.complete(
            self.model,
            self.tokenizer,
            distributed.global_inputs(cfg, local, self.mesh, pad_id=self.pad_id),
            num_samples=n,
            key=sk,
            **sample,
        )
        b = int(np.shape(local.input_ids)[0])
        lo, hi = distributed.my_prompts(b * self.share[1])
        rows = slice(lo * n, hi * n)
        trajs = task.start(batch, n)
        task.add_answers(trajs, comp.tokens[rows], comp.lengths[rows], comp.texts[rows])
        t_sample, t_reward, fb_stats = time.perf_counter() - t0, 0.0, {}
        for _ in range(2, self.turns + 1):
            t1 = time.perf_counter()
            for k, v in task.add_feedback(batch, trajs, n).items():
                fb_stats[k] = fb_stats.get(k, 0.0) + v
            t2 = time.perf_counter()
            inputs, _ = task.trajectory_inputs(cfg, trajs, self.pad_id)
            key, sk = jax.random.split(key)
            comp = policy_lib.complete(
                self.model,
                self.tokenizer,
                distributed.global_inputs(cfg, inputs, self.mesh, pad_id=self.pad_id),
                num_samples=1,
                key=sk,
                **sample,
            )
            task.add_answers(trajs, comp.tokens[rows], comp.lengths[rows], comp.texts[rows])
            t_reward, t_sample = t_reward + t2 - t1, t_sample + time.perf_counter() - t2
        t1 = time.perf_counter()
        mine = task.score_trajectories(batch, trajs, n)
        mine.stats.update(fb_stats)
        scored = self._gather_scored(mine)
        t_reward += time.perf_counter() - t1
        adv = np.asarray(group_advantages(jnp.asarray(scored.rewards), n, g.adv_scale, g.adv_eps))
        full, mask = task.trajectory_inputs(cfg, trajs, self.pad_id)
        (width,) = distributed.agree_max(mask.shape[1])  # every process's trajectories padded to one length
        pad = ((0, 0), (width - mask.shape[1], 0))
        ids = np.pad(np.asarray(full.input_ids), pad, constant_values=self.pad_id)
        glob = functools.partial(distributed.global_rows, mesh=self.mesh)
        return Rollout(
            prompt=distributed.global_inputs(cfg, full, self.mesh, pad_id=self.pad_id),
            completion_ids=glob(ids),
            completion_mask=glob(np.pad(mask, pad)),
            advantages=glob(adv[rows]),
            rewards=scored.rewards,
            components=scored.components,
            stats=scored.stats,
            texts=list(comp.texts),
            lengths=distributed.gather_rows(mask.sum(axis=1), self.mesh),
            t_sample=t_sample,
            t_reward=t_reward,
            trajectories=trajs,
        )

    def assemble(
        self,
        prompt,
        tokens: np.ndarray,
        lengths: np.ndarray,
        texts,
        scored: Scored,
        t_sample: float = 0.0,
        t_reward: float = 0.0,
        logprobs: np.ndarray | None = None,
    ) -> Rollout:
        """The update's inputs from sampled rows and their rewards (group-normalised advantages, a completion
        mask cut to a 32-multiple of the longest row).

        ``prompt`` is this process's share of the prompts (prepared ``ModelInputs``); ``tokens``, ``lengths``,
        ``texts`` and ``scored`` cover every row of the global batch (rows ``prompt * group_size + sample``).
        Each process turns its own rows into its part of the global arrays the update reads. ``logprobs`` (the
        sampler's, every row) become the update's pi_old (``Rollout.old_logps``; ``grpo.overlap``)."""
        g = self.cfg.grpo
        n = g.group_size
        adv = np.asarray(group_advantages(jnp.asarray(scored.rewards), n, g.adv_scale, g.adv_eps))
        width = min(_bucket(int(lengths.max())), tokens.shape[1])
        mask = (np.arange(width)[None] < lengths[:, None]).astype(np.int32)
        rows = int(np.shape(prompt.input_ids)[0]) * n
        mine = slice(self.share[0] * rows, (self.share[0] + 1) * rows)
        if tokens.shape[0] != rows * self.share[1]:
            raise ValueError(
                f"{tokens.shape[0]} completion rows for {self.share[1]} processes x {rows // n} prompts x group {n}"
            )
        glob = functools.partial(distributed.global_rows, mesh=self.mesh)
        return Rollout(
            prompt=distributed.global_inputs(
                self.policy.config, repeat_prompt(prompt, n), self.mesh, pad_id=self.pad_id
            ),
            completion_ids=glob(np.asarray(tokens[mine, :width])),
            completion_mask=glob(mask[mine]),
            advantages=glob(adv[mine]),
            rewards=scored.rewards,
            components=scored.components,
            stats=scored.stats,
            texts=list(texts),
            lengths=lengths,
            t_sample=t_sample,
            t_reward=t_reward,
            old_logps=None if logprobs is None else glob(np.asarray(logprobs[mine, :width], np.float32)),
        )

    def supervised(self, batch: dict[str, Any]) -> Targets:
        """The NLL update's inputs: the task's targets for this process's share of the batch, tokenised to a width
        every process agrees on, as its part of the global arrays."""
        if self.turns > 1:
            return self._supervised_turns(batch)
        texts = self.task.sft_targets(batch)
        ids, mask = policy_lib.tokenize_targets(
            self.tokenizer, texts, policy_lib.target_eos_id(self.tokenizer), self.pad_id
        )
        (width,) = distributed.agree_max(ids.shape[1])
        ids, mask = policy_lib.pad_targets(ids, mask, width, self.pad_id)
        local = self._prompt_of(batch)
        w = self.cfg.sft.think_weight
        weights = policy_lib.think_weights(self.tokenizer, texts, width, w) if w != 1.0 else None
        return Targets(
            distributed.global_inputs(self.policy.config, local, self.mesh, pad_id=self.pad_id),
            distributed.global_rows(ids, self.mesh),
            distributed.global_rows(mask, self.mesh),
            list(texts),
            None if weights is None else distributed.global_rows(weights, self.mesh),
        )

    def _supervised_turns(self, batch: dict[str, Any]) -> Targets:
        """Multi-turn targets (task ``vos_interactive``): the task's target answers for every turn, each after the
        real feedback System 2 gives on the previous target answer, as whole trajectories with every answer in
        the NLL mask (the warm-up then teaches the answer format after a feedback turn too)."""
        cfg, eos = self.policy.config, policy_lib.target_eos_id(self.tokenizer)
        trajs = self.task.start(batch, 1)
        for turn in range(self.turns):
            if turn:
                self.task.add_feedback(batch, trajs, 1)
            texts = self.task.sft_targets(batch)
            ids = [
                np.asarray(self.tokenizer(t, add_special_tokens=False)["input_ids"] + [eos], np.int32) for t in texts
            ]
            width = max(len(x) for x in ids)
            tokens = np.stack([np.pad(x, (0, width - len(x)), constant_values=self.pad_id) for x in ids])
            self.task.add_answers(trajs, tokens, np.asarray([len(x) for x in ids]), texts)
        full, mask = self.task.trajectory_inputs(cfg, trajs, self.pad_id)
        (width,) = distributed.agree_max(mask.shape[1])
        pad = ((0, 0), (width - mask.shape[1], 0))
        ids = np.pad(np.asarray(full.input_ids), pad, constant_values=self.pad_id)
        return Targets(
            distributed.global_inputs(cfg, full, self.mesh, pad_id=self.pad_id),
            distributed.global_rows(ids, self.mesh),
            distributed.global_rows(np.pad(mask, pad), self.mesh),
            [t.answers[-1] for t in trajs],
        )

    # ---------------------------------------------------------------------------------------- update
    def update(self, ro: Rollout | Targets) -> dict[str, float]:
        """``grpo.mu`` GRPO updates on a :class:`Rollout` (or one NLL update on :class:`Targets`); returns the last
        update's metrics. pi_old: the rollout's sampler log-probs when it carries them (``grpo.overlap``), else the
        current policy's (scored once before the first update for ``mu > 1``, the stop-gradient for ``mu = 1``)."""
        args = (ro.prompt, ro.completion_ids, ro.completion_mask)
        if not self.grpo:
            m = self._bound(nll_step)(*args, ro.weights, scorer=self.scorer)
            return {k: float(v) for k, v in jax.device_get(m).items()}
        g = self.cfg.grpo
        old = ro.old_logps
        if old is None and g.mu > 1:
            old = score(self.model, *args, scorer=self.scorer)
        ref = self._score_reference(*args) if self.reference is not None else None
        metrics: dict[str, Any] = {}
        for _ in range(g.mu):
            metrics = self._bound(grpo_step)(*args, old, ref, ro.advantages, scorer=self.scorer, spec=self.loss_spec)
        return {k: float(v) for k, v in jax.device_get(metrics).items()}

    def _bound(self, step_fn):
        """``step_fn`` (``rl.update.grpo_step`` / ``nll_step``) with the policy and its optimiser bound by
        ``nnx.cached_partial``: their graph is traversed once, not on every call (~9 ms a step on a 2-core CPU for
        the peer benchmark's tiny policy, BENCHMARKS.md "Peers"). The bound copies share the Variable objects, so
        an in-place ``nnx.update`` (``restore``) is seen by the next call and every update lands in
        ``self.model`` / ``self.optimizer``."""
        bound = self._bound_steps.get(step_fn)
        if bound is None:
            bound = self._bound_steps[step_fn] = nnx.cached_partial(step_fn, self.model, self.optimizer)
        return bound

    def _score_reference(self, prompt, completion_ids, completion_mask):
        """The frozen reference's log-probs of the completions. The reference never changes between restores, so it
        is split into (graphdef, state) once and scored by a plain jit of that state: the same program as
        ``score(self.reference, ...)`` without ``nnx.jit``'s graph traversal on every call (~10 ms a step on a
        2-core CPU for the peer benchmark's tiny policy, BENCHMARKS.md "Peers")."""
        if self._reference_split is None:
            self._reference_split = nnx.split(self.reference)
        graphdef, state = self._reference_split
        return _score_split(graphdef, state, prompt, completion_ids, completion_mask, scorer=self.scorer)

    def train_step(self) -> dict[str, float]:
        """Data -> (rollout -> reward -> advantages | targets) -> update -> metrics, with the NaN stop. With
        ``grpo.overlap = "one_step"`` the rewards of one batch are computed while the next is sampled and the
        update runs (:class:`~omnir1_jax.overlap.OneStepOverlap`)."""
        if self.overlap is not None:
            return self.overlap.step()
        t0 = time.perf_counter()
        batch = next(self.data_iter)
        t_data = time.perf_counter() - t0
        if not self.grpo:
            ro = self.supervised(batch)
            m = self.update(ro)
            m["time/step"] = time.perf_counter() - t0
            return self._finish_step(m, ro.texts)
        self.key, sk = jax.random.split(self.key)
        ro = self.rollout(batch, sk)
        self.last_rollout = ro
        t1 = time.perf_counter()
        m = self.update(ro)
        m = self.grpo_metrics(m, ro, t_data=t_data, t_update=time.perf_counter() - t1, t_step=time.perf_counter() - t0)
        return self._finish_step(m, ro.texts)

    def grpo_metrics(
        self, m: dict[str, float], ro: Rollout, *, t_data: float, t_update: float, t_step: float
    ) -> dict[str, float]:
        """A GRPO step's logged metrics: the update's (``m``) plus the rollout's rewards (mean / min / max of each
        component and of the total), response length, zero-variance groups, the task's counters and timings."""
        m = dict(m)
        m.update(rollout_lib.summarize(ro.components, "reward/"))
        m.update(rollout_lib.summarize({"total": ro.rewards}, "reward/"))
        m["response_length"] = float(np.mean(ro.lengths))
        m["zero_variance_groups"] = float(zero_variance_fraction(jnp.asarray(ro.rewards), self.cfg.grpo.group_size))
        m.update({k: float(v) for k, v in ro.stats.items()})  # the task names its counters (bridge/..., judge/...)
        m.update(
            {
                "time/data": t_data,
                "time/rollout": ro.t_sample,
                "time/reward": ro.t_reward,
                "time/update": t_update,
                "time/step": t_step,
                "tokens_per_s": float(np.sum(ro.lengths)) / max(ro.t_sample, 1e-9),
            }
        )
        return m

    def _finish_step(self, m: dict[str, float], texts) -> dict[str, float]:
        bad = [k for k in ("loss", "reward/total") if not math.isfinite(m.get(k, 0.0))]
        if bad:
            raise TrainingDivergedError(
                f"{self.stage.name} step {self.step + 1}: non-finite {', '.join(bad)} "
                f"({ {k: m[k] for k in bad} }); stopping. The last good checkpoint is in "
                f"{self.checkpointer.directory} (step {self.checkpointer.latest_step()})"
            )
        self.step += 1
        self.last_texts = list(texts)
        return m

    # ------------------------------------------------------------------------------------------ loop
    def evaluate(self, tag: str) -> dict | None:
        """Run the ``evaluate`` callback on the trained policy (LoRA merged view for a LoRA stage)."""
        if self.evaluate_fn is None:
            return None
        result = self.evaluate_fn(self.current_policy(), tag)
        if result is not None and "value" in result:
            self.evals.append((self.step, float(result["value"])))
            if self.writer is not None:
                self.writer.write(self.step, {f"eval/{result.get('metric', 'value')}": result["value"]})
        return result

    def current_policy(self):
        """The policy as it is now: the trained model, with LoRA factors merged into a copy for a LoRA stage."""
        if self.model is self.policy:
            return self.policy
        return merge_lora(nnx.clone(self.model))

    def train(self, steps: int | None = None, *, progress: bool = True) -> list[dict[str, float]]:
        """Run until ``steps`` total steps (default ``stage.steps``); returns the per-step metrics. Saves the
        final step, exports ``<out_dir>/hf`` when ``stage.export``, and leaves the trained policy (LoRA merged)
        in :attr:`policy`."""
        total = self.stage.run.steps if steps is None else steps
        history = []
        t0, start = time.perf_counter(), self.step
        while self.step < total:
            m = self.train_step()
            history.append(m)
            # the step's progress line first, then its metrics and checkpoint (a failed save names the step after it)
            if progress and self.primary and (self.step % self.stage.run.log_every == 0 or self.step == total):
                print(
                    progress_line(
                        self.stage.name,
                        self.step,
                        total,
                        time.perf_counter() - t0,
                        m,
                        PROGRESS_KEYS,
                        done_here=self.step - start,
                    ),
                    flush=True,
                )
            self.record(m)
            if self.stage.run.eval_every and self.step % self.stage.run.eval_every == 0 and self.step < total:
                self.evaluate(f"{self.stage.name}_step{self.step}")
        self.finish(progress=progress)
        return history

    def record(self, m: dict[str, float]) -> None:
        """After a step: its metrics to ``metrics.jsonl`` / TensorBoard, and a checkpoint every
        ``stage.checkpoint_every`` steps."""
        if self.writer is not None:
            self.writer.write(self.step, m)
        if self.stage.run.checkpoint_every and self.step % self.stage.run.checkpoint_every == 0:
            self.save()

    def finish(self, *, progress: bool = True) -> None:
        """After the last step: save it (unless saved), merge LoRA factors into :attr:`policy`, export
        ``<out_dir>/hf`` when ``stage.export``."""
        if self.checkpointer.latest_step() != self.step:
            self.save()
        if self.overlap is not None:  # the batch in flight is scored before the bridge serves anything else
            self.overlap.drain()
        if self.model is not self.policy:
            self.policy = self.current_policy()
        if self.stage.export:
            path = policy_lib.export_policy(
                self.policy, os.path.join(self.out_dir, "hf"), dtype=policy_lib.export_dtype(self.cfg.model)
            )
            if progress and self.primary:
                print(f"[{self.stage.name}] exported the policy to {path}", flush=True)
