"""Omni-R1 Table 4, the reward ablation: four rows that differ only in the reward weights.

Hardware: as omni_r1_7b_vos.py (Qwen2.5-Omni-7B System 1 on 8x 80 GB GPUs + bridge workers).

The paper trains every row one epoch on ReVOS + MeViS and constrains System 1 to exactly four keyframes:
``grpo.num_keyframes = 4`` (the prompt asks for exactly 4 moments and only the first 4 items of an answer count,
as the release truncates to 4). Everything else is omni_r1_7b_vos.py. Each variant writes ``runs/table4_<variant>``.

Variants (one paper row each; Paper: Omni-R1 Table 4, ReVOS J&F, referring / reasoning / single / multi, overall)

``rk``: rewards R_K (alpha_K=1.0, alpha_A=0.0, alpha_G=0.0). Paper: 44.1, 26.2, 36.6, 34.1, overall **35.2**::

    python -m omnir1_jax.train --config experiments/table4.py:rk [--set model.checkpoint=... data.root=...]
    python -m omnir1_jax.evaluate --config experiments/table4.py:rk --split valid --policy runs/table4_rk/hf

``rk_ra``: rewards R_K + R_A (alpha_K=1.0, alpha_A=1.0, alpha_G=0.0). Paper: 43.1, 29.5, 36.8, 37.5, overall
**36.3**::

    python -m omnir1_jax.train --config experiments/table4.py:rk_ra [--set model.checkpoint=... data.root=...]
    python -m omnir1_jax.evaluate --config experiments/table4.py:rk_ra --split valid --policy runs/table4_rk_ra/hf

``rk_rg``: rewards R_K + R_G (alpha_K=1.0, alpha_A=0.0, alpha_G=1.0). Paper: 45.5, 34.2, 39.6, 42.6, overall
**39.9**::

    python -m omnir1_jax.train --config experiments/table4.py:rk_rg [--set model.checkpoint=... data.root=...]
    python -m omnir1_jax.evaluate --config experiments/table4.py:rk_rg --split valid --policy runs/table4_rk_rg/hf

``rk_ra_rg``: rewards R_K + R_A + R_G (alpha_K=1.0, alpha_A=1.0, alpha_G=1.0). Paper: 44.2, 32.5, 38.2, 41.9,
overall **38.4**::

    python -m omnir1_jax.train --config experiments/table4.py:rk_ra_rg [--set model.checkpoint=... data.root=...]
    python -m omnir1_jax.evaluate --config experiments/table4.py:rk_ra_rg --split valid \\
        --policy runs/table4_rk_ra_rg/hf
"""

import dataclasses
import os

from omnir1_jax.config import load_config
from omnir1_jax.rewards import RewardWeights

# variant -> (alpha_K, alpha_A, alpha_G)
VARIANTS = {"rk": (1.0, 0.0, 0.0), "rk_ra": (1.0, 1.0, 0.0), "rk_rg": (1.0, 0.0, 1.0), "rk_ra_rg": (1.0, 1.0, 1.0)}


def get_config(variant: str):
    alpha_k, alpha_a, alpha_g = VARIANTS[variant]
    base = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "omni_r1_7b_vos.py"))
    return dataclasses.replace(
        base,
        name=f"table4_{variant}",
        grpo=dataclasses.replace(
            base.grpo, rewards=RewardWeights(alpha_k=alpha_k, alpha_a=alpha_a, alpha_g=alpha_g), num_keyframes=4
        ),
        run=dataclasses.replace(base.run, out_dir=f"runs/table4_{variant}"),
    )
