"""CrossOmni SFT of Qwen2.5-Omni-7B: LoRA rank 16, alpha 32, lr 1e-5, batch 32, one epoch, CoT supervision
(``<think> rationale </think>`` + the letter).

Command::

    python -m omnir1_jax.crossomni.train --config experiments/crossomni_sft_7b.py --stage sft \
        --save runs/crossomni_sft_7b/hf
    python -m omnir1_jax.evaluate --config experiments/crossomni_sft_7b.py --split test \
        --policy runs/crossomni_sft_7b/hf

Hardware: 8x 80 GB GPUs (bf16 compute and a bf16 frozen base; float32 LoRA factors and moments keep the optimiser state small). No judge needed.

Paper (CrossOmni Table 7 / 8, accuracy %): overall **56.65**; single-modality 63.59, cross-modality 54.39.
Data: ``data.root`` holds ``train.jsonl`` / ``test.jsonl`` in the layout of ``omnir1_jax.data.crossomni``.
"""

from omnir1_jax.config import DataSpec, ExperimentConfig, GRPOSpec, MeshSpec, ModelSpec, RunSpec, SFTSpec


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="crossomni_sft_7b",
        model=ModelSpec(checkpoint="checkpoints/Qwen2.5-Omni-7B", preset="qwen2_5_omni_7b", dtype="bfloat16",
                        remat=True),
        mesh=MeshSpec(data=-1, fsdp=8),
        data=DataSpec(dataset="crossomni", root="data/crossomni", split="train", task="qa", batch_size=8,
                      min_frames=24, max_frames=24),
        grpo=GRPOSpec(max_new_tokens=768),
        sft=SFTSpec(steps=0, lr=1e-5, batch_size=32, lora_rank=16, lora_alpha=32.0, weight_decay=0.0,
                    target="rationale"),
        run=RunSpec(out_dir="runs/crossomni_sft_7b", steps=0),
    )
