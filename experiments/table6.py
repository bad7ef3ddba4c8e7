"""Omni-R1 Table 6, hallucination on AVHBench's JUDGE subset (5,302 yes/no questions): the RefAID runs that vary
the KL weight or the number of Ref-AVS samples, and the joint Ref-AVS + VOS run. The table's other rows are
``omni_r1_7b_refaid.py`` ("AVS 1600 samples", 60.8 %) and ``omni_r1_7b_vos.py`` ("VOS", 66.0 %); the base model
scores 58.5 %.

AVHBench is a yes/no QA dataset; each evaluation command below reads its release layout (``json/<video_id>.json`` +
``video/<video_id>.mp4``, see ``omnir1_jax.data.avhbench``), keeps the three JUDGE tasks, and reports the pooled
accuracy (the paper's number) with per-task accuracy, precision, recall, F1 and yes ratio. The answer prompt is
ours (the paper gives none).

Variants (Paper: Omni-R1 Table 6, AVHBench JUDGE subset, 5,302 questions)

``beta0001``: the hallucination ablation, RefAID training on 1,600 Ref-AVS samples with a small KL weight,
beta = 0.001; everything but beta is ``omni_r1_7b_refaid.py``. The run keeps its name
``hallucination_beta0001``. Hardware: as ``omni_r1_7b_refaid.py`` (8x 80 GB GPUs + bridge workers). Paper:
**61.5 %** (3,261 correct) with beta = 0.001, against 60.8 % with the default beta = 0.04 and 58.5 % for the base
model::

    python -m omnir1_jax.train --config experiments/table6.py:beta0001 --set data.root='"data/refavs"'
    python -m omnir1_jax.evaluate --config experiments/table6.py:beta0001 --split judge \\
        --policy runs/hallucination_beta0001/hf --set data.dataset='"avhbench"' \\
        --set data.root='"data/AVHBench_v0"' --set data.max_frames=24

``avs_10400``: "AVS 10400 samples", RefAID on Ref-AVS as ``omni_r1_7b_refaid.py`` but 10,400 training samples
(1,300 steps at batch 8 instead of 200). Run name ``table6_avs_10400``. Hardware: as ``omni_r1_7b_refaid.py``
(8x 80 GB GPUs + bridge workers). Paper: **58.9 %** (3,120 correct) with 10,400 samples, below the 60.8 % of 1,600
samples ("potential overfitting or task imbalance"). Deviation: Ref-AVS's training split has fewer clips than
10,400 expressions allow per pass; the run takes as many passes as 1,300 steps need::

    python -m omnir1_jax.train --config experiments/table6.py:avs_10400 --set data.root='"data/refavs"'
    python -m omnir1_jax.evaluate --config experiments/table6.py:avs_10400 --split judge \\
        --policy runs/table6_avs_10400/hf --set data.dataset='"avhbench"' \\
        --set data.root='"data/AVHBench_v0"' --set data.max_frames=24

``avs_vos``: "AVS and VOS", one GRPO run whose every batch mixes Ref-AVS clips (RefAID: first frame + audio, one
description, System-2 boxes) and ReVOS / MeViS clips (keyframes + descriptions, R_K + R_G). Run name
``table6_avs_vos``. Hardware: as ``omni_r1_7b_vos.py`` (8x 80 GB GPUs or a TPU v5p-16 slice for System 1; bridge
workers with System 2 = Qwen2.5-Omni-7B and SAM2 hiera-large for the VOS groups). Paper: **71.9 %** (3,811
correct), against 58.5 % for the base model, 60.8 % for AVS 1,600 samples, 61.5 % with beta = 0.001, 58.9 % for
AVS 10,400 samples and 66.0 % for VOS alone::

    python -m omnir1_jax.train --config experiments/table6.py:avs_vos --set data.root='"data"' \\
        --set bridge.sam2_checkpoint='"checkpoints/sam2.1_hiera_large.pt"'
    python -m omnir1_jax.evaluate --config experiments/table6.py:avs_vos --split judge \\
        --policy runs/table6_avs_vos/hf --set data.dataset='"avhbench"' --set data.task='"vos"' \\
        --set data.root='"data/AVHBench_v0"' --set data.max_frames=24

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

VARIANTS = ("beta0001", "avs_10400", "avs_vos")


def _base(name: str):
    return load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), name))


def get_config(variant: str):
    if variant == "beta0001":
        base = _base("omni_r1_7b_refaid.py")
        return dataclasses.replace(
            base,
            name="hallucination_beta0001",
            grpo=dataclasses.replace(base.grpo, beta=0.001),
            run=dataclasses.replace(base.run, out_dir="runs/hallucination_beta0001"),
        )
    if variant == "avs_10400":
        base = _base("omni_r1_7b_refaid.py")
        return dataclasses.replace(
            base,
            name="table6_avs_10400",
            run=dataclasses.replace(base.run, steps=1300, out_dir="runs/table6_avs_10400"),
        )
    base = _base("omni_r1_7b_vos.py")
    data = dataclasses.replace(
        base.data,
        task="mixture",
        min_frames=8,
        max_frames=24,
        tasks=(("refaid", "refavs", "refavs", 4), ("vos", "mixture", ".", 4)),
    )
    return dataclasses.replace(
        base,
        name="table6_avs_vos",
        data=data,
        run=dataclasses.replace(base.run, steps=325, out_dir="runs/table6_avs_vos"),
    )
