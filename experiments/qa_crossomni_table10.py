"""CrossOmni Table 10: out-of-domain multiple-choice accuracy on Daily-Omni, WorldSense and AVUT (its AV-Human set)
of Qwen2.5-Omni-3B and -7B, as the base model ("Default"), after CrossOmni SFT and after CrossOmni GRPO. Each
variant is one row; the run is named ``qa_crossomni_table10_<variant>``.

(``data/suites/{dailyomni,worldsense,avut}``: the release folders, layouts in :mod:`omnir1_jax.data.suites_ood`;
``--policy DIR`` evaluates another checkpoint.) Each variant writes
``runs/qa_crossomni_table10_<variant>/eval/suites_test/summary.md``: Daily-Omni, WorldSense, AVUT, Average (the
mean of the three, as the table's last column); per suite ``<name>/results.jsonl`` (resumable) and its per-task
table. CPU smoke run on the synthetic copies (``omnir1_jax.data.synthetic.suites.write_suites``)::

    python -m omnir1_jax.evaluate --config experiments/qa_crossomni_table10.py:base_3b \\
        --set data.root='"SYNTHETIC_DIR"' \\
        --set model.checkpoint=None --set model.preset='"tiny"' --set model.dtype='"float32"'

Hardware: one 80 GB GPU (3B or 7B, bf16), no bridge and no judge; 1,197 + 3,172 + AV-Human questions.

Deviations: the paper gives no prompt for these suites; section 3.1 says "For all experiments, we use the
prompt 'Answer this question based on the video and text information in A/B/C/D.'", which is used here
(``data.qa_prompt = "default"``; ``--prompt table17`` is refused for these suites, ``--prompt plain`` asks for
the letter only). Frames: 24 sampled uniformly with the clip's own audio track (the paper's count is not stated).
The base model answers in 256 new tokens, the trained ones (which reason before the letter) in 768.

Variants (Paper: CrossOmni Table 10, accuracy %)

``base_3b``: Qwen2.5-Omni-3B "Default (the base model)", no training. Paper: Daily-Omni 40.52, WorldSense 43.5,
AVUT 48.1, Average **44.04**::

    python -m omnir1_jax.evaluate --config experiments/qa_crossomni_table10.py:base_3b --set data.root='"data/suites"'

``base_7b``: Qwen2.5-Omni-7B "Default (the base model)", no training. Paper: Daily-Omni 47.45, WorldSense 45.4,
AVUT 48.9, Average **47.25**::

    python -m omnir1_jax.evaluate --config experiments/qa_crossomni_table10.py:base_7b --set data.root='"data/suites"'

``sft_3b``: Qwen2.5-Omni-3B "SFT", after ``crossomni.py:sft_3b`` (its export ``runs/crossomni_sft_3b/hf``). Paper:
Daily-Omni 47.45, WorldSense 39.24, AVUT 48.79, Average **45.16**::

    python -m omnir1_jax.evaluate --config experiments/qa_crossomni_table10.py:sft_3b --set data.root='"data/suites"'

``sft_7b``: Qwen2.5-Omni-7B "SFT", after ``crossomni.py:sft_7b`` (its export ``runs/crossomni_sft_7b/hf``). Paper:
Daily-Omni 55.97, WorldSense 41.36, AVUT 49.77, Average **49.03**::

    python -m omnir1_jax.evaluate --config experiments/qa_crossomni_table10.py:sft_7b --set data.root='"data/suites"'

``grpo_3b``: Qwen2.5-Omni-3B "GRPO", after ``crossomni.py:grpo_3b`` (its export ``runs/crossomni_grpo_3b/hf``).
Paper: Daily-Omni 54.55, WorldSense 44.45, AVUT 57.79, Average **52.26**::

    python -m omnir1_jax.evaluate --config experiments/qa_crossomni_table10.py:grpo_3b --set data.root='"data/suites"'

``grpo_7b``: Qwen2.5-Omni-7B "GRPO", after ``crossomni.py:grpo_7b`` (its export ``runs/crossomni_grpo_7b/hf``).
Paper: Daily-Omni 57.89, WorldSense 49.08, AVUT 57.96, Average **54.98**::

    python -m omnir1_jax.evaluate --config experiments/qa_crossomni_table10.py:grpo_7b --set data.root='"data/suites"'
"""

from omnir1_jax.config import DataSpec, ExperimentConfig, GRPOSpec, MeshSpec, ModelSpec, RunSpec

VARIANTS = ("base_3b", "base_7b", "sft_3b", "sft_7b", "grpo_3b", "grpo_7b")


def get_config(variant: str) -> ExperimentConfig:
    stage, size = variant.split("_")
    name = f"qa_crossomni_table10_{variant}"
    checkpoint = f"checkpoints/Qwen2.5-Omni-{size.upper()}" if stage == "base" else f"runs/crossomni_{variant}/hf"
    return ExperimentConfig(
        name=name,
        model=ModelSpec(checkpoint=checkpoint, preset=f"qwen2_5_omni_{size}", dtype="bfloat16"),
        mesh=MeshSpec(data=-1, fsdp=1),
        data=DataSpec(
            dataset="suites",
            suites=("dailyomni", "worldsense", "avut"),
            root="data/suites",
            task="qa",
            split="test",
            batch_size=4,
            min_frames=1,
            max_frames=24,
            s1_max_pixels=128 * 28 * 28,
            s1_min_pixels=16 * 28 * 28,
            qa_prompt="default",
        ),
        grpo=GRPOSpec(max_new_tokens=256 if stage == "base" else 768),
        run=RunSpec(out_dir=f"runs/{name}"),
    )
