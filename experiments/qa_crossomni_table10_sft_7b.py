"""CrossOmni Table 10, Qwen2.5-Omni-7B "SFT" row: out-of-domain multiple-choice accuracy on
Daily-Omni, WorldSense and AVUT (its AV-Human set) of after ``crossomni_sft_7b.py`` (its export
``runs/crossomni_sft_7b/hf``).

Command::

    python -m omnir1_jax.evaluate --config experiments/qa_crossomni_table10_sft_7b.py \
        --set data.root='"data/suites"'

(``data/suites/{dailyomni,worldsense,avut}``: the release folders, layouts in
:mod:`omnir1_jax.data.suites_ood`; ``--policy DIR`` evaluates another checkpoint.) Writes
``runs/qa_crossomni_table10_sft_7b/eval/suites_test/summary.md``: Daily-Omni, WorldSense, AVUT, Average (the
mean of the three,
as the table's last column); per suite ``<name>/results.jsonl`` (resumable) and its per-task table. CPU smoke
run on the synthetic copies (``omnir1_jax.data.synthetic.suites.write_suites``)::

    python -m omnir1_jax.evaluate --config experiments/qa_crossomni_table10_sft_7b.py \
        --set data.root='"SYNTHETIC_DIR"' \
        --set model.checkpoint=None --set model.preset='"tiny"' --set model.dtype='"float32"'

Hardware: one 80 GB GPU (7B, bf16), no bridge and no judge; 1,197 + 3,172 + AV-Human questions.

Paper (CrossOmni Table 10, accuracy %): Daily-Omni 55.97, WorldSense 41.36, AVUT 49.77, Average **49.03**.

Deviations: the paper gives no prompt for these suites; section 3.1 says "For all experiments, we use the
prompt 'Answer this question based on the video and text information in A/B/C/D.'", which is used here
(``data.qa_prompt = "default"``; ``--prompt table17`` is refused for these suites, ``--prompt plain`` asks for
the letter only). Frames: 24 sampled uniformly with the clip's own audio track (the paper's count is not stated).
"""

import dataclasses
import os

from omnir1_jax.config import load_config


def get_config():
    # everything else as qa_crossomni_table10_base_7b.py
    base = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "qa_crossomni_table10_base_7b.py"))
    return dataclasses.replace(base, name="qa_crossomni_table10_sft_7b",
                               model=dataclasses.replace(base.model, checkpoint='runs/crossomni_sft_7b/hf'),
                               grpo=dataclasses.replace(base.grpo, max_new_tokens=768),
                               run=dataclasses.replace(base.run, out_dir='runs/qa_crossomni_table10_sft_7b'))
