"""Training stages of the learner: what to optimise, with which optimiser, for how long and where.

A :class:`Stage` is built from the experiment's config sections, never a copy of their fields: the optimiser is
an :class:`~omnir1_jax.config.OptimSpec`, the loop (steps, data-order seed, output directory, checkpoint /
evaluation / log periods, resume) a :class:`~omnir1_jax.config.RunSpec`. The GRPO stage takes ``cfg.optim`` and
``cfg.run`` as they are; the SFT stage derives both from ``cfg.sft`` (its own learning rate, weight decay,
gradient clip, log and checkpoint periods; the data order seeded with ``run.seed + 1``; outputs under
``<run.out_dir>/sft``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os

from omnir1_jax.config import ExperimentConfig, OptimSpec, RunSpec
from omnir1_jax.rl.update import make_optimizer
from omnir1_jax.runtime.metrics import format_metrics

#: the metrics of the progress line
PROGRESS_KEYS = ("loss", "reward/total", "reward/grounding", "reward/accuracy", "kl_mean", "time/step")


@dataclasses.dataclass(frozen=True)
class Stage:
    """One training stage of the learner.

    Attributes:
      name: log prefix (``grpo``, ``sft``).
      loss: ``grpo`` (clipped ratio + KL, docs/design.md §4) or ``nll`` (supervised, token mean).
      optim: the stage's AdamW (float32 moments), warm-up, clip and weight-decay mask.
      run: the stage's loop: ``steps`` (GRPO: batches, each with ``grpo.mu`` updates), ``seed`` (of the data
        order; the sampling key is the experiment's ``run.seed``), ``out_dir`` (metrics, checkpoints, export),
        ``checkpoint_every`` / ``keep_checkpoints``, ``eval_every``, ``log_every``, ``resume``.
      batch_size: prompts per step over all processes.
      lora_rank, lora_alpha: train LoRA factors instead of the full policy (merged into it at the end).
      export: write the final policy as a Hugging Face directory to ``<run.out_dir>/hf``.
    """

    name: str
    loss: str
    optim: OptimSpec
    run: RunSpec
    batch_size: int
    lora_rank: int = 0
    lora_alpha: float = 32.0
    export: bool = False

    def with_steps(self, steps: int) -> Stage:
        """The same stage run for ``steps`` steps."""
        return dataclasses.replace(self, run=dataclasses.replace(self.run, steps=int(steps)))


def grpo_stage(cfg: ExperimentConfig, *, export: bool = True) -> Stage:
    """The GRPO stage of ``cfg``: ``cfg.optim``, ``cfg.run``, ``data.batch_size`` prompts per step."""
    return Stage(name="grpo", loss="grpo", optim=cfg.optim, run=cfg.run, batch_size=cfg.data.batch_size, export=export)


def sft_stage(cfg: ExperimentConfig, *, num_records: int | None = None, export: bool = False) -> Stage:
    """The SFT stage of ``cfg.sft`` (``steps = 0`` with ``num_records``: one epoch), under ``<out_dir>/sft``;
    AdamW with ``sft.lr``, ``sft.weight_decay``, ``sft.grad_clip`` and ``optim``'s decay mask."""
    s, o = cfg.sft, cfg.optim
    steps = s.steps or (math.ceil(num_records / s.batch_size) if num_records else 0)
    optim = OptimSpec(
        lr=s.lr, weight_decay=s.weight_decay, grad_clip=s.grad_clip, decay=o.decay, decay_embeddings=o.decay_embeddings
    )
    run = dataclasses.replace(
        cfg.run,
        steps=steps,
        seed=cfg.run.seed + 1,
        seeds=(),
        out_dir=os.path.join(cfg.run.out_dir, "sft"),
        checkpoint_every=s.checkpoint_every,
        keep_checkpoints=1,
        eval_every=0,
        log_every=s.log_every,
    )
    return Stage(
        name="sft",
        loss="nll",
        optim=optim,
        run=run,
        batch_size=s.batch_size,
        lora_rank=s.lora_rank,
        lora_alpha=s.lora_alpha,
        export=export,
    )


@functools.cache
def stage_optimizer(optim: OptimSpec):
    """The optax AdamW of ``optim``, one object per setting: the transformation is static in the optimiser's
    graph, and a new one per learner would recompile the jitted steps for every learner object (a resumed run,
    tests or seeds building several learners in one process)."""
    return make_optimizer(
        optim.lr,
        weight_decay=optim.weight_decay,
        b1=optim.b1,
        b2=optim.b2,
        eps=optim.eps,
        warmup_steps=optim.warmup_steps,
        grad_clip=optim.grad_clip,
        decay=optim.decay,
        decay_embeddings=optim.decay_embeddings,
    )


def progress_line(
    prefix: str,
    step: int,
    total: int,
    elapsed: float,
    metrics: dict[str, float],
    keys: tuple[str, ...],
    *,
    done_here: int | None = None,
    width: int = 20,
) -> str:
    """``[grpo] [#####-----] 12/50  ETA 3m05s  loss=... reward/total=...``: the ETA is the mean time of the
    ``done_here`` steps run in ``elapsed`` seconds (default ``step``) times the steps left."""
    done = min(step / max(total, 1), 1.0)
    bar = "#" * int(round(done * width)) + "-" * (width - int(round(done * width)))
    eta = elapsed / max(step if done_here is None else done_here, 1) * max(total - step, 0)
    return (
        f"[{prefix}] [{bar}] {step}/{total}  ETA {int(eta // 60)}m{int(eta % 60):02d}s  {format_metrics(metrics, keys)}"
    )
