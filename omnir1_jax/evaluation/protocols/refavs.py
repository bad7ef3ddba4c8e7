"""Ref-AVS metrics (Ref-AVSBench: seen = ``test_s``, unseen = ``test_u``, null = ``test_n``).

Two protocols (:class:`RefAVSConfig`); reported numbers use ``"release"`` (the default), so they compare with the
published tables (docs/design.md §7.3); ``"project"`` is our per-expression variant. Every summary / JSONL row states
the protocol it used (:meth:`RefAVSConfig.describe`).

Per expression (one clip of T frames, T = 10 in Ref-AVS), numpy:

* **Inputs**: a probability map Y in [0, 1] (the release's ``sigmoid(logits)``) or a binary mask (Y in {0, 1}).
  The release binarises Y at ``> 0.4`` for J and ``> 0.5`` for S (``RefAVSConfig.j_threshold`` /
  ``s_threshold``; None = use the given binary prediction); F uses Y itself. For a binary mask both thresholds
  give the mask.
* **J** (:func:`refavs_iou`): per frame IoU of the binary prediction P and target G. When G is non-empty the
  frame's IoU is |P & G| / |P | G|. When G is empty the *empty-GT convention* applies: ``"binary"`` (project) ->
  1 if P is empty, else 0; ``"true_negative_fraction"`` (the release's ``mask_iou``) -> 1 - |P| / (H W). (The
  release also adds 1e-7 to every union; that shifts a score by < 1e-7 / |P | G| and is not reproduced.)
* **F** (:func:`refavs_fscore`): the AVSBench F-measure on Y. Thresholds th_k are the release's
  ``torch.linspace(0, 1 - 1e-10, 255)`` in float32 bit for bit (:func:`fscore_thresholds`; a float64 linspace
  cast to float32 differs in 10 of them by one float32 step). For each frame whose target is non-empty (frames
  with an empty target are skipped) and each k: prediction ``Y >= th_k``, TP = |pred & G|,
  precision = TP / |pred| (0 when |pred| = 0), recall = TP / |G|, and
  F_k = (1 + beta^2) P R / (beta^2 P + R) with beta^2 = 0.3 (0 when P = R = 0). The per-frame curves are
  averaged over those frames and F is the **maximum over k** of that mean curve; 0 when no frame has a target.
  For a binary mask every th_k > 0 gives the mask itself, but th_0 = 0 selects every pixel, so the curve takes
  two values and F = max(mean F of the mask, mean F of the all-foreground prediction).
* **S** (:func:`refavs_null_s`), null split only, lower is better: the release's square root of the pooled
  predicted fraction sqrt(sum_t |P_t| / (T H W)) (``sqrt=True``), or the project's mean over frames of |P| / (H W).

A split's scores:

* ``"release"`` (``batch_size = 4``): the release's test loop runs DataLoader batches of 4 expressions in dataset
  order and averages per-batch values: per batch J = mean over **all frames** of its expressions, F = max over k of
  the mean curve over **all non-empty-target frames** of the batch (0 when it has none), S = sqrt of the pooled
  fraction over the batch's frames; the split's J, F, S are means over batches (a last batch of fewer than 4
  expressions weighs as much as a full one).
* ``"project"`` (``batch_size = None``): means over expressions of each expression's J, F, S.

J&F = (J + F) / 2 of the split's J and F. Not reproduced: the release scores masks resized to 256 x 256 (we
score at the original resolution) and computes in float32 (we use float64).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import numpy as np

from omnir1_jax.evaluation.metrics.jsonl import write_jsonl_atomic
from omnir1_jax.evaluation.metrics.masks import MaskInputError, check_binary, check_same_shape

__all__ = [
    "NULL_SPLIT",
    "PROTOCOLS",
    "REFAVS_SPLITS",
    "RefAVSAccumulator",
    "RefAVSConfig",
    "RefAVSRecord",
    "fscore_curve",
    "fscore_thresholds",
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
    """The AVSBench thresholds: ``torch.linspace(0, 1 - 1e-10, num)`` (float32) reproduced bit for bit.

    torch computes ``step = (end - start) / (num - 1)`` in float32 (end = float32(1 - 1e-10) = 1.0), then
    ``start + step * i`` for ``i < num // 2`` and ``end - step * (num - 1 - i)`` above, each rounded once to float32
    (a fused multiply-add); float32 times a small integer is exact in float64, so one float64 evaluation rounded
    to float32 gives the same values.
    """
    if num_thresholds < 1:
        raise ValueError(f"num_thresholds must be >= 1, got {num_thresholds}")
    end = np.float32(1.0 - 1e-10)
    if num_thresholds == 1:
        return np.zeros(1, np.float32)
    step = np.float64(end / np.float32(num_thresholds - 1))
    i = np.arange(num_thresholds, dtype=np.float64)
    low = step * i
    high = np.float64(end) - step * (num_thresholds - 1 - i)
    return np.where(i < num_thresholds // 2, low, high).astype(np.float32)


def refavs_fscore(prob, target, num_thresholds: int = 255, beta2: float = 0.3) -> float:
    """Max-over-thresholds F-measure of one expression (module docstring).

    Args:
      prob: ``[T, H, W]`` (or ``[H, W]``) probability map in [0, 1], or a binary mask.
      target: binary ground truth, same shape.
      num_thresholds: number of thresholds (255 in the release).
      beta2: beta^2 of the F-measure (0.3 in the release).

    Returns:
      F in [0, 1] (0 when no frame has a non-empty target).

    Raises:
      MaskInputError: shapes differ, ``prob`` outside [0, 1] or non-finite, ``target`` not binary.
    """
    curve_sum, count = fscore_curve(prob, target, num_thresholds, beta2)
    return float((curve_sum / count).max()) if count else 0.0


def fscore_curve(prob, target, num_thresholds: int = 255, beta2: float = 0.3) -> tuple[np.ndarray, int]:
    """``(sum of the per-frame F curves [num_thresholds], number of frames with a non-empty target)`` of one
    expression: what the release pools over a batch (see :func:`refavs_fscore` for the curve)."""
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
        return np.zeros(num_thresholds), 0
    return np.sum(curves, axis=0), len(curves)


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
    """How Ref-AVS scores are computed. The defaults are the Ref-AVS release's protocol (module docstring).

    Attributes:
      empty_gt: J on frames with an empty target: ``"true_negative_fraction"`` (release) or ``"binary"``
        (1 iff the prediction is empty; project).
      null_s_sqrt: S as sqrt of the pooled foreground fraction (release) instead of the mean fraction.
      j_threshold, s_threshold: a probability map is binarised at ``> j_threshold`` for J and ``> s_threshold``
        for S (release: 0.4 and 0.5); None uses the binary prediction passed alongside.
      batch_size: the split's scores are means over consecutive batches of this many expressions, pooled as the
        release pools a DataLoader batch (release: 4); None = means over expressions (project).
      num_thresholds: F-measure thresholds (255, AVSBench).
      beta2: F-measure beta^2 (0.3, AVSBench).
    """

    empty_gt: EmptyGT = "true_negative_fraction"
    null_s_sqrt: bool = True
    j_threshold: float | None = 0.4
    s_threshold: float | None = 0.5
    batch_size: int | None = 4
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
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ValueError(f"RefAVSConfig.batch_size must be an int >= 1 or None, got {self.batch_size!r}")
        for name in ("j_threshold", "s_threshold"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v < 1.0:
                raise ValueError(f"RefAVSConfig.{name} must be in [0, 1) or None, got {v!r}")

    @classmethod
    def release(cls) -> RefAVSConfig:
        """The Ref-AVS release's protocol (the default)."""
        return cls()

    @classmethod
    def project(cls) -> RefAVSConfig:
        """Our per-expression protocol: binary J on empty targets, mean-fraction S, means over expressions."""
        return cls(empty_gt="binary", null_s_sqrt=False, j_threshold=None, s_threshold=None, batch_size=None)

    @classmethod
    def named(cls, name: str) -> RefAVSConfig:
        """``"release"`` or ``"project"``."""
        if name not in PROTOCOLS:
            raise ValueError(f"Ref-AVS protocol must be one of {PROTOCOLS}, got {name!r}")
        return cls.release() if name == "release" else cls.project()

    @property
    def name(self) -> str:
        """``"release"``, ``"project"`` or ``"custom"``."""
        if self == RefAVSConfig.release():
            return "release"
        return "project" if self == RefAVSConfig.project() else "custom"

    def describe(self) -> dict:
        """The protocol as a JSON-able dict (name + every setting): what output files record."""
        return {"name": self.name, **dataclasses.asdict(self)}


