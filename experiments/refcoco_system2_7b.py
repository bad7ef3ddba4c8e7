"""Omni-R1 + refCOCOg: the System-2-enhanced model (2,000 refCOCOg images, one epoch, SegZero-style grounding
reward), then evaluated on ReVOS with that model serving as System 1 and System 2.

Command::

    python -m omnir1_jax.train --config experiments/refcoco_system2_7b.py --set data.root='"data/refcoco"'
    python -m omnir1_jax.evaluate --config experiments/omni_r1_7b_vos.py --split valid --policy DIR \
        --set bridge.grounder='"qwen2_5_omni:DIR"'

Hardware: 8x 80 GB GPUs (7B, bf16, FSDP); images only, no SAM2 during training.

Paper (Omni-R1 Table 4, first row "Omni-R1 + refcoco"): ReVOS referring 52.5, reasoning 36.9, single 45.0,
multi 46.6, overall **44.7** J&F. Training as in RefAID (one image, a description, box rewards) on refCOCOg;
needs ``read_records`` to accept ``data.dataset='refcocog'`` (the reader ``read_refcocog`` exists).
"""

import dataclasses
import os

from omnir1_jax.config import load_config


def get_config():
    base = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "omni_r1_7b_refaid.py"))
    return dataclasses.replace(
        base, name="refcoco_system2_7b",
        data=dataclasses.replace(base.data, dataset="refcocog", root="data/refcoco", split="train", min_frames=1,
                                 max_frames=1),
        run=dataclasses.replace(base.run, steps=250, out_dir="runs/refcoco_system2_7b", eval_split="val"))
