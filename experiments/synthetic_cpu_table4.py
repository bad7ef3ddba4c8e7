"""The four Table-4 ablation rows on the synthetic world, on a CPU, as one sweep over five seeds.

Command (the notebook ``experiments/notebooks/ablation.ipynb`` reads its ``runs/table4/sweep.json``)::

    python -m omnir1_jax.sweep --seeds 0-4 --out runs/table4 \
        --config experiments/synthetic_cpu_table4.py:rk --config experiments/synthetic_cpu_table4.py:rk_ra \
        --config experiments/synthetic_cpu_table4.py:rk_rg --config experiments/synthetic_cpu_table4.py:rk_ra_rg

Hardware: 2 CPU cores; the rows share each seed's SFT warm-up (the first row trains it), then each row trains its
five seeds' GRPO in one program (~8 minutes per row, ~7 for the shared warm-up; BENCHMARKS.md "Table 4 with
error bars" has the measured figures). No paper number applies to the synthetic world; each variant names the
paper's row (overall J&F on ReVOS, Omni-R1 Table 4) so the sweep's table shows it beside ours. Same as
``synthetic_cpu.py`` (its SFT warm-up, then 80 GRPO steps) except the reward weights: the demo itself trains on
R_fmt + R_G, without R_K; every Table-4 row has R_K.

Variants (each row alone, one seed, with its own command)

``rk``: the row R_K, alpha_K=1.0, alpha_A=0.0, alpha_G=0.0 (the paper's row: overall 35.2)::

    python -m omnir1_jax.train --config experiments/synthetic_cpu_table4.py:rk

``rk_ra``: the row R_K + R_A, alpha_K=1.0, alpha_A=1.0, alpha_G=0.0 (the paper's row: overall 36.3)::

    python -m omnir1_jax.train --config experiments/synthetic_cpu_table4.py:rk_ra

``rk_rg``: the row R_K + R_G, alpha_K=1.0, alpha_A=0.0, alpha_G=1.0 (the paper's row: overall 39.9)::

    python -m omnir1_jax.train --config experiments/synthetic_cpu_table4.py:rk_rg

``rk_ra_rg``: the row R_K + R_A + R_G, alpha_K=1.0, alpha_A=1.0, alpha_G=1.0 (the paper's row: overall 38.4)::

    python -m omnir1_jax.train --config experiments/synthetic_cpu_table4.py:rk_ra_rg
"""

import dataclasses
import os

from omnir1_jax.config import load_config
from omnir1_jax.rewards import RewardWeights

# variant -> (alpha_K, alpha_A, alpha_G)
VARIANTS = {"rk": (1.0, 0.0, 0.0), "rk_ra": (1.0, 1.0, 0.0), "rk_rg": (1.0, 0.0, 1.0), "rk_ra_rg": (1.0, 1.0, 1.0)}
# variant -> the paper's overall J&F on ReVOS (Omni-R1 Table 4), shown beside the sweep's intervals
PAPER = {"rk": 35.2, "rk_ra": 36.3, "rk_rg": 39.9, "rk_ra_rg": 38.4}


def get_config(variant: str):
    alpha_k, alpha_a, alpha_g = VARIANTS[variant]
    base = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "synthetic_cpu.py"))
    return dataclasses.replace(
        base,
        name=f"synthetic_cpu_table4_{variant}",
        paper=(("J&F", PAPER[variant]),),
        grpo=dataclasses.replace(base.grpo, rewards=RewardWeights(alpha_k=alpha_k, alpha_a=alpha_a, alpha_g=alpha_g)),
        run=dataclasses.replace(base.run, out_dir=f"runs/synthetic_cpu_table4_{variant}"),
    )
