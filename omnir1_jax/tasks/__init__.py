"""Tasks: what the one learner (:mod:`omnir1_jax.learner`) trains on, as plug-ins with one small interface.

A task turns records into prompt batches, completions into rewards and metrics (possibly through the bridge),
and batches into supervised targets (SFT). Everything else — sampling, advantages, the update, checkpoints,
evaluation, export — is the learner's, once.

    from omnir1_jax.tasks import make_task
    task = make_task(cfg, tokenizer, bridge=lambda: bridge.client)   # vos | refaid | grounding | qa

Tasks: ``vos`` (keyframes -> bridge -> R_fmt, R_K, R_A, R_G; Omni-R1 section 3), ``refaid`` (first frame +
audio, one description -> System-2 boxes -> R_fmt + box IoU; appendix B), ``crossomni_qa`` (multiple choice,
format / accuracy / judge-scored consistency and coherence; CrossOmni section 4.2), ``grounding`` (System-2
training in the style of SegZero on refCOCOg: one image -> box + two points, docs/design.md §3.9).
"""

from omnir1_jax.tasks.base import RecordBatches, Scored, Task, make_task

__all__ = ["RecordBatches", "Scored", "Task", "make_task"]
