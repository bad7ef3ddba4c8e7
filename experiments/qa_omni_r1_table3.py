"""Omni-R1 Table 3, general understanding QA: OmniBench (Avg), VideoMME (General, Short) and MVBench (Avg)
multiple-choice accuracy of Omni-R1-7B (the model trained on AVS + VOS) in one run, with the *thinking* prompt at
System 1's default 128*28*28 pixels per frame (Table 3's Omni-R1-7B numbers are Table 7's "Omni-R1-VOS-AVS,
128x28x28, thinking" row).

Command::

    python -m omnir1_jax.evaluate --config experiments/qa_omni_r1_table3.py --policy runs/omni_r1_7b_avs_vos/hf \
        --set data.root='"data/suites"'

``--policy``: the export of the AVS + VOS GRPO run (Table 6's joint run). ``data/suites/{omnibench,videomme,
mvbench}``: the release folders (layouts in :mod:`omnir1_jax.data.suites_omni`). The base row (Qwen2.5-Omni-7B:
47.3 / 58.3 / 69.8 / 66.1) is ``--policy checkpoints/Qwen2.5-Omni-7B --set data.thinking=False`` (the paper's
base numbers are without the thinking prompt, Table 7's first row). Writes
``runs/qa_omni_r1_table3/eval/suites_test/summary.md``: OmniBench Avg, VideoMME General, VideoMME Short, MVBench
Avg,
Average; per suite ``<name>/results.jsonl`` (resumable) and its per-task table. CPU smoke run on the synthetic
copies (``omnir1_jax.data.synthetic.suites.write_suites``)::

    python -m omnir1_jax.evaluate --config experiments/qa_omni_r1_table3.py --set data.root='"SYNTHETIC_DIR"' \
        --set model.checkpoint=None --set model.preset='"tiny"' --set model.dtype='"float32"'

Hardware: one 80 GB GPU (7B, bf16), no bridge (System 1 only); 1,142 + 2,700 + 4,000 questions.

Paper (Omni-R1 Table 3, %): Omni-R1-7B OmniBench Avg 49.3, VideoMME General 60.7, VideoMME Short 73.0, MVBench
Avg **70.3** (Qwen2.5-Omni-7B: 47.3, 58.3, 69.8, 66.1). The extracted table's header reads "Omnibench Avg,
VideoMME General, MVBench Short, MVBench General"; the text ("72.5 in the short subset of VideoMME") and Table 7
(VideoMME General / Short, MVBench Avg) show the columns are OmniBench Avg, VideoMME General, VideoMME Short,
MVBench Avg.

Deviations: the thinking prompt's wording and the frame count are not in the paper (the project's thinking cue,
24 uniformly sampled frames with the clip's audio; see ``qa_omni_r1_table7.py``); OmniBench is
given its image (as an image) and its audio clip, VideoMME without subtitles.
"""

from omnir1_jax.config import DataSpec, ExperimentConfig, GRPOSpec, MeshSpec, ModelSpec, RunSpec


def get_config() -> ExperimentConfig:
    return ExperimentConfig(
        name="qa_omni_r1_table3",
        model=ModelSpec(checkpoint="runs/omni_r1_7b_avs_vos/hf", preset="qwen2_5_omni_7b", dtype="bfloat16"),
        mesh=MeshSpec(data=-1, fsdp=1),
        data=DataSpec(
            dataset="suites",
            suites=("omnibench", "videomme", "mvbench"),
            root="data/suites",
            task="qa",
            split="test",
            batch_size=4,
            min_frames=1,
            max_frames=24,
            s1_max_pixels=128 * 28 * 28,
            s1_min_pixels=16 * 28 * 28,
            qa_prompt="plain",
            thinking=True,
        ),
        grpo=GRPOSpec(max_new_tokens=512),
        run=RunSpec(out_dir="runs/qa_omni_r1_table3"),
    )
