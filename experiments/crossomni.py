"""CrossOmni (Table 7): LoRA SFT with CoT supervision, then GRPO with judge-scored rewards, for Qwen2.5-Omni-3B
and -7B. Each variant is one paper row; the run is named ``crossomni_<variant>`` and writes
``runs/crossomni_<variant>``.

SFT (``sft_3b``, ``sft_7b``): LoRA rank 16, alpha 32, lr 1e-5, batch 32, one epoch, CoT supervision
(``<think> rationale </think>`` + the letter). No judge needed.

GRPO (``grpo_3b``, ``grpo_7b``) from the SFT checkpoint: lr 5e-6, batch 16, 4 rollouts, one epoch over 982
modality-balanced questions; rewards = format + accuracy + contextual consistency + logical coherence, the last two
scored by a judge model (the paper: Qwen3-Next-80B-A3B-Instruct). The 982 questions: ``data.balanced_subset = 982``
draws them from the training split with seed 0 so that every source->target task has a similar number (109 or 110
each of the 9 tasks); the run is one epoch over them (``run.steps = 0``: derived from the data, ceil(982 / 16) = 62
steps).

Hardware: 4x (3B) / 8x (7B) 80 GB GPUs. SFT: bf16 compute and a bf16 frozen base; float32 LoRA factors and moments
keep the optimiser state small. GRPO: the policy + the judge on its own GPUs in the bridge (``--judge hf:PATH``
starts it; ``--judge bridge:tcp://HOST:PORT`` uses a remote one; ``--judge python:MODULE:FUNCTION`` any callable).

Data: ``data.root`` holds ``train.jsonl`` / ``test.jsonl`` in the layout of ``omnir1_jax.data.crossomni``.

Variants (Paper: CrossOmni Table 7 / 8 (SFT) and 7 / 9 (GRPO), accuracy %)

``sft_3b``: Paper: overall **50.45**; single-modality 58.45, cross-modality 47.94::

    python -m omnir1_jax.crossomni.train --config experiments/crossomni.py:sft_3b --stage sft \\
        --save runs/crossomni_sft_3b/hf
    python -m omnir1_jax.evaluate --config experiments/crossomni.py:sft_3b --split test \\
        --policy runs/crossomni_sft_3b/hf

``sft_7b``: Paper: overall **56.65**; single-modality 63.59, cross-modality 54.39::

    python -m omnir1_jax.crossomni.train --config experiments/crossomni.py:sft_7b --stage sft \\
        --save runs/crossomni_sft_7b/hf
    python -m omnir1_jax.evaluate --config experiments/crossomni.py:sft_7b --split test \\
        --policy runs/crossomni_sft_7b/hf

``grpo_3b``: Paper: overall **58.59**; single-modality 67.60, cross-modality 55.70::

    python -m omnir1_jax.crossomni.train --config experiments/crossomni.py:grpo_3b --stage grpo \\
        --set model.checkpoint='"runs/crossomni_sft_3b/hf"' \\
        --judge hf:checkpoints/Qwen3-Next-80B-A3B-Instruct --save runs/crossomni_grpo_3b/hf
    python -m omnir1_jax.evaluate --config experiments/crossomni.py:grpo_3b --split test \\
        --policy runs/crossomni_grpo_3b/hf

``grpo_7b``: Paper: overall **62.56**; single-modality 71.13, cross-modality 59.58::

    python -m omnir1_jax.crossomni.train --config experiments/crossomni.py:grpo_7b --stage grpo \\
        --set model.checkpoint='"runs/crossomni_sft_7b/hf"' \\
        --judge hf:checkpoints/Qwen3-Next-80B-A3B-Instruct --save runs/crossomni_grpo_7b/hf
    python -m omnir1_jax.evaluate --config experiments/crossomni.py:grpo_7b --split test \\
        --policy runs/crossomni_grpo_7b/hf
"""

from omnir1_jax.config import DataSpec, ExperimentConfig, GRPOSpec, MeshSpec, ModelSpec, OptimSpec, RunSpec, SFTSpec

VARIANTS = ("sft_3b", "sft_7b", "grpo_3b", "grpo_7b")
_FSDP = {"3b": 4, "7b": 8}  # the GPUs of the paper's runs


def get_config(variant: str) -> ExperimentConfig:
    stage, size = variant.split("_")
    name = f"crossomni_{variant}"
    preset = f"qwen2_5_omni_{size}"
    if stage == "sft":
        return ExperimentConfig(
            name=name,
            model=ModelSpec(
                checkpoint=f"checkpoints/Qwen2.5-Omni-{size.upper()}", preset=preset, dtype="bfloat16", remat=True
            ),
            mesh=MeshSpec(data=-1, fsdp=_FSDP[size]),
            data=DataSpec(
                dataset="crossomni",
                root="data/crossomni",
                split="train",
                task="qa",
                batch_size=8,
                min_frames=24,
                max_frames=24,
            ),
            grpo=GRPOSpec(max_new_tokens=768),
            sft=SFTSpec(
                steps=0, lr=1e-5, batch_size=32, lora_rank=16, lora_alpha=32.0, weight_decay=0.0, target="rationale"
            ),
            run=RunSpec(out_dir=f"runs/{name}", steps=0),
        )
    return ExperimentConfig(
        name=name,
        model=ModelSpec(checkpoint=f"runs/crossomni_sft_{size}/hf", preset=preset, dtype="bfloat16", remat=True),
        mesh=MeshSpec(data=-1, fsdp=_FSDP[size], decode_gather=True),
        data=DataSpec(
            dataset="crossomni",
            root="data/crossomni",
            split="train",
            task="qa",
            batch_size=16,
            min_frames=24,
            max_frames=24,
            balanced_subset=982,
            balanced_subset_seed=0,
        ),
        grpo=GRPOSpec(group_size=4, beta=0.04, temperature=1.0, max_new_tokens=768),
        optim=OptimSpec(lr=5e-6, weight_decay=0.01),
        # one epoch over the subset: steps derived from the data (runtime.records.resolve_steps; 982 / 16 -> 62)
        run=RunSpec(out_dir=f"runs/{name}", steps=0, epochs=1.0),
    )
