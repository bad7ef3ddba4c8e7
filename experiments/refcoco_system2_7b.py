"""Omni-R1 + refCOCOg: the System-2-enhanced model. GRPO on refCOCOg grounding in the style of SegZero (the task
``grounding``, docs/design.md §3.9), then that model serves as System 1 and System 2 on ReVOS.

Command::

    python -m omnir1_jax.train --config experiments/refcoco_system2_7b.py \
        --set model.checkpoint='"checkpoints/Qwen2.5-Omni-7B"' --set data.root='"data/refcoco"'
    python -m omnir1_jax.evaluate --config experiments/omni_r1_7b_vos.py --split valid \
        --policy runs/refcoco_system2_7b/hf --set data.dataset='"revos"' --set data.root='"data/revos"'

(``data/refcoco``: the REFER layout, ``refs(umd).p`` + COCO ``instances.json`` + ``train2014/``. The evaluation
recipe's ``bridge.grounder = "qwen2_5_omni:@policy"`` starts System 2 on ``--policy``, so the same trained model
is System 1 and System 2.) To start from the VOS-trained Omni-R1 instead of the base model, set
``model.checkpoint`` to ``runs/omni_r1_7b_vos/hf``.

Hardware: 8x 80 GB GPUs (7B: bf16 compute, float32 master weights and AdamW moments, FSDP) or a TPU v5p-16 slice;
images only: no bridge, no SAM2 while training.

Paper (Omni-R1 Table 4, first row "Omni-R1 + refcoco"): ReVOS referring 52.5, reasoning 36.9, single 45.0,
multi 46.6, overall **44.7** J&F. Section 4.1: "2,000 images from refCOCOg for one epoch in the style of SegZero",
beta 0.04, group 8, lr 1e-6, AdamW wd 0.01.

What runs: each prompt is one refCOCOg training image, resized (aspect kept, sides multiples of 28) to at most
900*28*28 px (System 2's resolution) by the pipeline's image view, with the released code's SegZero-style prompt
around the referring expression; the policy answers ``{"bbox_2d": [...], "points_1": [...], "points_2": [...]}``
in that image's pixels; reward = format + IoU term + box-L1 term + point term
(:mod:`omnir1_jax.rewards.segzero`). ``run.epoch_unit = "videos"`` takes one random sentence per image per epoch,
so the 250 steps at batch 8 see 2,000 distinct images.

Deviations: the paper does not say which 2,000 images; here they are the first 2,000 of the seeded shuffle of
the refCOCOg (umd) training images. The GT points (centres of the two largest inscribed circles) are computed
from the mask's distance transform (:func:`omnir1_jax.rewards.segzero.gt_points`) instead of read from SegZero's
preprocessed data; IoU uses continuous box areas (the release counts inclusive pixels). The release's exact
SegZero data mix and its per-image pixel floor are not given; ``s1_min_pixels`` keeps the System-2 floor of
4*28*28.
"""

from omnir1_jax.config import DataSpec, ExperimentConfig, GRPOSpec, MeshSpec, ModelSpec, OptimSpec, RunSpec


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="refcoco_system2_7b",
        model=ModelSpec(
            checkpoint="checkpoints/Qwen2.5-Omni-7B", preset="qwen2_5_omni_7b", dtype="bfloat16", remat=True
        ),
        mesh=MeshSpec(data=-1, fsdp=8, decode_gather=True),
        data=DataSpec(
            dataset="refcocog",
            root="data/refcoco",
            split="train",
            task="grounding",
            batch_size=8,
            min_frames=1,
            max_frames=1,
            s1_max_pixels=900 * 28 * 28,
            s1_min_pixels=4 * 28 * 28,
            workers=4,
        ),
        grpo=GRPOSpec(group_size=8, beta=0.04, max_new_tokens=512),
        optim=OptimSpec(lr=1e-6, weight_decay=0.01),
        # 250 steps x 8 images = the paper's 2,000 images, one sentence per image (epoch_unit "videos" = images)
        run=RunSpec(
            steps=250, epoch_unit="videos", out_dir="runs/refcoco_system2_7b", checkpoint_every=25, eval_split="val"
        ),
    )
