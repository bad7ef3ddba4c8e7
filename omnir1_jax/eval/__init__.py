"""Evaluation: DAVIS J and F (numpy reference + batched JAX) and the dataset protocols (SPEC section 6).

Public API::

    # DAVIS-2017 measures, numpy reference ([H, W] -> float, [T, H, W] -> [T])
    db_eval_iou(annotation, segmentation, void_pixels=None)
    db_eval_boundary(annotation, segmentation, void_pixels=None, bound_th=0.008)
    seg2bmap(seg); jf_mean(j, f); davis_jf(annotation, segmentation, void_pixels=None, bound_th=0.008) -> JFScore
    # batched, jit-able JAX versions over [*B, H, W] -> [*B] float32
    db_eval_iou_jax(...), db_eval_boundary_jax(..., bound_th=0.008), db_eval_jf_jax(...) -> (J, F)
    # protocols
    VOSAccumulator(overall_subsets=("referring", "reasoning") | None)   # ReVOS / MeViS
        .add(expression_id, subset, num_objects, j[T], f[T]), .add_revos(...), .summary(), .write_jsonl(path)
    merge_objects(object_masks[O, T, H, W]), expression_jf(target, prediction), revos_subset(type_id)
    RefAVSAccumulator(RefAVSConfig()), refavs_iou, refavs_fscore, refavs_null_s

Nothing here imports PyTorch.
"""

from omnir1_jax.eval._masks import MaskInputError
from omnir1_jax.eval.metrics import (
    JFScore,
    davis_jf,
    db_eval_boundary,
    db_eval_boundary_jax,
    db_eval_iou,
    db_eval_iou_jax,
    jf_mean,
    seg2bmap,
)
from omnir1_jax.eval.metrics_jax import db_eval_jf_jax
from omnir1_jax.eval.protocols import (
    REFAVS_SPLITS,
    REVOS_SUBSETS,
    ExpressionScore,
    RefAVSAccumulator,
    RefAVSConfig,
    RefAVSRecord,
    VOSAccumulator,
    expression_jf,
    merge_objects,
    refavs_fscore,
    refavs_iou,
    refavs_null_s,
    revos_subset,
    write_jsonl_atomic,
)

__all__ = [
    "REFAVS_SPLITS",
    "REVOS_SUBSETS",
    "ExpressionScore",
    "JFScore",
    "MaskInputError",
    "RefAVSAccumulator",
    "RefAVSConfig",
    "RefAVSRecord",
    "VOSAccumulator",
    "davis_jf",
    "db_eval_boundary",
    "db_eval_boundary_jax",
    "db_eval_iou",
    "db_eval_iou_jax",
    "db_eval_jf_jax",
    "expression_jf",
    "jf_mean",
    "merge_objects",
    "refavs_fscore",
    "refavs_iou",
    "refavs_null_s",
    "revos_subset",
    "seg2bmap",
    "write_jsonl_atomic",
]
