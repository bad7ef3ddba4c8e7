"""The four Table-4 ablation rows on the synthetic world, on a CPU (the notebook's input).

Hardware: 2 CPU cores, ~10 minutes per row. Each variant writes ``runs/synthetic_cpu_table4_<variant>/metrics.jsonl``
(the run is named ``synthetic_cpu_table4_<variant>``), which ``experiments/notebooks/ablation.ipynb`` plots next to
the other three rows. No paper number (synthetic data); each variant names the paper's row (overall J&F on ReVOS,
Omni-R1 Table 4). Same as ``synthetic_cpu.py`` (its SFT warm-up, then GRPO) except the reward weights.

Variants

``rk``: the row R_K, alpha_K=1.0, alpha_A=0.0, alpha_G=0.0 (the paper's row: overall 35.2)::

    python -m omnir1_jax.train --config experiments/synthetic_cpu_table4.py:rk --no-eval

``rk_ra``: the row R_K + R_A, alpha_K=1.0, alpha_A=1.0, alpha_G=0.0 (the paper's row: overall 36.3)::

    python -m omnir1_jax.train --config experiments/synthetic_cpu_table4.py:rk_ra --no-eval

``rk_rg``: the row R_K + R_G, alpha_K=1.0, alpha_A=0.0, alpha_G=1.0 (the paper's row: overall 39.9)::

    python -m omnir1_jax.train --config experiments/synthetic_cpu_table4.py:rk_rg --no-eval

``rk_ra_rg``: the row R_K + R_A + R_G, alpha_K=1.0, alpha_A=1.0, alpha_G=1.0 (the paper's row: overall 38.4)::

    python -m omnir1_jax.train --config experiments/synthetic_cpu_table4.py:rk_ra_rg --no-eval
"""

import dataclasses
import os

from omnir1_jax.config import load_config
from omnir1_jax.rewards import RewardWeights

# variant -> (alpha_K, alpha_A, alpha_G)
VARIANTS = {"rk": (1.0, 0.0, 0.0), "rk_ra": (1.0, 1.0, 0.0), "rk_rg": (1.0, 0.0, 1.0), "rk_ra_rg": (1.0, 1.0, 1.0)}


def get_config(variant: str):
    alpha_k, alpha_a, alpha_g = VARIANTS[variant]
    base = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "synthetic_cpu.py"))
    return dataclasses.replace(
        base,
        name=f"synthetic_cpu_table4_{variant}",
        grpo=dataclasses.replace(base.grpo, rewards=RewardWeights(alpha_k=alpha_k, alpha_a=alpha_a, alpha_g=alpha_g)),
        run=dataclasses.replace(base.run, out_dir=f"runs/synthetic_cpu_table4_{variant}"),
    )
