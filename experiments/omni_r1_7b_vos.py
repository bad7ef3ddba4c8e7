"""Omni-R1-7B on video object segmentation: GRPO of System 1 with R_K + R_G (the paper's main VOS result).

Command::

    python -m omnir1_jax.train --config experiments/omni_r1_7b_vos.py \
        --set model.checkpoint='"checkpoints/Qwen2.5-Omni-7B"' --set data.root='"data"' \
        --set bridge.sam2_checkpoint='"checkpoints/sam2.1_hiera_large.pt"'
    python -m omnir1_jax.evaluate --config experiments/omni_r1_7b_vos.py --split valid --policy runs/omni_r1_7b_vos/hf \
        --set data.dataset='"revos"' --set data.root='"data/revos"'
    python -m omnir1_jax.evaluate --config experiments/omni_r1_7b_vos.py --split valid_u \
        --policy runs/omni_r1_7b_vos/hf \
        --set data.dataset='"mevis"' --set data.root='"data/mevis"'

System 2 (``bridge.grounder = "qwen2_5_omni:@policy"``, Omni-R1 section 4.1): while training, a frozen copy of the
pretrained model (the bridge's Qwen2.5-Omni grounder on ``model.checkpoint``); in evaluation, the trained model
itself, "serving as both System 1 and System 2": the training run exports the policy to
``runs/omni_r1_7b_vos/hf`` (weights + tokenizer / processor files) and restarts the bridge's grounder on that
directory for its evaluation after GRPO; ``omnir1_jax.evaluate --policy DIR`` starts it on ``DIR``. (Table 5's
MeViS number used Sa2VA-1B as System 2: ``--set bridge.grounder=...`` with such a model.)

Hardware: System 1 (7B: bf16 compute, float32 master weights and AdamW moments; mesh fsdp 2 x tensor 4) on 8x 80
GB GPUs or a TPU v5p-8 to v5p-64 slice; one bridge worker per GPU host
(System 2 = Qwen2.5-Omni-7B + SAM2 hiera-large); about a day for one epoch.

Paper (Omni-R1, Table 2, System 1 = System 2 = Omni-R1-7B): ReVOS referring 53.2, reasoning 41.9, single 48.3,
multi 46.5, overall **47.6** J&F; MeViS valid_u (Table 5, System 2 = Sa2VA-1B): 55.4.
Training data in the paper: 2,600 ReVOS + MeViS videos, one epoch, beta 0.04, group 8, lr 1e-6 AdamW wd 0.01,
8-24 frames per clip at 128*28*28 px, System 2 at 900*28*28 px. Training data here: the mixture source
(``data.dataset = "mixture"``) over ``data/revos`` (ReVOS layout) and ``data/mevis`` (MeViS layout), 2,600 videos
drawn uniformly from the union of their training videos (the paper states the total only, not the split between
the two, so each dataset's expected share is proportional to its size; ``--set data.mixture_videos=0`` takes
every video). The run is one epoch over those videos (``run.steps = 0``, ``run.epoch_unit = "videos"``: the
steps are derived from the data; each epoch takes one random expression per video, as the release does). The same
run is Table 6's "VOS" row (AVHBench JUDGE **66.0 %**; evaluate as ``table6.py:avs_vos``'s docstring shows);
the joint "AVS and VOS" row is a mixture of tasks, ``table6.py:avs_vos``.
"""

from omnir1_jax.config import BridgeSpec, DataSpec, ExperimentConfig, GRPOSpec, MeshSpec, ModelSpec, OptimSpec, RunSpec
from omnir1_jax.rewards import RewardWeights


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="omni_r1_7b_vos",
        # no rematerialisation, the 2 x 4 (fsdp x tensor) mesh, the AdamW moments split over data too
        # (shard_optimizer) and the update reading the decoder weights gathered once (update_gather): the fastest
        # update measured for v5p-64 (60 % roofline MFU with the float32 masters, 25.8 GB per chip, against 58 % /
        # 31.9 GB without the last two, 51 % / 26.4 GB with remat "dots" and 46 % with fsdp=8 / full remat; the
        # compiler's own time estimate 0.286 s against 0.297 s and 0.329 s; fits on v5p-8 with 8 micro-batches:
        # BENCHMARKS.md "Scale"); decode_gather: the decoder weights gathered once per rollout
        model=ModelSpec(
            checkpoint="checkpoints/Qwen2.5-Omni-7B", preset="qwen2_5_omni_7b", dtype="bfloat16", remat=False
        ),
        mesh=MeshSpec(data=-1, fsdp=2, tensor=4, decode_gather=True, shard_optimizer=True, update_gather=True),
        data=DataSpec(
            dataset="mixture",
            root="data",
            mixture=(("revos", "revos"), ("mevis", "mevis")),
            mixture_videos=2600,
            mixture_seed=0,
            split="train",
            task="vos",
            batch_size=8,
            min_frames=8,
            max_frames=24,
            s1_max_pixels=128 * 28 * 28,
            s1_min_pixels=16 * 28 * 28,
            workers=4,
        ),
        # System 2 = the policy: frozen pretrained while training, the trained export in evaluation
        bridge=BridgeSpec(
            start=True,
            grounder="qwen2_5_omni:@policy",
            segmenter="sam2",
            sam2_config="configs/sam2.1/sam2.1_hiera_l.yaml",
            sam2_checkpoint="checkpoints/sam2.1_hiera_large.pt",
            workers=8,
            timeout_s=900.0,
        ),
        grpo=GRPOSpec(
            group_size=8,
            mu=1,
            beta=0.04,
            temperature=1.0,
            max_new_tokens=512,
            micro_batches=0,
            rewards=RewardWeights(alpha_k=1.0, alpha_a=0.0, alpha_g=1.0),
        ),
        optim=OptimSpec(lr=1e-6, weight_decay=0.01),
        # steps = 0: derived from the data (runtime.records.resolve_steps): one epoch over the 2,600 videos, one
        # random expression per video as the release samples (ceil(2600 / 8) = 325 steps at batch 8)
        run=RunSpec(
            steps=0,
            epochs=1.0,
            epoch_unit="videos",
            out_dir="runs/omni_r1_7b_vos",
            checkpoint_every=25,
            eval_split="valid",
        ),
    )
