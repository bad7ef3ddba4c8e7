"""Omni-R1 Table 1, "Qwen2.5-Omni-7B (SFT)": the supervised baseline on the same Ref-AVS training data as the RefAID
GRPO run (``omni_r1_7b_refaid.py``), evaluated with SAM2 on its grounding (the dagger rows).

Command::

    python -m omnir1_jax.sft --config experiments/table1_sft_refavs.py --set data.root='"data/refavs"' \
        --save runs/table1_sft_refavs/hf
    python -m omnir1_jax.evaluate --config experiments/table1_sft_refavs.py --split test_s \
        --policy runs/table1_sft_refavs/hf
    python -m omnir1_jax.evaluate --config experiments/table1_sft_refavs.py --split test_u \
        --policy runs/table1_sft_refavs/hf

Hardware: as ``omni_r1_7b_refaid.py`` (8x 80 GB GPUs; the evaluation needs a bridge with System 2 = the SFT model
and SAM2 hiera-large).

Paper (Omni-R1 Table 1, Ref-AVSBench): seen J&F **39.1** (J 35.4, F 42.8), unseen J&F **66.2** (J 63.1, F 69.3),
between the base model (31.6 / 62.3) and Omni-R1-7B (47.2 / 74.2).

Deviations: the paper does not describe its SFT data or recipe. Here the SFT targets use System 1's RefAID answer
format with the referring expression itself as the grounding description (``sft.target = "expression"``:
``<think>...</think><answer>{expression}</answer>``), on the same 1,600 Ref-AVS samples (200 steps x 8), full
fine-tuning at lr 1e-5; System 2 in evaluation is the SFT model (``bridge.grounder = "qwen2_5_omni:@policy"``).
"""

import dataclasses
import os

from omnir1_jax.config import load_config


def get_config():
    base = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "omni_r1_7b_refaid.py"))
    sft = dataclasses.replace(
        base.sft,
        steps=200,
        batch_size=8,
        lr=1e-5,
        weight_decay=0.01,
        target="expression",
        think="the audio and the first frame point to {instruction}",
    )
    return dataclasses.replace(
        base, name="table1_sft_refavs", sft=sft, run=dataclasses.replace(base.run, out_dir="runs/table1_sft_refavs")
    )
