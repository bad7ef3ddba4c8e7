"""Omni-R1 Table 7, setting "128x28x28, thinking yes": VideoMME (General, Short) and MVBench
(Avg) multiple-choice accuracy of one model at System 1's per-frame budget of 128*28*28 pixels, with the
*thinking* prompt. The model is ``--policy`` (Table 7 has four: Qwen2.5-Omni-7B, Omni-R1-AVS,
Omni-R1-VOS, Omni-R1-VOS-AVS).

Command::

    python -m omnir1_jax.evaluate --config experiments/qa_omni_r1_table7_r128_thinking.py \
        --policy checkpoints/Qwen2.5-Omni-7B \
        --set data.root='"data/suites"'

(``data/suites/videomme``, ``data/suites/mvbench``: the release folders, layouts in
:mod:`omnir1_jax.data.suites_omni`.) The same row from any experiment: ``--pixels 100352 --thinking``.
Writes ``runs/qa_omni_r1_table7_r128_thinking/eval/suites_test/summary.md`` (the row: VideoMME General, VideoMME
Short, MVBench Avg,
Average) and per suite ``<name>/results.jsonl`` (resumable) + its per-task / per-duration table. CPU smoke run
on the synthetic copies (``omnir1_jax.data.synthetic.suites.write_suites``)::

    python -m omnir1_jax.evaluate --config experiments/qa_omni_r1_table7_r128_thinking.py \
        --set data.root='"SYNTHETIC_DIR"' \
        --set model.checkpoint=None --set model.preset='"tiny"' --set model.dtype='"float32"'

Hardware: one 80 GB GPU (7B, bf16) for 2,700 VideoMME + 4,000 MVBench questions; no bridge (System 1 only).

Paper (Omni-R1 Table 7; VideoMME General / VideoMME Short / MVBench Avg, %): Qwen2.5-Omni 59.3 / 70.1 / **68.1**;
Omni-R1-AVS 59.9 / 72.1 / 69.4; Omni-R1-VOS 59.8 / 72.5 / 69.8; Omni-R1-VOS-AVS 60.7 / 73.0 / **70.3**.

Deviations: the paper does not print the thinking prompt nor the frame count of these evaluations; the thinking
cue is the project's wording (:data:`omnir1_jax.data.mcq.THINKING_CUE`, Omni-R1's ``<think>`` / ``<answer>``
format) and System 1 sees ``data.max_frames`` = 24 frames sampled uniformly (its training budget), with each
clip's own audio track. VideoMME without subtitles. "MVBench Avg" is the mean of the 20 task accuracies.
"""

import dataclasses
import os

from omnir1_jax.config import load_config


def get_config():
    # everything else as qa_omni_r1_table7_r128.py
    base = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "qa_omni_r1_table7_r128.py"))
    return dataclasses.replace(base, name="qa_omni_r1_table7_r128_thinking",
                               data=dataclasses.replace(base.data, thinking=True),
                               grpo=dataclasses.replace(base.grpo, max_new_tokens=512),
                               run=dataclasses.replace(base.run, out_dir='runs/qa_omni_r1_table7_r128_thinking'))
