"""CrossOmni SFT of Qwen2.5-Omni-3B: LoRA rank 16, alpha 32, lr 1e-5, batch 32, one epoch, CoT supervision
(``<think> rationale </think>`` + the letter).

Command::

    python -m omnir1_jax.crossomni.train --config experiments/crossomni_sft_3b.py --stage sft \
        --save runs/crossomni_sft_3b/hf
    python -m omnir1_jax.evaluate --config experiments/crossomni_sft_3b.py --split test \
        --policy runs/crossomni_sft_3b/hf

Hardware: 4x 80 GB GPUs (bf16 compute and a bf16 frozen base; float32 LoRA factors and moments keep the optimiser state small). No judge needed.

Paper (CrossOmni Table 7 / 8, accuracy %): overall **50.45**; single-modality 58.45, cross-modality 47.94.
Data: ``data.root`` holds ``train.jsonl`` / ``test.jsonl`` in the layout of ``omnir1_jax.data.crossomni``.
"""

from omnir1_jax.config import DataSpec, ExperimentConfig, GRPOSpec, MeshSpec, ModelSpec, RunSpec, SFTSpec


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="crossomni_sft_3b",
        model=ModelSpec(checkpoint="checkpoints/Qwen2.5-Omni-3B", preset="qwen2_5_omni_3b", dtype="bfloat16",
                        remat=True),
        mesh=MeshSpec(data=-1, fsdp=4),
        data=DataSpec(dataset="crossomni", root="data/crossomni", split="train", task="qa", batch_size=8,
                      min_frames=24, max_frames=24),
        grpo=GRPOSpec(max_new_tokens=768),
        sft=SFTSpec(steps=0, lr=1e-5, batch_size=32, lora_rank=16, lora_alpha=32.0, weight_decay=0.0,
                    target="rationale"),
        run=RunSpec(out_dir="runs/crossomni_sft_3b", steps=0),
    )
