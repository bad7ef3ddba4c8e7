"""The out-of-the-box run: SFT format warm-up then GRPO on the synthetic world, on a 2-core CPU.

Command (README's main job)::

    .venv/bin/python -m omnir1_jax.train --config experiments/synthetic_cpu.py

Hardware: 2 CPU cores, no accelerator, <= 15 minutes (measured on a fresh clone, 2026-11-30: 6 min 38 s in all,
world generation included, SFT 105 s, GRPO 260 s). It generates the synthetic world (ReVOS layout) under
``data/synthetic`` if missing, starts a
bridge with the synthetic grounder and segmenter, runs a short SFT that teaches only the answer format (random
keyframes, a description of a random object present, never the target), measures J&F on the held-out split,
runs GRPO, measures J&F again and prints both; it writes ``runs/synthetic_cpu/rewards.png`` and the evaluations
(with mask overlays) under ``runs/synthetic_cpu/eval/{before,after}_grpo/``.

Target: J&F after GRPO >= J&F after SFT + 0.10 (the project's bar; no paper number, synthetic data).
Measured: 0.155 after SFT -> 0.681 after GRPO (+0.526), every held-out answer valid before and after, 6 min 38 s on
a fresh clone (2026-11-30, the one learner; BENCHMARKS.md "Learner"). The SFT answers never name the target, and
the policy is
wide enough to read the query, so after SFT it names the *other* object (J&F 0.155); GRPO's grounding reward
teaches it to name the one the query asks for. A narrower policy (hidden 64) does not learn to read the query
in the budget (J&F +0.036; BENCHMARKS.md "Learner").

Deviations from the paper, for the CPU budget (each is a config value): a tiny random-init Thinker (hidden 256,
2 layers, 16 heads, tied embeddings) instead of Qwen2.5-Omni-7B; a reduced world (two colours, circles only,
two objects per video, colour + shape expressions); fixed 8-frame clips instead of 8..24; a small System-1 pixel
budget; a short prompt with the expression last (``data.prompt = "short"``) instead of Figure 3's; rewards
R_fmt + R_G (R_K off: its keyframe terms dominated the group variance and drowned the grounding signal); a larger
learning rate, 5e-4 with 10 warm-up steps (a from-scratch tiny model, not a 7B; at 1e-3 the run's greedy answers
lost their JSON structure after GRPO, BENCHMARKS.md "Learner"); group size 8 and beta 0.04 as in the
paper.
"""

from omnir1_jax.config import (
    BridgeSpec,
    DataSpec,
    ExperimentConfig,
    GRPOSpec,
    ModelSpec,
    OptimSpec,
    RunSpec,
    SFTSpec,
)
from omnir1_jax.rewards import RewardWeights


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="synthetic_cpu",
        model=ModelSpec(
            preset="tiny", overrides=(("hidden_size", 256), ("num_layers", 2), ("tie_word_embeddings", True))
        ),
        data=DataSpec(
            dataset="synthetic",
            root="data/synthetic",
            split="train",
            batch_size=4,
            min_frames=8,
            max_frames=8,
            s1_max_pixels=16 * 28 * 28,
            s1_min_pixels=4 * 28 * 28,
            synthetic_videos=80,
            synthetic_size=(120, 214),
            synthetic_colours=("red", "blue"),
            synthetic_shapes=("circle",),
            synthetic_objects=(2, 2),
            synthetic_templates=("colour_shape",),
            prompt="short",
            pad_to_multiple=64,
        ),
        bridge=BridgeSpec(start=True, grounder="synthetic", segmenter="synthetic", workers=1, timeout_s=300.0),
        grpo=GRPOSpec(
            group_size=8,
            mu=1,
            beta=0.04,
            temperature=1.0,
            max_new_tokens=176,
            rewards=RewardWeights(alpha_k=0.0, alpha_a=0.0, alpha_g=1.0),
        ),
        optim=OptimSpec(lr=5e-4, weight_decay=0.01, grad_clip=1.0, warmup_steps=10),
        sft=SFTSpec(steps=300, lr=3e-3, batch_size=8, target="format_only", think="{description} is visible here"),
        run=RunSpec(
            steps=150,
            seed=0,
            out_dir="runs/synthetic_cpu",
            checkpoint_every=50,
            eval_split="valid",
            eval_max_expressions=40,
            resume=True,
        ),
    )
