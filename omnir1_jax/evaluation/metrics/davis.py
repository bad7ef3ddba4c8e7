"""DAVIS-2017 region (J) and boundary (F) measures: the exact numpy reference (docs/design.md §7.1).

Argument order and semantics follow the DAVIS-2017 evaluation toolkit (``davis2017-evaluation``):
``db_eval_iou(annotation, segmentation, void_pixels=None)`` and
``db_eval_boundary(annotation, segmentation, void_pixels=None, bound_th=0.008)``. Both take one frame ``[H, W]``
or a sequence ``[T, H, W]`` and return a float or a float64 array ``[T]`` of per-frame values.

Definitions (what the official code computes, transcribed from its documented behaviour):

* **J** = |A & S & ~V| / |(A | S) & ~V|, and J = 1 when that union is empty (both masks empty, or everything
  void). One side empty and the other not gives 0.
* **Boundary map** (``seg2bmap``): pixel (y, x) is a boundary pixel when its value differs from its right
  (y, x+1), bottom (y+1, x) or bottom-right (y+1, x+1) neighbour. Neighbours outside the image take the value of
  the nearest pixel inside it, so the image border itself is never a boundary: on the last column only the bottom
  neighbour counts, on the last row only the right one, and the bottom-right corner pixel is never a boundary.
  A full-frame mask therefore has no boundary. Void pixels are set to background before this step.
* **Tolerance** ``bound_pix = ceil(bound_th * ||(H, W)||)`` for ``bound_th < 1``, else ``bound_th``; each boundary
  map is dilated with the disk ``{dx**2 + dy**2 <= bound_pix**2}`` (zero outside the image).
* **Precision** = |B_S & dil(B_A)| / |B_S|, **recall** = |B_A & dil(B_S)| / |B_A|, with the official empty cases:
  both boundaries empty -> P = R = 1; B_S empty only -> P = 1, R = 0; B_A empty only -> P = 0, R = 1.
  **F** = 2PR / (P + R), and 0 when P + R = 0.

The batched, jit-able JAX versions with identical results live in :mod:`omnir1_jax.evaluation.metrics.davis_jax`
(both are exported by :mod:`omnir1_jax.evaluation.metrics`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

from omnir1_jax.evaluation.metrics.masks import (
    MaskInputError,
    boundary_tolerance,
    check_binary,
    check_same_shape,
    disk_footprint,
)

__all__ = [
    "JFScore",
    "MaskInputError",
    "davis_jf",
    "db_eval_boundary",
    "db_eval_iou",
    "jf_mean",
    "seg2bmap",
]

_DAVIS_NDIMS = (2, 3)


def _check_pair(annotation, segmentation, void_pixels):
    check_same_shape(("annotation", "segmentation", "void_pixels"), annotation, segmentation, void_pixels)
    annotation = check_binary("annotation", annotation, _DAVIS_NDIMS)
    segmentation = check_binary("segmentation", segmentation, _DAVIS_NDIMS)
    void = None if void_pixels is None else check_binary("void_pixels", void_pixels, _DAVIS_NDIMS)
    return annotation, segmentation, void


def db_eval_iou(annotation, segmentation, void_pixels=None):
    """Region similarity J (Jaccard index) per frame.

    Args:
      annotation: ground-truth mask, ``[H, W]`` or ``[T, H, W]``, bool or 0/1.
      segmentation: predicted mask, same shape.
      void_pixels: optional mask of pixels to ignore, same shape.

    Returns:
      A float for ``[H, W]`` input, a float64 array ``[T]`` for ``[T, H, W]``. 1 where the union (outside void)
      is empty, else intersection / union.

    Raises:
      MaskInputError: shapes differ, wrong number of dimensions, or values other than 0/1.
    """
    annotation, segmentation, void = _check_pair(annotation, segmentation, void_pixels)
    keep = np.ones_like(annotation) if void is None else ~void
    inter = np.sum(annotation & segmentation & keep, axis=(-2, -1))
    union = np.sum((annotation | segmentation) & keep, axis=(-2, -1))
    j = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    return float(j) if j.ndim == 0 else j.astype(np.float64)


def seg2bmap(seg) -> np.ndarray:
    """One-pixel-wide boundary map of a binary mask, as DAVIS's ``seg2bmap`` at the input's own size.

    A pixel is on the boundary when it differs from its right, bottom or bottom-right neighbour; neighbours past
    the image edge repeat the edge pixel, so the border is not a boundary (see the module docstring).

    Args:
      seg: ``[..., H, W]`` bool or 0/1 mask (leading axes are independent frames).

    Returns:
      bool array of the same shape.
    """
    s = check_binary("seg", seg)
    # Edge-replicating the right column and bottom row reproduces the official last-row / last-column / corner
    # overrides exactly: a replicated neighbour equals the pixel, so it never flags a difference.
    p = np.pad(s, [(0, 0)] * (s.ndim - 2) + [(0, 1), (0, 1)], mode="edge")
    right = p[..., :-1, 1:]
    below = p[..., 1:, :-1]
    below_right = p[..., 1:, 1:]
    return (s ^ right) | (s ^ below) | (s ^ below_right)


def _precision_recall_f(n_fg, n_gt, fg_match, gt_match):
    """Official empty-boundary conventions, then F = 2PR/(P+R) (0 when P + R = 0). Scalars in, float out."""
    if n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    elif n_fg == 0:
        precision, recall = 1.0, 0.0
    elif n_gt == 0:
        precision, recall = 0.0, 1.0
    else:
        precision, recall = fg_match / n_fg, gt_match / n_gt
    if precision + recall == 0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


def _f_measure_frame(segmentation, annotation, void, bound_pix):
    keep = ~void
    fg_boundary = seg2bmap(segmentation & keep)
    gt_boundary = seg2bmap(annotation & keep)
    footprint = disk_footprint(bound_pix)
    # binary_dilation treats pixels outside the image as 0, like cv2.dilate's default border for dilation.
    fg_dil = ndimage.binary_dilation(fg_boundary, structure=footprint)
    gt_dil = ndimage.binary_dilation(gt_boundary, structure=footprint)
    n_fg = int(fg_boundary.sum())
    n_gt = int(gt_boundary.sum())
    fg_match = int((fg_boundary & gt_dil).sum())
    gt_match = int((gt_boundary & fg_dil).sum())
    return _precision_recall_f(n_fg, n_gt, fg_match, gt_match)


def db_eval_boundary(annotation, segmentation, void_pixels=None, bound_th: float = 0.008):
    """Boundary measure F per frame (DAVIS contour accuracy).

    Args:
      annotation: ground-truth mask, ``[H, W]`` or ``[T, H, W]``, bool or 0/1.
      segmentation: predicted mask, same shape.
      void_pixels: optional mask of pixels to ignore (set to background in both masks), same shape.
      bound_th: boundary tolerance; a fraction of the image diagonal if < 1, else a whole number of pixels.

    Returns:
      A float for ``[H, W]`` input, a float64 array ``[T]`` for ``[T, H, W]``.

    Raises:
      MaskInputError: shapes differ, wrong number of dimensions, values other than 0/1, or a bad ``bound_th``.
    """
    annotation, segmentation, void = _check_pair(annotation, segmentation, void_pixels)
    height, width = annotation.shape[-2:]
    bound_pix = boundary_tolerance(bound_th, height, width)
    if void is None:
        void = np.zeros_like(annotation)
    if annotation.ndim == 2:
        return _f_measure_frame(segmentation, annotation, void, bound_pix)
    return np.array(
        [_f_measure_frame(segmentation[t], annotation[t], void[t], bound_pix) for t in range(annotation.shape[0])],
        dtype=np.float64,
    )


def jf_mean(j, f) -> float:
    """J&F = (mean(J) + mean(F)) / 2 over all values given (per-frame or per-sequence scores).

    Raises:
      ValueError: ``j`` and ``f`` have different shapes or are empty.
    """
    j = np.asarray(j, np.float64)
    f = np.asarray(f, np.float64)
    if j.shape != f.shape:
        raise ValueError(f"j has shape {j.shape} but f has shape {f.shape}")
    if j.size == 0:
        raise ValueError("jf_mean of no values")
    return float((j.mean() + f.mean()) / 2.0)


class JFScore(NamedTuple):
    """Mean J, mean F and J&F = (J + F) / 2 of one sequence."""

    j: float
    f: float
    jf: float


def davis_jf(annotation, segmentation, void_pixels=None, bound_th: float = 0.008) -> JFScore:
    """Mean J, mean F over the frames of one sequence and their average (numpy reference).

    Args:
      annotation, segmentation, void_pixels, bound_th: as :func:`db_eval_boundary`.

    Returns:
      :class:`JFScore` ``(j, f, jf)``.
    """
    j = np.atleast_1d(db_eval_iou(annotation, segmentation, void_pixels))
    f = np.atleast_1d(db_eval_boundary(annotation, segmentation, void_pixels, bound_th))
    return JFScore(float(j.mean()), float(f.mean()), jf_mean(j, f))