PROTOCOLS = ("release", "project")


@dataclasses.dataclass(frozen=True)
class RefAVSRecord:
    """One expression's Ref-AVS scores: J and F for seen/unseen/val/train, S for the null split.

    The pooled quantities (per-frame J, the summed F curve and its frame count, predicted and total pixels) let
    the release protocol pool a batch of expressions; they are None for scores added without them.
    """

    expression_id: str
    split: str
    num_frames: int
    j: float | None = None
    f: float | None = None
    s: float | None = None
    j_frames: tuple[float, ...] | None = None
    f_curve_sum: tuple[float, ...] | None = None
    f_count: int | None = None
    fg_pixels: int | None = None
    pixels: int | None = None

    def to_json(self, protocol: str | None = None) -> dict:
        """Plain dict: expression_id, split, num_frames and J, F, J&F (or S on the null split), plus the pooled
        quantities when known and ``protocol`` when given."""
        row: dict = {"expression_id": self.expression_id, "split": self.split, "num_frames": self.num_frames}
        if self.split == NULL_SPLIT:
            row["S"] = self.s
            if self.fg_pixels is not None:
                row.update({"fg_pixels": self.fg_pixels, "pixels": self.pixels})
        else:
            row.update({"J": self.j, "F": self.f, "J&F": (self.j + self.f) / 2.0})
            if self.j_frames is not None:
                row["J_frames"] = list(self.j_frames)
            if self.f_curve_sum is not None:
                row.update({"F_curve_sum": list(self.f_curve_sum), "F_count": self.f_count})
        if protocol is not None:
            row["protocol"] = protocol
        return row


