"""The Table-4 ablation row R_K + R_G on the synthetic world, on a CPU (the notebook's input).

Command::

    python -m omnir1_jax.train --config experiments/synthetic_cpu_table4_rk_rg.py --no-eval

Hardware: 2 CPU cores, ~10 minutes. Writes ``runs/synthetic_cpu_table4_rk_rg/metrics.jsonl``, which
``experiments/notebooks/ablation.ipynb`` plots next to the other three rows. No paper number (synthetic data);
the paper's row: overall 39.9 J&F on ReVOS (Table 4). Same as ``synthetic_cpu.py`` (SFT format warm-up,
then GRPO) except the reward weights alpha_K=1.0, alpha_A=0.0, alpha_G=1.0.
"""

import dataclasses
import os

from omnir1_jax.config import load_config
from omnir1_jax.rewards import RewardWeights


def get_config():
    base = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "synthetic_cpu.py"))
    return dataclasses.replace(
        base, name="synthetic_cpu_table4_rk_rg",
        grpo=dataclasses.replace(base.grpo, rewards=RewardWeights(alpha_k=1.0, alpha_a=0.0, alpha_g=1.0)),
        run=dataclasses.replace(base.run, out_dir="runs/synthetic_cpu_table4_rk_rg"))
