"""Evaluation measures, pure math (docs/design.md §7): DAVIS J and F, QA accuracy, multi-seed statistics.

Importing this package pulls numpy, scipy and JAX only: no evaluator loop, data pipeline or policy.

Modules::

    davis      # DAVIS-2017 numpy reference ([H, W] -> float, [T, H, W] -> [T])
        db_eval_iou(annotation, segmentation, void_pixels=None)
        db_eval_boundary(annotation, segmentation, void_pixels=None, bound_th=0.008)
        seg2bmap(seg); jf_mean(j, f); davis_jf(annotation, segmentation, void_pixels=None, bound_th=0.008) -> JFScore
    davis_jax  # batched, jit-able JAX versions over [*B, H, W] -> [*B] float32
        db_eval_iou_jax(...), db_eval_boundary_jax(..., bound_th=0.008), db_eval_jf_jax(...) -> (J, F)
    masks      # input checks, the boundary tolerance and disk footprint shared by both (MaskInputError)
    qa         # multiple-choice letters, yes / no answers and their accuracy (QAAccumulator, YesNoAccumulator)
    stats      # mean / IQM with bootstrap CIs, paired differences, probability of improvement
    jsonl      # atomic JSON-lines writing (write_jsonl_atomic)

The DAVIS names are exported here; the dataset protocols built on them are :mod:`omnir1_jax.evaluation.protocols`.
Nothing here imports PyTorch.
"""

from omnir1_jax.evaluation.metrics.davis import JFScore, davis_jf, db_eval_boundary, db_eval_iou, jf_mean, seg2bmap
from omnir1_jax.evaluation.metrics.davis_jax import db_eval_boundary_jax, db_eval_iou_jax, db_eval_jf_jax
from omnir1_jax.evaluation.metrics.jsonl import write_jsonl_atomic
from omnir1_jax.evaluation.metrics.masks import MaskInputError

__all__ = [
    "JFScore",
    "MaskInputError",
    "davis_jf",
    "db_eval_boundary",
    "db_eval_boundary_jax",
    "db_eval_iou",
    "db_eval_iou_jax",
    "db_eval_jf_jax",
    "jf_mean",
    "seg2bmap",
    "write_jsonl_atomic",
]
