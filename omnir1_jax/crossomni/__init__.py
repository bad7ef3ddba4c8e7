"""CrossOmni (paper 004): cross-modal coreference QA with SFT (LoRA, CoT supervision) and GRPO (judge rewards).

    from omnir1_jax.crossomni.batches import read_split, qa_batch        # clip + audio + Table-17 prompt
    from omnir1_jax.crossomni.rewards import qa_rewards, QARewardWeights   # values in (a judge callable), values out
    from omnir1_jax.tasks.crossomni_qa import CrossOmniQATask         # the learner's task plug-in
    from omnir1_jax.tasks.crossomni_judge import make_judge           # the task's judge (a callable or a bridge)
    from omnir1_jax.crossomni.media import read_video, read_audio, write_video

Command line: ``python -m omnir1_jax.crossomni.train --config experiments/crossomni.py:grpo_7b --judge ...``;
accuracy: ``python -m omnir1_jax.evaluate --config ... --split test``. Nothing here imports torch (the judge
model runs in the bridge process).
"""
