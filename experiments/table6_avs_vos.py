"""Omni-R1 Table 6, "AVS and VOS": one GRPO run whose every batch mixes Ref-AVS clips (RefAID: first frame + audio,
one description, System-2 boxes) and ReVOS / MeViS clips (keyframes + descriptions, R_K + R_G), evaluated on
AVHBench's JUDGE subset.

Command::

    python -m omnir1_jax.train --config experiments/table6_avs_vos.py --set data.root='"data"' \
        --set bridge.sam2_checkpoint='"checkpoints/sam2.1_hiera_large.pt"'
    python -m omnir1_jax.evaluate --config experiments/table6_avs_vos.py --split judge \
        --policy runs/table6_avs_vos/hf --set data.dataset='"avhbench"' --set data.task='"vos"' \
        --set data.root='"data/AVHBench_v0"' --set data.max_frames=24

Hardware: as ``omni_r1_7b_vos.py`` (8x 80 GB GPUs or a TPU v5p-16 slice for System 1; bridge workers with
System 2 = Qwen2.5-Omni-7B and SAM2 hiera-large for the VOS groups).

Paper (Omni-R1 Table 6, AVHBench JUDGE subset, 5,302 questions): AVS and VOS **71.9 %** (3,811 correct), against
58.5 % for the base model, 60.8 % for AVS 1,600 samples (``omni_r1_7b_refaid.py``), 61.5 % with beta = 0.001
(``hallucination_beta0001.py``), 58.9 % for AVS 10,400 samples (``table6_avs_10400.py``) and 66.0 % for VOS
alone (``omni_r1_7b_vos.py``).

Data (``data.task = "mixture"``, :mod:`omnir1_jax.tasks.mixture`): every batch of 8 prompts holds 4 Ref-AVS
prompts (``data/refavs``, RefAID reward: R_fmt + box IoU on frame 0) and 4 VOS prompts from the ReVOS + MeViS
mixture (``data/revos``, ``data/mevis``; R_fmt + R_K + R_G through SAM2). Deviations: the paper states neither
the ratio of the two tasks nor the joint run's length; we use an even split and 325 steps (the VOS run's epoch
over 2,600 videos at batch 8, so the VOS half sees 1,300 videos and the AVS half 1,300 clips). Everything else
is ``omni_r1_7b_vos.py``'s.
"""

import dataclasses
import os

from omnir1_jax.config import load_config


def get_config():
    base = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "omni_r1_7b_vos.py"))
    data = dataclasses.replace(base.data, task="mixture", min_frames=8, max_frames=24,
                               tasks=(("refaid", "refavs", "refavs", 4), ("vos", "mixture", ".", 4)))
    return dataclasses.replace(base, name="table6_avs_vos", data=data,
                               run=dataclasses.replace(base.run, steps=325, out_dir="runs/table6_avs_vos"))
