"""The hallucination ablation: RefAID training on 1,600 Ref-AVS samples with a small KL weight, beta = 0.001.

Command::

    python -m omnir1_jax.train --config experiments/hallucination_beta0001.py --set data.root='"data/refavs"'
    python -m omnir1_jax.evaluate --config experiments/hallucination_beta0001.py --split judge \
        --policy runs/hallucination_beta0001/hf --set data.dataset='"avhbench"' \
        --set data.root='"data/AVHBench_v0"' --set data.max_frames=24

Hardware: as ``omni_r1_7b_refaid.py`` (8x 80 GB GPUs + bridge workers).

Paper (Omni-R1 Table 6, AVHBench JUDGE subset, 5,302 questions): **61.5 %** (3,261 correct) with beta = 0.001,
against 60.8 % with the default beta = 0.04 and 58.5 % for the base model. AVHBench is a yes/no QA dataset;
the evaluation command above reads its release layout (``json/<video_id>.json`` + ``video/<video_id>.mp4``, see
``omnir1_jax.data.avhbench``), keeps the three JUDGE tasks, and reports the pooled accuracy (the paper's number)
with per-task accuracy, precision, recall, F1 and yes ratio. The answer prompt is ours (the paper gives none).
Everything but beta is ``omni_r1_7b_refaid.py``.
"""

import dataclasses
import os

from omnir1_jax.config import load_config


def get_config():
    base = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "omni_r1_7b_refaid.py"))
    return dataclasses.replace(base, name="hallucination_beta0001",
                               grpo=dataclasses.replace(base.grpo, beta=0.001),
                               run=dataclasses.replace(base.run, out_dir="runs/hallucination_beta0001"))
