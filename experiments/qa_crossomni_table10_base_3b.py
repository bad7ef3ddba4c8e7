"""CrossOmni Table 10, Qwen2.5-Omni-3B "Default (the base model)" row: out-of-domain multiple-choice accuracy on
Daily-Omni, WorldSense and AVUT (its AV-Human set) of the base model, no training.

Command::

    python -m omnir1_jax.evaluate --config experiments/qa_crossomni_table10_base_3b.py \
        --set data.root='"data/suites"'

(``data/suites/{dailyomni,worldsense,avut}``: the release folders, layouts in
:mod:`omnir1_jax.data.suites_ood`; ``--policy DIR`` evaluates another checkpoint.) Writes
``runs/qa_crossomni_table10_base_3b/eval/suites_test/summary.md``: Daily-Omni, WorldSense, AVUT, Average (the
mean of the three,
as the table's last column); per suite ``<name>/results.jsonl`` (resumable) and its per-task table. CPU smoke
run on the synthetic copies (``omnir1_jax.data.synthetic.suites.write_suites``)::

    python -m omnir1_jax.evaluate --config experiments/qa_crossomni_table10_base_3b.py \
        --set data.root='"SYNTHETIC_DIR"' \
        --set model.checkpoint=None --set model.preset='"tiny"' --set model.dtype='"float32"'

Hardware: one 80 GB GPU (3B, bf16), no bridge and no judge; 1,197 + 3,172 + AV-Human questions.

Paper (CrossOmni Table 10, accuracy %): Daily-Omni 40.52, WorldSense 43.5, AVUT 48.1, Average **44.04**.

Deviations: the paper gives no prompt for these suites; section 3.1 says "For all experiments, we use the
prompt 'Answer this question based on the video and text information in A/B/C/D.'", which is used here
(``data.qa_prompt = "default"``; ``--prompt table17`` is refused for these suites, ``--prompt plain`` asks for
the letter only). Frames: 24 sampled uniformly with the clip's own audio track (the paper's count is not stated).
"""

from omnir1_jax.config import DataSpec, ExperimentConfig, GRPOSpec, MeshSpec, ModelSpec, RunSpec


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="qa_crossomni_table10_base_3b",
        model=ModelSpec(checkpoint="checkpoints/Qwen2.5-Omni-3B", preset="qwen2_5_omni_3b", dtype="bfloat16"),
        mesh=MeshSpec(data=-1, fsdp=1),
        data=DataSpec(dataset="suites", suites=("dailyomni", "worldsense", "avut"), root="data/suites",
                      task="qa", split="test", batch_size=4, min_frames=1, max_frames=24,
                      s1_max_pixels=128 * 28 * 28, s1_min_pixels=16 * 28 * 28, qa_prompt="default"),
        grpo=GRPOSpec(max_new_tokens=256),
        run=RunSpec(out_dir="runs/qa_crossomni_table10_base_3b"),
    )
