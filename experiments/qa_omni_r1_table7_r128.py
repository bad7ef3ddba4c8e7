"""Omni-R1 Table 7, setting "128x28x28, thinking no": VideoMME (General, Short) and MVBench
(Avg) multiple-choice accuracy of one model at System 1's per-frame budget of 128*28*28 pixels, without the thinking
prompt. The model is ``--policy`` (Table 7 has four: Qwen2.5-Omni-7B, Omni-R1-AVS,
Omni-R1-VOS, Omni-R1-VOS-AVS).

Command::

    python -m omnir1_jax.evaluate --config experiments/qa_omni_r1_table7_r128.py \
        --policy checkpoints/Qwen2.5-Omni-7B \
        --set data.root='"data/suites"'

(``data/suites/videomme``, ``data/suites/mvbench``: the release folders, layouts in
:mod:`omnir1_jax.data.suites_omni`.) The same row from any experiment: ``--pixels 100352``.
Writes ``runs/qa_omni_r1_table7_r128/eval/suites_test/summary.md`` (the row: VideoMME General, VideoMME Short,
MVBench Avg,
Average) and per suite ``<name>/results.jsonl`` (resumable) + its per-task / per-duration table. CPU smoke run
on the synthetic copies (``omnir1_jax.data.synthetic.suites.write_suites``)::

    python -m omnir1_jax.evaluate --config experiments/qa_omni_r1_table7_r128.py --set data.root='"SYNTHETIC_DIR"' \
        --set model.checkpoint=None --set model.preset='"tiny"' --set model.dtype='"float32"'

Hardware: one 80 GB GPU (7B, bf16) for 2,700 VideoMME + 4,000 MVBench questions; no bridge (System 1 only).

Paper (Omni-R1 Table 7; VideoMME General / VideoMME Short / MVBench Avg, %): Qwen2.5-Omni 58.3 / 69.8 / **66.1**;
Omni-R1-AVS 59.0 / 71.9 / 68.3; Omni-R1-VOS 59.7 / 72.3 / 68.9; Omni-R1-VOS-AVS 60.1 / 72.5 / 69.1.

Deviations: the paper does not print the thinking prompt nor the frame count of these evaluations; the thinking
cue is the project's wording (:data:`omnir1_jax.data.mcq.THINKING_CUE`, Omni-R1's ``<think>`` / ``<answer>``
format) and System 1 sees ``data.max_frames`` = 24 frames sampled uniformly (its training budget), with each
clip's own audio track. VideoMME without subtitles. "MVBench Avg" is the mean of the 20 task accuracies.
"""

from omnir1_jax.config import DataSpec, ExperimentConfig, GRPOSpec, MeshSpec, ModelSpec, RunSpec


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="qa_omni_r1_table7_r128",
        model=ModelSpec(checkpoint="checkpoints/Qwen2.5-Omni-7B", preset="qwen2_5_omni_7b", dtype="bfloat16"),
        mesh=MeshSpec(data=-1, fsdp=1),
        data=DataSpec(dataset="suites", suites=("videomme", "mvbench"), root="data/suites", task="qa",
                      split="test", batch_size=4, min_frames=1, max_frames=24, s1_max_pixels=128 * 28 * 28,
                      s1_min_pixels=16 * 28 * 28, qa_prompt="plain", thinking=False),
        grpo=GRPOSpec(max_new_tokens=32),
        run=RunSpec(out_dir="runs/qa_omni_r1_table7_r128"),
    )
