"""Ref-AVS benchmark metrics (Ref-AVSBench: seen = ``test_s``, unseen = ``test_u``, null = ``test_n``).

Per expression (one clip of T frames, T = 10 in Ref-AVS), numpy, exact:

* **J** (:func:`refavs_iou`): per frame IoU of the binary prediction P and target G, averaged over the T frames.
  When G is non-empty the frame's IoU is |P & G| / |P | G|. When G is empty the *empty-GT convention* applies:
  ``"binary"`` (default) -> 1 if P is empty, else 0; ``"true_negative_fraction"`` (the Ref-AVS release's
  ``mask_iou``) -> the fraction of the frame's pixels predicted background, 1 - |P| / (H W). (The release also
  adds 1e-7 to every union; that shifts a score by < 1e-7 / |P | G| and is not reproduced.)
* **F** (:func:`refavs_fscore`): the AVS-benchmark F-measure on a probability map Y in [0, 1] (a binary mask is
  the map with values 0/1). Thresholds th_k = ``linspace(0, 1 - 1e-10, 255)`` (stored in float32, as the
  release's torch default, so the last one is exactly 1.0). For each frame whose target is non-empty (frames
  with an empty target are skipped) and each k: prediction ``Y >= th_k``, TP = |pred & G|,
  precision = TP / |pred| (0 when |pred| = 0), recall = TP / |G|, and
  F_k = (1 + beta^2) P R / (beta^2 P + R) with beta^2 = 0.3 (0 when P = R = 0). The per-frame curves are
  averaged over those frames and the expression's F is the **maximum over k** of that mean curve; 0 when no frame
  has a target. For a binary mask every th_k > 0 gives the mask itself, but th_0 = 0 selects every pixel, so the
  curve takes two values and F = max(mean F of the mask, mean F of the all-foreground prediction); the latter
  (= 1.3 a / (0.3 a + 1) for target area fraction a) only wins when the mask is poor and the targets are large.
* **S** (:func:`refavs_null_s`), null split only, lower is better: with ``sqrt=False`` (default) the mean over
  frames of |P| / (H W) (the predicted foreground fraction); with ``sqrt=True`` (the release's
  ``metric_s_for_null``) the square root of the pooled fraction, sqrt(sum_t |P_t| / (T H W)).

A split's J, F and S are means over its expressions; J&F = (J + F) / 2 of the split's means.
:meth:`RefAVSConfig.release` selects the release's arithmetic for J and S.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import numpy as np

from omnir1_jax.eval._jsonl import write_jsonl_atomic
from omnir1_jax.eval._masks import MaskInputError, check_binary, check_same_shape

__all__ = [
    "NULL_SPLIT",
    "REFAVS_SPLITS",
    "RefAVSAccumulator",
    "RefAVSConfig",
    "RefAVSRecord",
    "refavs_fscore",
    "refavs_iou",
    "refavs_null_s",
]

REFAVS_SPLITS = ("train", "val", "test_s", "test_u", "test_n")
NULL_SPLIT = "test_n"

EmptyGT = Literal["binary", "true_negative_fraction"]


def refavs_iou(prediction, target, empty_gt: EmptyGT = "binary") -> np.ndarray:
    """Per-frame J with Ref-AVS's empty-target convention (module docstring).

    Args:
      prediction: binary ``[T, H, W]`` (or ``[H, W]``) mask.
      target: ground truth, same shape.
      empty_gt: ``"binary"`` or ``"true_negative_fraction"``.

    Returns:
      float64 ``[T]`` (``[1]`` for one frame).
    """
    if empty_gt not in ("binary", "true_negative_fraction"):
        raise ValueError(f"empty_gt must be 'binary' or 'true_negative_fraction', got {empty_gt!r}")
    check_same_shape(("prediction", "target"), prediction, target)
    p = _frames(check_binary("prediction", prediction, (2, 3)))
    g = _frames(check_binary("target", target, (2, 3)))
    inter = (p & g).sum(axis=(1, 2))
    union = (p | g).sum(axis=(1, 2))
    pred_area = p.sum(axis=(1, 2))
    gt_empty = g.sum(axis=(1, 2)) == 0
    if empty_gt == "binary":
        empty_score = (pred_area == 0).astype(np.float64)
    else:
        empty_score = 1.0 - pred_area / float(p.shape[1] * p.shape[2])
    return np.where(gt_empty, empty_score, inter / np.maximum(union, 1)).astype(np.float64)


def fscore_thresholds(num_thresholds: int = 255) -> np.ndarray:
    """The AVS-benchmark thresholds ``linspace(0, 1 - 1e-10, num)`` in float32 (last one rounds to 1.0)."""
    return np.linspace(0.0, 1.0 - 1e-10, num_thresholds).astype(np.float32)


def refavs_fscore(prob, target, num_thresholds: int = 255, beta2: float = 0.3) -> float:
    """Max-over-thresholds F-measure of one expression (module docstring).

    Args:
      prob: ``[T, H, W]`` (or ``[H, W]``) probability map in [0, 1], or a binary mask.
      target: binary ground truth, same shape.
      num_thresholds: number of thresholds (255 in the benchmark).
      beta2: beta^2 of the F-measure (0.3 in the benchmark).

    Returns:
      F in [0, 1] (0 when no frame has a non-empty target).

    Raises:
      MaskInputError: shapes differ, ``prob`` outside [0, 1] or non-finite, ``target`` not binary.
    """
    if num_thresholds < 1 or beta2 <= 0:
        raise ValueError(f"need num_thresholds >= 1 and beta2 > 0, got {num_thresholds}, {beta2}")
    check_same_shape(("prob", "target"), prob, target)
    y = _frames(np.asarray(prob, np.float64))
    g = _frames(check_binary("target", target, (2, 3)))
    if y.size and (not np.all(np.isfinite(y)) or y.min() < 0 or y.max() > 1):
        raise MaskInputError(f"prob must be finite and in [0, 1], got range [{y.min()}, {y.max()}]")
    thresholds = fscore_thresholds(num_thresholds).astype(np.float64)
    curves = []
    for y_t, g_t in zip(y, g):
        gt_area = int(g_t.sum())
        if gt_area == 0:
            continue
        # level[i] = how many thresholds pixel i passes (Y >= th_k for k < level); count per threshold by a
        # reverse cumulative histogram instead of 255 full-frame comparisons.
        level = np.searchsorted(thresholds, y_t.reshape(-1), side="right")
        pred_count = _passing_counts(level, num_thresholds)
        tp = _passing_counts(level[g_t.reshape(-1)], num_thresholds)
        precision = np.divide(tp, pred_count, out=np.zeros(num_thresholds), where=pred_count > 0)
        recall = tp / gt_area
        denom = beta2 * precision + recall
        f = np.divide((1.0 + beta2) * precision * recall, denom, out=np.zeros(num_thresholds), where=denom > 0)
        curves.append(f)
    if not curves:
        return 0.0
    return float(np.mean(curves, axis=0).max())


def _passing_counts(level: np.ndarray, num_thresholds: int) -> np.ndarray:
    """counts[k] = number of entries with level > k."""
    hist = np.bincount(level, minlength=num_thresholds + 1)
    return hist[::-1].cumsum()[::-1][1:].astype(np.float64)


def refavs_null_s(prediction, sqrt: bool = False) -> float:
    """S of one null-split expression: mean predicted foreground fraction, or the release's sqrt of the pooled
    fraction with ``sqrt=True`` (module docstring). Lower is better; 0 for an all-empty prediction."""
    p = _frames(check_binary("prediction", prediction, (2, 3)))
    if sqrt:
        return float(np.sqrt(p.sum() / p.size))
    return float(np.mean(p.mean(axis=(1, 2))))


def _frames(x: np.ndarray) -> np.ndarray:
    return x[None] if x.ndim == 2 else x


@dataclasses.dataclass(frozen=True)
class RefAVSConfig:
    """How Ref-AVS scores are computed.

    Attributes:
      empty_gt: J on frames with an empty target: ``"binary"`` (1 iff the prediction is empty; project default)
        or ``"true_negative_fraction"`` (the Ref-AVS release).
      null_s_sqrt: S as sqrt of the pooled foreground fraction (the release) instead of the mean fraction.
      num_thresholds: F-measure thresholds (255, AVSBench).
      beta2: F-measure beta^2 (0.3, AVSBench).
    """

    empty_gt: EmptyGT = "binary"
    null_s_sqrt: bool = False
    num_thresholds: int = 255
    beta2: float = 0.3

    def __post_init__(self):
        if self.empty_gt not in ("binary", "true_negative_fraction"):
            raise ValueError(
                f"RefAVSConfig.empty_gt must be 'binary' or 'true_negative_fraction', got {self.empty_gt!r}"
            )
        if not isinstance(self.num_thresholds, int) or self.num_thresholds < 1:
            raise ValueError(f"RefAVSConfig.num_thresholds must be an int >= 1, got {self.num_thresholds!r}")
        if not self.beta2 > 0:
            raise ValueError(f"RefAVSConfig.beta2 must be > 0, got {self.beta2!r}")

    @classmethod
    def release(cls) -> RefAVSConfig:
        """The arithmetic of the Ref-AVS code release (true-negative-fraction J, sqrt S)."""
        return cls(empty_gt="true_negative_fraction", null_s_sqrt=True)


@dataclasses.dataclass(frozen=True)
class RefAVSRecord:
    """One expression's Ref-AVS scores: J and F for seen/unseen/val/train, S for the null split."""

    expression_id: str
    split: str
    num_frames: int
    j: float | None = None
    f: float | None = None
    s: float | None = None

    def to_json(self) -> dict:
        """Plain dict: expression_id, split, num_frames and J, F, J&F (or S on the null split)."""
        row = {"expression_id": self.expression_id, "split": self.split, "num_frames": self.num_frames}
        if self.split == NULL_SPLIT:
            row["S"] = self.s
        else:
            row.update({"J": self.j, "F": self.f, "J&F": (self.j + self.f) / 2.0})
        return row


