"""Dataset evaluation protocols (docs/design.md §7.2-7.3), pure numpy / JAX over the measures of
:mod:`omnir1_jax.evaluation.metrics`.

Public API::

    # ReVOS / MeViS (module vos)
    VOSAccumulator(overall_subsets=("referring", "reasoning") | None)
        .add(expression_id, subset, num_objects, j[T], f[T]), .add_revos(...), .summary(), .write_jsonl(path)
    merge_objects(object_masks[O, T, H, W]), expression_jf(target, prediction), revos_subset(type_id)
    # Ref-AVS (module refavs): the release's protocol and the project's per-expression variant
    RefAVSAccumulator(RefAVSConfig()), refavs_iou, refavs_fscore, refavs_null_s

Nothing here imports PyTorch.
"""

from omnir1_jax.evaluation.metrics.jsonl import write_jsonl_atomic
from omnir1_jax.evaluation.metrics.masks import MaskInputError
from omnir1_jax.evaluation.protocols.refavs import (
    NULL_SPLIT,
    PROTOCOLS,
    REFAVS_SPLITS,
    RefAVSAccumulator,
    RefAVSConfig,
    RefAVSRecord,
    fscore_curve,
    fscore_thresholds,
    refavs_fscore,
    refavs_iou,
    refavs_null_s,
)
from omnir1_jax.evaluation.protocols.vos import (
    REVOS_SUBSETS,
    ExpressionScore,
    VOSAccumulator,
    expression_jf,
    merge_objects,
    revos_subset,
)

__all__ = [
    "NULL_SPLIT",
    "PROTOCOLS",
    "REFAVS_SPLITS",
    "REVOS_SUBSETS",
    "ExpressionScore",
    "MaskInputError",
    "RefAVSAccumulator",
    "RefAVSConfig",
    "RefAVSRecord",
    "VOSAccumulator",
    "expression_jf",
    "fscore_curve",
    "fscore_thresholds",
    "merge_objects",
    "refavs_fscore",
    "refavs_iou",
    "refavs_null_s",
    "revos_subset",
    "write_jsonl_atomic",
]
