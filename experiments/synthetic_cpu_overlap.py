"""The README's CPU demo with asynchronous rewards: the bridge scores one batch while the learner samples the next
and updates on the one before (``grpo.overlap = "one_step"``, docs/design.md §4.8). Everything else is
``synthetic_cpu.py``: the same warm-up, world, seeds and step budget, so the two runs pair seed by seed.

Command (both arms on five seeds; the overlapped arm reuses the synchronous arm's warm-up, which does not depend
on ``grpo.overlap``)::

    python -m omnir1_jax.sweep --seeds 0-4 --out runs/overlap \\
        --config experiments/synthetic_cpu.py --config experiments/synthetic_cpu_overlap.py

or this arm alone, five seeds in one program::

    python -m omnir1_jax.train --config experiments/synthetic_cpu_overlap.py --seeds 0-4

Hardware: 2 CPU cores, no accelerator (about the demo's time per arm; the shared warm-up runs once). The
question it answers: does training on rewards one policy version stale cost J&F? Measured (2026-12-07, seeds
0-4): J&F after GRPO 0.971 [0.957, 0.979] overlapped against 0.976 [0.974, 0.979] synchronous; paired,
overlapped - synchronous = -0.006 [-0.017, 0.000] (means with 95 % bootstrap CIs over the seeds; four seeds end
equal). On 2 cores the overlapped step is 0.915x the synchronous one (``benchmarks/bench_train.py --overlap``):
the bridge and the learner then share the cores. BENCHMARKS.md "Learner" has both tables.
"""

import dataclasses
import os

from omnir1_jax.config import ExperimentConfig, load_config


def get_config() -> ExperimentConfig:
    base = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "synthetic_cpu.py"))
    return dataclasses.replace(
        base,
        name="synthetic_cpu_overlap",
        grpo=dataclasses.replace(base.grpo, overlap="one_step"),
        run=dataclasses.replace(base.run, out_dir="runs/synthetic_cpu_overlap"),
    )
