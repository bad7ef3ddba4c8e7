"""CrossOmni GRPO of Qwen2.5-Omni-7B from the SFT checkpoint: lr 5e-6, batch 16, 4 rollouts, one epoch over
982 modality-balanced questions; rewards = format + accuracy + contextual consistency + logical coherence, the
last two scored by a judge model (the paper: Qwen3-Next-80B-A3B-Instruct).

The 982 questions: ``data.balanced_subset = 982`` draws them from the training split with seed 0 so that every
source->target task has a similar number (109 or 110 each of the 9 tasks); the run is one epoch over them
(``run.steps = 0``: derived from the data, ceil(982 / 16) = 62 steps).

Command::

    python -m omnir1_jax.crossomni.train --config experiments/crossomni_grpo_7b.py --stage grpo \
        --set model.checkpoint='"runs/crossomni_sft_7b/hf"' \
        --judge hf:checkpoints/Qwen3-Next-80B-A3B-Instruct --save runs/crossomni_grpo_7b/hf
    python -m omnir1_jax.evaluate --config experiments/crossomni_grpo_7b.py --split test \
        --policy runs/crossomni_grpo_7b/hf

Hardware: 8x 80 GB GPUs for the policy + the judge on its own GPUs in the bridge (``--judge hf:PATH`` starts it;
``--judge bridge:tcp://HOST:PORT`` uses a remote one; ``--judge python:MODULE:FUNCTION`` any callable).

Paper (CrossOmni Table 7 / 9, accuracy %): overall **62.56**; single-modality 71.13, cross-modality 59.58.
"""

from omnir1_jax.config import DataSpec, ExperimentConfig, GRPOSpec, MeshSpec, ModelSpec, OptimSpec, RunSpec


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="crossomni_grpo_7b",
        model=ModelSpec(checkpoint="runs/crossomni_sft_7b/hf", preset="qwen2_5_omni_7b", dtype="bfloat16",
                        remat=True),
        mesh=MeshSpec(data=-1, fsdp=8, decode_gather=True),
        data=DataSpec(dataset="crossomni", root="data/crossomni", split="train", task="qa", batch_size=16,
                      min_frames=24, max_frames=24, balanced_subset=982, balanced_subset_seed=0),
        grpo=GRPOSpec(group_size=4, beta=0.04, temperature=1.0, max_new_tokens=768),
        optim=OptimSpec(lr=5e-6, weight_decay=0.01),
        # one epoch over the subset: steps derived from the data (runtime.setup.resolve_steps; 982 / 16 -> 62)
        run=RunSpec(out_dir="runs/crossomni_grpo_7b", steps=0, epochs=1.0),
    )