class RefAVSAccumulator:
    """Collects per-expression Ref-AVS scores; :meth:`summary` gives each split's scores under ``config``."""

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
          prediction: binary ``[T, H, W]`` mask (J and S use it when ``prob`` is not given or the config's
            threshold is None; F uses it when ``prob`` is not given).
          target: binary ``[T, H, W]`` ground truth (required except on the null split).
          prob: optional ``[T, H, W]`` probability map in [0, 1]: F's input, and binarised at the config's
            ``j_threshold`` / ``s_threshold`` for J / S.

        Raises:
          ValueError: unknown split, duplicate id, missing target; MaskInputError for bad masks.
        """
        self._check_new(expression_id, split)
        cfg = self.config
        p = _frames(check_binary("prediction", prediction, (2, 3)))
        y = None
        if prob is not None:
            check_same_shape(("prediction", "prob"), p, _frames(np.asarray(prob)))
            y = _frames(np.asarray(prob, np.float64))
            if y.size and (not np.all(np.isfinite(y)) or y.min() < 0 or y.max() > 1):
                raise MaskInputError(f"prob must be finite and in [0, 1], got range [{y.min()}, {y.max()}]")
        if split == NULL_SPLIT:
            ps = p if y is None or cfg.s_threshold is None else y > cfg.s_threshold
            s = refavs_null_s(ps, sqrt=cfg.null_s_sqrt)
            return self._put(
                RefAVSRecord(str(expression_id), split, p.shape[0], s=s, fg_pixels=int(ps.sum()), pixels=int(ps.size))
            )
        if target is None:
            raise ValueError(f"expression {expression_id!r} on split {split!r} needs a target mask")
        g = _frames(np.asarray(target))
        pj = p if y is None or cfg.j_threshold is None else y > cfg.j_threshold
        j = refavs_iou(pj, g, empty_gt=cfg.empty_gt)
        curve, count = fscore_curve(p.astype(np.float64) if y is None else y, g, cfg.num_thresholds, cfg.beta2)
        f = float((curve / count).max()) if count else 0.0
        return self._put(
            RefAVSRecord(
                str(expression_id),
                split,
                p.shape[0],
                j=float(j.mean()),
                f=f,
                j_frames=tuple(float(v) for v in j),
                f_curve_sum=tuple(float(v) for v in curve),
                f_count=int(count),
            )
        )

    def add_scores(
        self,
        expression_id: str,
        split: str,
        num_frames: int,
        j=None,
        f=None,
        s=None,
        *,
        j_frames=None,
        f_curve_sum=None,
        f_count=None,
        fg_pixels=None,
        pixels=None,
    ) -> RefAVSRecord:
        """Records precomputed per-expression scores (J and F, or S on the null split), each in [0, 1], and
        optionally the pooled quantities the release protocol needs (see :class:`RefAVSRecord`)."""
        self._check_new(expression_id, split)
        needed = ("s",) if split == NULL_SPLIT else ("j", "f")
        values = {"j": j, "f": f, "s": s}
        for name in needed:
            v = values[name]
            if v is None or not np.isfinite(v) or not 0 <= v <= 1:
                raise ValueError(f"expression {expression_id!r}: {name.upper()} must be in [0, 1], got {v!r}")
        kept = {k: float(values[k]) for k in needed}
        if split == NULL_SPLIT:
            if fg_pixels is not None:
                kept.update(fg_pixels=int(fg_pixels), pixels=int(pixels))
        else:
            if j_frames is not None:
                kept["j_frames"] = tuple(float(v) for v in j_frames)
            if f_curve_sum is not None:
                kept.update(f_curve_sum=tuple(float(v) for v in f_curve_sum), f_count=int(f_count))
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
        are left out. ``count`` is the number of expressions; with ``config.batch_size`` the scores are means over
        that split's batches (in insertion order; see the module docstring), else means over expressions."""
        out: dict[str, dict] = {}
        size = self.config.batch_size
        for split in REFAVS_SPLITS:
            group: Sequence[RefAVSRecord] = [r for r in self._records.values() if r.split == split]
            if not group:
                continue
            batches = [group] if size is None else [group[i : i + size] for i in range(0, len(group), size)]
            if split == NULL_SPLIT:
                s = [r.s for r in group] if size is None else [self._batch_s(b) for b in batches]
                out[split] = {"S": float(np.mean(s)), "count": len(group)}
                continue
            if size is None:
                j = float(np.mean([r.j for r in group]))
                f = float(np.mean([r.f for r in group]))
            else:
                j = float(np.mean([self._batch_j(b) for b in batches]))
                f = float(np.mean([self._batch_f(b) for b in batches]))
            out[split] = {"J": j, "F": f, "J&F": (j + f) / 2.0, "count": len(group)}
        return out

    @staticmethod
    def _need(record: RefAVSRecord, field: str):
        v = getattr(record, field)
        if v is None:
            raise ValueError(
                f"expression {record.expression_id!r} has no {field}: the batched (release) protocol "
                f"needs the pooled quantities (add it with add(), or add_scores(..., {field}=...))"
            )
        return v

    def _batch_j(self, batch) -> float:
        return float(np.mean(np.concatenate([np.asarray(self._need(r, "j_frames")) for r in batch])))

    def _batch_f(self, batch) -> float:
        curve = np.sum([np.asarray(self._need(r, "f_curve_sum")) for r in batch], axis=0)
        count = sum(self._need(r, "f_count") for r in batch)
        return float((curve / count).max()) if count else 0.0

    def _batch_s(self, batch) -> float:
        fg = sum(self._need(r, "fg_pixels") for r in batch)
        total = sum(self._need(r, "pixels") for r in batch)
        fraction = fg / total if total else 0.0
        return float(np.sqrt(fraction)) if self.config.null_s_sqrt else float(fraction)

    def write_jsonl(self, path) -> None:
        """One :meth:`RefAVSRecord.to_json` line per expression (each naming the protocol), written atomically."""
        name = self.config.name
        write_jsonl_atomic(path, (r.to_json(name) for r in self.records()))
