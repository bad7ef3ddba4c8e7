"""Omni-R1-7B on Ref-AVS through RefAID: System 1 sees the first frame + the full audio and answers one grounding
description; System 2 boxes it on frame 0 (the paper's AVS training variant, appendix B).

Command::

    python -m omnir1_jax.train --config experiments/omni_r1_7b_refaid.py --set data.root='"data/refavs"'
    python -m omnir1_jax.evaluate --config experiments/omni_r1_7b_refaid.py --split test_s \
        --policy runs/omni_r1_7b_refaid/hf
    python -m omnir1_jax.evaluate --config experiments/omni_r1_7b_refaid.py --split test_u \
        --policy runs/omni_r1_7b_refaid/hf
    python -m omnir1_jax.evaluate --config experiments/omni_r1_7b_refaid.py --split test_n \
        --policy runs/omni_r1_7b_refaid/hf

System 2 (``bridge.grounder = "qwen2_5_omni:@policy"``, Omni-R1 section 4.1): while training, a frozen copy of the
pretrained model (the bridge's Qwen2.5-Omni grounder on ``model.checkpoint``); in evaluation the trained model
serves as System 1 and System 2: training exports it to ``runs/omni_r1_7b_refaid/hf`` and restarts the bridge's
grounder there for its evaluation after GRPO; ``omnir1_jax.evaluate --policy DIR`` starts it on ``DIR``.

Hardware: 8x 80 GB GPUs (7B System 1: bf16 compute, float32 master weights and AdamW moments, FSDP) + bridge
workers (System 2 + SAM2 hiera-large for evaluation).

Paper (Omni-R1 Table 1, Ref-AVSBench, masks from SAM2 on the model's grounding): seen J&F **47.2** (J 43.0,
F 51.4), unseen J&F **74.2** (J 71.3, F 77.0). Training: 1,600 Ref-AVS samples, one epoch, beta 0.04.
The same run is Table 6's "AVS 1600 samples" row: AVHBench JUDGE **60.8 %** (evaluate it as
``table6.py:beta0001``'s docstring shows, with this file and ``--policy runs/omni_r1_7b_refaid/hf``).
Training signal: the ``refaid`` task (``RefAIDTask``: R_fmt + box IoU of System 2's boxes on frame 0, no SAM2).
"""

from omnir1_jax.config import BridgeSpec, DataSpec, ExperimentConfig, GRPOSpec, MeshSpec, ModelSpec, OptimSpec, RunSpec
from omnir1_jax.rewards import RewardWeights


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="omni_r1_7b_refaid",
        model=ModelSpec(
            checkpoint="checkpoints/Qwen2.5-Omni-7B", preset="qwen2_5_omni_7b", dtype="bfloat16", remat=True
        ),
        mesh=MeshSpec(data=-1, fsdp=8, decode_gather=True),
        data=DataSpec(
            dataset="refavs",
            root="data/refavs",
            split="train",
            task="refaid",
            batch_size=8,
            min_frames=10,
            max_frames=10,
            workers=4,
        ),
        # System 2 = the policy: frozen pretrained while training, the trained export in evaluation
        bridge=BridgeSpec(
            grounder="qwen2_5_omni:@policy",
            segmenter="sam2",
            sam2_checkpoint="checkpoints/sam2.1_hiera_large.pt",
            workers=8,
            timeout_s=900.0,
        ),
        grpo=GRPOSpec(
            group_size=8, beta=0.04, max_new_tokens=256, rewards=RewardWeights(alpha_k=0.0, alpha_a=1.0, alpha_g=0.0)
        ),
        optim=OptimSpec(lr=1e-6, weight_decay=0.01),
        run=RunSpec(steps=200, out_dir="runs/omni_r1_7b_refaid", checkpoint_every=25, eval_split="test_s"),
    )
