"""Omni-R1 Table 7: VideoMME (General, Short) and MVBench (Avg) multiple-choice accuracy of one model at two of
System 1's per-frame pixel budgets (128*28*28, 256*28*28), with and without the *thinking* prompt. The model is
``--policy`` (Table 7 has four: Qwen2.5-Omni-7B, Omni-R1-AVS, Omni-R1-VOS, Omni-R1-VOS-AVS). Each variant is one
setting; the run is named ``qa_omni_r1_table7_<variant>``.

(``data/suites/videomme``, ``data/suites/mvbench``: the release folders, layouts in
:mod:`omnir1_jax.data.suites_omni`.) Each variant writes
``runs/qa_omni_r1_table7_<variant>/eval/suites_test/summary.md`` (the row: VideoMME General, VideoMME Short,
MVBench Avg, Average) and per suite ``<name>/results.jsonl`` (resumable) + its per-task / per-duration table. CPU
smoke run on the synthetic copies (``omnir1_jax.data.synthetic.suites.write_suites``)::

    python -m omnir1_jax.evaluate --config experiments/qa_omni_r1_table7.py:r128 --set data.root='"SYNTHETIC_DIR"' \\
        --set model.checkpoint=None --set model.preset='"tiny"' --set model.dtype='"float32"'

Hardware: one 80 GB GPU (7B, bf16) for 2,700 VideoMME + 4,000 MVBench questions; no bridge (System 1 only).

Deviations: the paper does not print the thinking prompt nor the frame count of these evaluations; the thinking
cue is the project's wording (:data:`omnir1_jax.data.mcq.THINKING_CUE`, Omni-R1's ``<think>`` / ``<answer>``
format) and System 1 sees ``data.max_frames`` = 24 frames sampled uniformly (its training budget), with each
clip's own audio track. VideoMME without subtitles. "MVBench Avg" is the mean of the 20 task accuracies. With the
thinking prompt System 1 may answer in 512 new tokens (32 without).

Variants (Paper: Omni-R1 Table 7; VideoMME General / VideoMME Short / MVBench Avg, %)

``r128``: setting "128x28x28, thinking no". The same row from any experiment: ``--pixels 100352``. Paper:
Qwen2.5-Omni 58.3 / 69.8 / **66.1**; Omni-R1-AVS 59.0 / 71.9 / 68.3; Omni-R1-VOS 59.7 / 72.3 / 68.9;
Omni-R1-VOS-AVS 60.1 / 72.5 / 69.1::

    python -m omnir1_jax.evaluate --config experiments/qa_omni_r1_table7.py:r128 \\
        --policy checkpoints/Qwen2.5-Omni-7B --set data.root='"data/suites"'

``r128_thinking``: setting "128x28x28, thinking yes". The same row from any experiment: ``--pixels 100352
--thinking``. Paper: Qwen2.5-Omni 59.3 / 70.1 / **68.1**; Omni-R1-AVS 59.9 / 72.1 / 69.4; Omni-R1-VOS 59.8 /
72.5 / 69.8; Omni-R1-VOS-AVS 60.7 / 73.0 / **70.3**::

    python -m omnir1_jax.evaluate --config experiments/qa_omni_r1_table7.py:r128_thinking \\
        --policy checkpoints/Qwen2.5-Omni-7B --set data.root='"data/suites"'

``r256``: setting "256x28x28, thinking no". The same row from any experiment: ``--pixels 200704``. Paper:
Qwen2.5-Omni 58.7 / 69.9 / **67.0**; Omni-R1-AVS 59.4 / 71.9 / 68.7; Omni-R1-VOS 59.6 / 72.5 / 68.9
(Omni-R1-VOS-AVS: not reported)::

    python -m omnir1_jax.evaluate --config experiments/qa_omni_r1_table7.py:r256 \\
        --policy checkpoints/Qwen2.5-Omni-7B --set data.root='"data/suites"'

``r256_thinking``: setting "256x28x28, thinking yes". The same row from any experiment: ``--pixels 200704
--thinking``. Paper: Qwen2.5-Omni 59.8 / 70.9 / **68.3**; Omni-R1-AVS 60.0 / 72.1 / 69.5; Omni-R1-VOS 60.1 /
72.8 / 69.9 (Omni-R1-VOS-AVS: not reported)::

    python -m omnir1_jax.evaluate --config experiments/qa_omni_r1_table7.py:r256_thinking \\
        --policy checkpoints/Qwen2.5-Omni-7B --set data.root='"data/suites"'
"""

from omnir1_jax.config import DataSpec, ExperimentConfig, GRPOSpec, MeshSpec, ModelSpec, RunSpec

# variant -> (System 1's per-frame pixel budget, thinking prompt)
VARIANTS = {
    "r128": (128 * 28 * 28, False),
    "r128_thinking": (128 * 28 * 28, True),
    "r256": (256 * 28 * 28, False),
    "r256_thinking": (256 * 28 * 28, True),
}


def get_config(variant: str) -> ExperimentConfig:
    pixels, thinking = VARIANTS[variant]
    name = f"qa_omni_r1_table7_{variant}"
    return ExperimentConfig(
        name=name,
        model=ModelSpec(checkpoint="checkpoints/Qwen2.5-Omni-7B", preset="qwen2_5_omni_7b", dtype="bfloat16"),
        mesh=MeshSpec(data=-1, fsdp=1),
        data=DataSpec(
            dataset="suites",
            suites=("videomme", "mvbench"),
            root="data/suites",
            task="qa",
            split="test",
            batch_size=4,
            min_frames=1,
            max_frames=24,
            s1_max_pixels=pixels,
            s1_min_pixels=16 * 28 * 28,
            qa_prompt="plain",
            thinking=thinking,
        ),
        grpo=GRPOSpec(max_new_tokens=512 if thinking else 32),
        run=RunSpec(out_dir=f"runs/{name}"),
    )
