"""Seed-parallel training: N independent runs of one experiment, trained by one program.

``run.seeds = (0, 1, 2, 3, 4)`` (``--seeds 0-4``) trains five runs that share nothing but the program: each
seed has its own initialisation (and SFT start), data order, sampling key, reference, optimiser state, metrics,
checkpoints and export under ``<run.out_dir>/seed<k>/``. Every step the seeds' parameters, references and
optimiser states are stacked on a leading seed axis and one ``jax.vmap``-ed program samples every seed's groups,
another updates every seed (PureJaxRL-style): on a small model that fills the cores that one seed leaves idle,
and the step costs much less than N single-seed steps (``benchmarks/bench_seeds.py``). The bridge receives
every seed's groups before the first reply is awaited (one request stream, :meth:`Task.submit`).

Each seed is a :class:`~omnir1_jax.learner.Learner` (its data iterator, key, checkpointer and metrics writer);
:class:`SeedGroup` replaces only the step. Seed k of a group computes what ``run.seed = k`` alone computes: the
same sampled tokens and updates, up to float rounding of the batched matmuls (a test checks the tokens of the
first step and the losses of two steps within 1e-5). Prompt batches of different shapes (clip lengths, token
lengths) are padded to common sizes with inert filler (:mod:`omnir1_jax.models.qwen2_5_omni.blocks`), which
changes no real token's logits beyond rounding.

Where it stops paying: the vmapped programs hold N copies of the parameters, optimiser state and activations.
For the tiny CPU models (hidden 32-256) that is a few MB per seed and the step is dominated by dispatch and
host work that batching amortises; for a 3B / 7B policy one seed already fills the accelerators, so N seeds
cost N times one and need N times the memory — large models run one seed per program (``run.seed``), and a
seed-parallel group is a single process without a mesh, without LoRA and with single-turn rollouts.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np

from omnir1_jax import policy as policy_lib
from omnir1_jax.config import ConfigError
from omnir1_jax.learner import Learner
from omnir1_jax.overlap import InFlight, ScoringLane, lag_metrics
from omnir1_jax.rl.update import LossSpec, _global_norm, _grpo_grads, _nll_grads
from omnir1_jax.runtime.seed_axis import pad_columns, sample_seeds, stack, stack_prompts, unstack_all
from omnir1_jax.stages import PROGRESS_KEYS, progress_line
from omnir1_jax.tasks.base import Task

Evaluate = Callable[[list, str], list]
"""``evaluate(policies, tag) -> [result per seed]`` (each ``{"metric", "value", ...}`` or None)."""


# -------------------------------------------------------------------------------------- vmapped updates
def _grpo_update(model, optimizer, reference, prompt, ids, mask, advantages, old, scorer, spec: LossSpec, mu: int):
    """``mu`` GRPO updates of one seed (what the single-seed learner's ``update`` runs as separate programs):
    pi_old the sampler's log-probs ``old`` when given (``grpo.overlap``), else cached before the first update when
    ``mu > 1``; the reference's log-probs without gradient."""
    sg = jax.lax.stop_gradient
    if old is None and mu > 1:
        old = sg(scorer(model, prompt, ids, mask))
    ref = sg(scorer(reference, prompt, ids, mask)) if reference is not None else None
    metrics: dict[str, Any] = {}
    for _ in range(mu):
        grads, metrics = _grpo_grads(model, prompt, ids, mask, old, ref, advantages, scorer, spec)
        optimizer.update(model, grads)
        metrics["grad_norm"] = _global_norm(grads)
    return metrics


@functools.partial(jax.jit, static_argnames=("graphs", "scorer", "spec", "mu"))
def _grpo_update_seeds(pstates, ostates, rstates, prompt, ids, mask, advantages, old, *, graphs, scorer, spec, mu):
    pg, og, rg = graphs

    def one(ps, os_, rs, pr, i, m, a, o):
        model, opt = nnx.merge(pg, ps), nnx.merge(og, os_)
        ref = None if rg is None else nnx.merge(rg, rs)
        metrics = _grpo_update(model, opt, ref, pr, i, m, a, o, scorer, spec, mu)
        return nnx.state(model), nnx.state(opt), metrics

    return jax.vmap(one)(pstates, ostates, rstates, prompt, ids, mask, advantages, old)


@functools.partial(jax.jit, static_argnames=("graphs", "scorer"))
def _nll_update_seeds(pstates, ostates, prompt, ids, mask, weights=None, *, graphs, scorer):
    pg, og = graphs

    def one(ps, os_, pr, i, m, w):
        model, opt = nnx.merge(pg, ps), nnx.merge(og, os_)
        grads, loss = _nll_grads(model, pr, i, m, scorer, weights=w)
        opt.update(model, grads)
        return nnx.state(model), nnx.state(opt), {"loss": loss, "grad_norm": _global_norm(grads)}

    return jax.vmap(one)(pstates, ostates, prompt, ids, mask, weights)


def _submit(task, batch, texts, n):
    """``task.submit`` for a :class:`Task` (its bridge requests leave now), else ``task.score`` (duck-typed)."""
    return task.submit(batch, texts, n) if isinstance(task, Task) else task.score(batch, texts, n)


def _collect(task, pending):
    return task.collect(pending) if isinstance(task, Task) else pending


# ------------------------------------------------------------------------------------------------ group
class SeedGroup:
    """N learners of one stage (one per seed; :func:`seed_learners`) trained in lockstep by vmapped programs.

    Args:
      learners: the seeds' learners, built on per-seed configs (``run.seed = k``, ``run.out_dir/seed<k>``), all
        of the same stage, task kind and shapes.
      evaluate: ``evaluate(policies, tag) -> [result per seed]`` every ``stage.run.eval_every`` steps (batched over
        the seeds, :func:`omnir1_jax.evaluation.seeds.seed_evaluator`).
    """

    def __init__(self, learners: Sequence[Learner], *, evaluate: Evaluate | None = None):
        self.learners = list(learners)
        if not self.learners:
            raise ConfigError("run.seeds is empty")
        first = self.learners[0]
        if jax.process_count() > 1 or first.mesh is not None:
            raise ConfigError(
                "run.seeds: seed-parallel training runs in one process on one device (the small models "
                "it pays for); a large model trains one seed per program (run.seed)"
            )
        if any(l.model is not l.policy for l in self.learners):
            raise ConfigError("run.seeds: seed-parallel training does not take LoRA (sft.lora_rank > 0)")
        if any(l.turns > 1 for l in self.learners):
            raise ConfigError(
                "run.seeds: seed-parallel training runs single-turn tasks (grpo.max_turns = 1); run "
                "multi-turn seeds one after another"
            )
        if len({(l.stage.name, l.stage.run.steps, l.grpo) for l in self.learners}) != 1:
            raise ConfigError("run.seeds: the seeds' learners must train the same stage for the same steps")
        self.evaluate_fn = evaluate
        self.grpo, self.stage = first.grpo, first.stage
        # grpo.overlap: one lane scores every seed's batch while the next is sampled and the update runs
        self.overlap = first.overlap is not None
        if any((l.overlap is not None) != self.overlap for l in self.learners):
            raise ConfigError("run.seeds: the seeds' learners must agree on grpo.overlap")
        self.lane = ScoringLane() if self.overlap else None

    @property
    def step(self) -> int:
        return min(l.step for l in self.learners)

    # ------------------------------------------------------------------------------------------ states
    def _states(self):
        graphs, states = [], []
        for part in ("model", "optimizer", "reference"):
            objs = [getattr(l, part) for l in self.learners]
            if objs[0] is None:
                graphs.append(None)
                states.append(None)
                continue
            split = [nnx.split(o) for o in objs]
            graphs.append(split[0][0])
            states.append(stack([s for _, s in split]))
        return tuple(graphs), states

    def _write_back(self, pstates, ostates) -> None:
        n = len(self.learners)
        for l, ps, os_ in zip(self.learners, unstack_all(pstates, n), unstack_all(ostates, n)):
            nnx.update(l.model, ps)
            nnx.update(l.optimizer, os_)

    # ------------------------------------------------------------------------------------------- steps
    def train_step(self) -> list[dict[str, float]]:
        """One step of every seed; returns each seed's metrics."""
        t0 = time.perf_counter()
        if self.grpo and self.overlap:
            return self._overlap_step(t0)
        batches = [next(l.data_iter) for l in self.learners]
        t_data = time.perf_counter() - t0
        return self._grpo_step(batches, t0, t_data) if self.grpo else self._sft_step(batches, t0)

    def _sft_step(self, batches, t0) -> list[dict[str, float]]:
        first = self.learners[0]
        sup = [l.supervised(b) for l, b in zip(self.learners, batches)]
        prompt = stack_prompts(first.policy.config, [s.prompt for s in sup], first.pad_id)
        ids = pad_columns([s.completion_ids for s in sup], first.pad_id)
        mask = pad_columns([s.completion_mask for s in sup], 0)
        weights = None if sup[0].weights is None else pad_columns([s.weights for s in sup], 1.0)
        (pg, og, _), (ps, os_, _) = self._states()
        ps, os_, metrics = _nll_update_seeds(ps, os_, prompt, ids, mask, weights, graphs=(pg, og), scorer=first.scorer)
        self._write_back(ps, os_)
        host = jax.device_get(metrics)
        out = []
        for k, (l, s) in enumerate(zip(self.learners, sup)):
            m = {key: float(v[k]) for key, v in host.items()}
            m["time/step"] = time.perf_counter() - t0
            out.append(l._finish_step(m, s.texts))
        return out

    def _grpo_step(self, batches, t0, t_data) -> list[dict[str, float]]:
        keys = []
        for l in self.learners:
            l.key, sk = jax.random.split(l.key)
            keys.append(sk)
        split = self._states()
        fls = self._sample(split, batches, keys)
        t1 = time.perf_counter()
        scored = self._score_all([f.batch for f in fls], [f.texts for f in fls])
        t_reward = time.perf_counter() - t1
        ros = [
            l.assemble(f.prompt, f.tokens, f.lengths, f.texts, scored[k], f.t_sample, t_reward)
            for k, (l, f) in enumerate(zip(self.learners, fls))
        ]
        return self._update(split, ros, t0, t_data)

    def _sample(self, split, batches, keys, states=None) -> list[InFlight]:
        """Every seed's groups in one vmapped program (each seed's policy, batch and key)."""
        first = self.learners[0]
        g, n = first.cfg.grpo, first.cfg.grpo.group_size
        t0 = time.perf_counter()
        prompts = [l._prompt_of(b) for l, b in zip(self.learners, batches)]
        stacked = stack_prompts(first.policy.config, prompts, first.pad_id)
        (pg, _, _), (ps, _, _) = split
        out = sample_seeds(
            ps,
            stacked,
            jnp.stack(keys),
            graphdef=pg,
            max_new_tokens=g.max_new_tokens,
            num_samples=n,
            greedy=False,
            temperature=float(g.temperature),
            top_k=int(g.top_k),
            top_p=float(g.top_p),
            eos=tuple(first.eos_ids),
            pad_token_id=int(first.pad_id),
        )
        tokens, lengths, logprobs = np.asarray(out.tokens), np.asarray(out.lengths), np.asarray(out.logprobs)
        texts = [
            policy_lib.decode_completions(first.tokenizer, tokens[k], lengths[k], first.eos_ids)
            for k in range(len(self.learners))
        ]
        t_sample = time.perf_counter() - t0
        states = states or [(b"", None)] * len(self.learners)
        return [
            InFlight(
                batch=b,
                prompt=self._one_prompt(stacked, k),
                tokens=tokens[k],
                lengths=lengths[k],
                logprobs=logprobs[k],
                texts=texts[k],
                version=l.step,
                data_state=st,
                key=key,
                t_sample=t_sample,
            )
            for k, (l, b, (st, key)) in enumerate(zip(self.learners, batches, states))
        ]

    def _score_all(self, batches, texts) -> list:
        """Every seed's rewards; all seeds' bridge requests leave before the first reply is awaited."""
        n = self.learners[0].cfg.grpo.group_size
        pending = [_submit(l.task, b, txt, n) for l, b, txt in zip(self.learners, batches, texts)]
        return [_collect(l.task, p) for l, p in zip(self.learners, pending)]

    def _update(self, split, ros, t0, t_data, extra: dict | None = None) -> list[dict[str, float]]:
        """Every seed's ``mu`` updates in one vmapped program, then each seed's metrics and step."""
        first = self.learners[0]
        for l, ro in zip(self.learners, ros):
            l.last_rollout = ro
        ids = pad_columns([r.completion_ids for r in ros], first.pad_id)
        mask = pad_columns([r.completion_mask for r in ros], 0)
        old = None if ros[0].old_logps is None else pad_columns([r.old_logps for r in ros], 0.0)
        adv = np.stack([np.asarray(r.advantages) for r in ros])
        prompt = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *[r.prompt for r in ros])
        (pg, og, rg), (ps, os_, rs) = split
        t2 = time.perf_counter()
        ps, os_, metrics = _grpo_update_seeds(
            ps,
            os_,
            rs,
            prompt,
            ids,
            mask,
            adv,
            old,
            graphs=(pg, og, rg),
            scorer=first.scorer,
            spec=first.loss_spec,
            mu=int(first.cfg.grpo.mu),
        )
        self._write_back(ps, os_)
        host = jax.device_get(metrics)
        t_update = time.perf_counter() - t2
        results = []
        for k, (l, ro) in enumerate(zip(self.learners, ros)):
            m = l.grpo_metrics(
                {key: float(v[k]) for key, v in host.items()},
                ro,
                t_data=t_data,
                t_update=t_update,
                t_step=time.perf_counter() - t0,
            )
            m.update((extra or {}).get(k, {}))
            results.append(l._finish_step(m, ro.texts))
        return results

    # ----------------------------------------------------------------------------- overlapped steps
    def _launch(self, split) -> tuple[list[InFlight], float]:
        """Draw every seed's next batch and sample it with the seeds' current policies (grpo.overlap)."""
        draws = [l.overlap.draw() for l in self.learners]
        fls = self._sample(split, [d[0] for d in draws], [d[3] for d in draws], [(d[1], d[2]) for d in draws])
        return fls, sum(d[4] for d in draws)

    def _hand_over(self, fls: list[InFlight]) -> None:
        if fls[0].prompt is None:  # restored from checkpoints: the seeds' prompts stacked as when sampled
            stacked = stack_prompts(
                self.learners[0].policy.config,
                [l._prompt_of(f.batch) for l, f in zip(self.learners, fls)],
                self.learners[0].pad_id,
            )
            for k, f in enumerate(fls):
                f.prompt = self._one_prompt(stacked, k)
        job = self.lane.submit(self._score_all, [f.batch for f in fls], [f.texts for f in fls])
        for f in fls:
            f.job = job

    def _overlap_step(self, t0) -> list[dict[str, float]]:
        """Every seed's overlapped step (:class:`~omnir1_jax.overlap.OneStepOverlap`'s schedule, all seeds at once:
        one vmapped sampling program, one scoring call on the lane for every seed, one vmapped update)."""
        t_data = 0.0
        split = self._states()  # theta_k of every seed: samples the next batch, is updated on the current one
        if any(l.overlap.inflight is None for l in self.learners):
            fls, t_data = self._launch(split)
            for l, f in zip(self.learners, fls):
                l.overlap.inflight = f
        cur = [l.overlap.inflight for l in self.learners]
        if cur[0].job is None:
            self._hand_over(cur)
        nxt, t = self._launch(split)
        self._hand_over(nxt)
        scored, waited = cur[0].job.wait()
        ros = [
            l.assemble(
                f.prompt, f.tokens, f.lengths, f.texts, scored[k], f.t_sample, f.job.seconds, logprobs=f.logprobs
            )
            for k, (l, f) in enumerate(zip(self.learners, cur))
        ]
        for l, f in zip(self.learners, nxt):
            l.overlap.inflight = f
        lags = {k: lag_metrics(l.step, f, waited) for k, (l, f) in enumerate(zip(self.learners, cur))}
        return self._update(split, ros, t0, t_data + t, lags)

    @staticmethod
    def _one_prompt(stacked, k: int):
        return jax.tree.map(lambda x: np.asarray(x)[k], stacked)

    # -------------------------------------------------------------------------------------------- loop
    def train(self, steps: int | None = None, *, progress: bool = True) -> list[list[dict[str, float]]]:
        """Run every seed to ``steps`` (default ``stage.run.steps``); returns each seed's per-step metrics. Saves,
        evaluates (every ``stage.run.eval_every`` steps) and exports per seed like :meth:`Learner.train`."""
        total = self.stage.run.steps if steps is None else steps
        steps_done = {l.step for l in self.learners}
        if len(steps_done) != 1:
            raise ConfigError(
                f"run.seeds: the seeds resumed at different steps {sorted(steps_done)} (a checkpoint "
                f"of one seed is missing); remove the newer ones or rerun without resume"
            )
        histories: list[list[dict[str, float]]] = [[] for _ in self.learners]
        t0, start = time.perf_counter(), self.step
        while self.step < total:
            ms = self.train_step()
            for h, l, m in zip(histories, self.learners, ms):
                h.append(m)
                l.record(m)
            step = self.step
            if progress and (step % self.stage.run.log_every == 0 or step == total):
                mean = {k: float(np.mean([m[k] for m in ms if k in m])) for k in PROGRESS_KEYS if k in ms[0]}
                print(
                    progress_line(
                        f"{self.stage.name} x{len(self.learners)} seeds",
                        step,
                        total,
                        time.perf_counter() - t0,
                        mean,
                        PROGRESS_KEYS,
                        done_here=step - start,
                    ),
                    flush=True,
                )
            if self.stage.run.eval_every and step % self.stage.run.eval_every == 0 and step < total:
                self.evaluate(f"{self.stage.name}_step{step}")
        for l in self.learners:
            l.finish(progress=progress)
        return histories

    def evaluate(self, tag: str) -> list | None:
        """Every seed's evaluation (one batched call); each value logged by its seed's learner."""
        if self.evaluate_fn is None:
            return None
        results = self.evaluate_fn([l.current_policy() for l in self.learners], tag)
        for l, r in zip(self.learners, results):
            if r is not None and "value" in r:
                l.evals.append((l.step, float(r["value"])))
                if l.writer is not None:
                    l.writer.write(l.step, {f"eval/{r.get('metric', 'value')}": r["value"]})
        return results

    @property
    def policies(self) -> list:
        return [l.policy for l in self.learners]

    def close(self) -> None:
        if self.lane is not None:
            self.lane.close()
        for l in self.learners:
            l.close()
