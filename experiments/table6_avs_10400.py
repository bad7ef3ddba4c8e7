"""Omni-R1 Table 6, "AVS 10400 samples": RefAID on Ref-AVS as ``omni_r1_7b_refaid.py`` but 10,400 training samples
(1,300 steps at batch 8 instead of 200), evaluated on AVHBench's JUDGE subset.

Command::

    python -m omnir1_jax.train --config experiments/table6_avs_10400.py --set data.root='"data/refavs"'
    python -m omnir1_jax.evaluate --config experiments/table6_avs_10400.py --split judge \
        --policy runs/table6_avs_10400/hf --set data.dataset='"avhbench"' \
        --set data.root='"data/AVHBench_v0"' --set data.max_frames=24

Hardware: as ``omni_r1_7b_refaid.py`` (8x 80 GB GPUs + bridge workers).

Paper (Omni-R1 Table 6, AVHBench JUDGE subset, 5,302 questions): **58.9 %** (3,120 correct) with 10,400 samples,
below the 60.8 % of 1,600 samples ("potential overfitting or task imbalance"). Deviation: Ref-AVS's training split
has fewer clips than 10,400 expressions allow per pass; the run takes as many passes as 1,300 steps need.
"""

import dataclasses
import os

from omnir1_jax.config import load_config


def get_config():
    base = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "omni_r1_7b_refaid.py"))
    return dataclasses.replace(base, name="table6_avs_10400",
                               run=dataclasses.replace(base.run, steps=1300, out_dir="runs/table6_avs_10400"))