class RefAVSAccumulator:
    """Collects per-expression Ref-AVS scores; :meth:`summary` gives each split's means."""

    def __init__(self, config: RefAVSConfig = RefAVSConfig()):
        self.config = config
        self._records: dict[str, RefAVSRecord] = {}

    def __len__(self) -> int:
        return len(self._records)

    def add(self, expression_id: str, split: str, prediction, target=None, prob=None) -> RefAVSRecord:
        """Scores one expression and records it.

        Args:
          expression_id: unique id (e.g. ``"<vid>/<uid>"``).
          split: one of :data:`REFAVS_SPLITS`; ``"test_n"`` computes S only (``target`` is not needed).
          prediction: binary ``[T, H, W]`` mask (used for J and S, and for F when ``prob`` is not given).
          target: binary ``[T, H, W]`` ground truth (required except on the null split).
          prob: optional ``[T, H, W]`` probability map in [0, 1] for F.

        Raises:
          ValueError: unknown split, duplicate id, missing target; MaskInputError for bad masks.
        """
        self._check_new(expression_id, split)
        p = _frames(check_binary("prediction", prediction, (2, 3)))
        if split == NULL_SPLIT:
            s = refavs_null_s(p, sqrt=self.config.null_s_sqrt)
            return self._put(RefAVSRecord(str(expression_id), split, p.shape[0], s=s))
        if target is None:
            raise ValueError(f"expression {expression_id!r} on split {split!r} needs a target mask")
        j = refavs_iou(p, _frames(np.asarray(target)), empty_gt=self.config.empty_gt)
        y = p.astype(np.float64) if prob is None else _frames(np.asarray(prob))
        f = refavs_fscore(y, _frames(np.asarray(target)), self.config.num_thresholds, self.config.beta2)
        return self._put(RefAVSRecord(str(expression_id), split, p.shape[0], j=float(j.mean()), f=f))

    def add_scores(self, expression_id: str, split: str, num_frames: int, j=None, f=None, s=None) -> RefAVSRecord:
        """Records precomputed per-expression scores (J and F, or S on the null split), each in [0, 1]."""
        self._check_new(expression_id, split)
        needed = ("s",) if split == NULL_SPLIT else ("j", "f")
        values = {"j": j, "f": f, "s": s}
        for name in needed:
            v = values[name]
            if v is None or not np.isfinite(v) or not 0 <= v <= 1:
                raise ValueError(f"expression {expression_id!r}: {name.upper()} must be in [0, 1], got {v!r}")
        kept = {k: float(values[k]) for k in needed}
        return self._put(RefAVSRecord(str(expression_id), split, int(num_frames), **kept))

    def _check_new(self, expression_id, split):
        if split not in REFAVS_SPLITS:
            raise ValueError(f"expression {expression_id!r}: split must be one of {REFAVS_SPLITS}, got {split!r}")
        if str(expression_id) in self._records:
            raise ValueError(f"expression {expression_id!r} was already added")

    def _put(self, record: RefAVSRecord) -> RefAVSRecord:
        self._records[record.expression_id] = record
        return record

    def records(self) -> list[RefAVSRecord]:
        """Per-expression records in insertion order."""
        return list(self._records.values())

    def summary(self) -> dict[str, dict]:
        """``{split: {"J", "F", "J&F", "count"}}``, and ``{"test_n": {"S", "count"}}``; splits with no records
        are left out. Means are over expressions; J&F = (J + F) / 2 of the split means."""
        out: dict[str, dict] = {}
        for split in REFAVS_SPLITS:
            group: Sequence[RefAVSRecord] = [r for r in self._records.values() if r.split == split]
            if not group:
                continue
            if split == NULL_SPLIT:
                out[split] = {"S": float(np.mean([r.s for r in group])), "count": len(group)}
            else:
                j = float(np.mean([r.j for r in group]))
                f = float(np.mean([r.f for r in group]))
                out[split] = {"J": j, "F": f, "J&F": (j + f) / 2.0, "count": len(group)}
        return out

    def write_jsonl(self, path) -> None:
        """One :meth:`RefAVSRecord.to_json` line per expression, written atomically."""
        write_jsonl_atomic(path, (r.to_json() for r in self.records()))
