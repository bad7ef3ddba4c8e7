"""Batched, jit-able DAVIS J and F in JAX: same definitions as the numpy reference in
:mod:`omnir1_jax.evaluation.metrics.davis` (read its module docstring), agreeing with it to float32 rounding (< 1e-6).

Shape legend: ``*B`` any leading batch axes (e.g. rollouts x frames), H height, W width. Every frame is
independent; all shapes are static, so one compilation serves a whole evaluation run at a fixed resolution.

How F stays cheap at 480x854 (tolerance 8 px, a 17x17 disk): every column is packed into uint32 words (bit k
of word i = row 32 i + k), so a boundary map is 1/32 of the pixels, a vertical pixel shift is two word shifts and
an OR, and a horizontal shift is a slice along the contiguous W axis. The boundary map (``seg2bmap``) is three
shifted XORs; the disk dilation is exact (not a separable approximation): the union over columns dx = -r..r of
vertical segments of half-height ``floor(sqrt(r^2 - dx^2))``, each built by incremental bit shifts, OR-ed over
the 2r + 1 horizontal shifts. Boundary lengths, matches, intersections and unions are population counts. Besides
the boolean inputs nothing of pixel size is materialised. Measured 8x24x480x854 figures are in BENCHMARKS.md.
"""

from __future__ import annotations

import functools
import operator

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, ArrayLike, Bool, Float, Int, UInt32

from omnir1_jax.evaluation.metrics.masks import MaskInputError, boundary_tolerance, disk_row_half_widths

__all__ = [
    "boundary_counts_jax",
    "db_eval_boundary_jax",
    "db_eval_iou_jax",
    "db_eval_jf_jax",
    "pack_bits",
    "seg2bmap_jax",
    "unpack_bits",
]


_WORD = 32  # bits per packed word


def _as_mask(name: str, x: ArrayLike) -> Bool[Array, "*B H W"]:
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise MaskInputError(f"{name} must be [..., H, W], got shape {x.shape}")
    # Values cannot be checked under jit; anything nonzero is foreground, as the official astype(bool).
    return x if x.dtype == jnp.bool_ else x != 0


def _check_shapes(annotation, segmentation, void_pixels) -> None:
    if 0 in annotation.shape[-2:]:
        raise MaskInputError(f"annotation must have H, W >= 1, got shape {annotation.shape}")
    if annotation.shape != segmentation.shape:
        raise MaskInputError(f"segmentation has shape {segmentation.shape} but annotation has {annotation.shape}")
    if void_pixels is not None and void_pixels.shape != annotation.shape:
        raise MaskInputError(f"void_pixels has shape {void_pixels.shape} but annotation has {annotation.shape}")


def pack_bits(x: Bool[Array, "*B H W"]) -> UInt32[Array, "*B Hp W"]:
    """Packs each column into uint32 words: bit k of word i holds row ``32 i + k``; Hp = ceil(H / 32) and the
    padding bits past row H - 1 are 0. (Packing along H keeps the long, contiguous W axis for the array shifts.)"""
    height = x.shape[-2]
    num_words = -(-height // _WORD)
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, num_words * _WORD - height), (0, 0)])
    bits = x.reshape(*x.shape[:-2], num_words, _WORD, x.shape[-1]).astype(jnp.uint32)
    # the 32 shifted bits are disjoint, so their sum is their bitwise OR
    return jnp.sum(bits << jnp.arange(_WORD, dtype=jnp.uint32)[:, None], axis=-2, dtype=jnp.uint32)


def unpack_bits(words: UInt32[Array, "*B Hp W"], height: int) -> Bool[Array, "*B H W"]:
    """Inverse of :func:`pack_bits` (drops the padding rows)."""
    bits = (words[..., :, None, :] >> jnp.arange(_WORD, dtype=jnp.uint32)[:, None]) & jnp.uint32(1)
    return bits.reshape(*words.shape[:-2], -1, words.shape[-1])[..., :height, :].astype(jnp.bool_)


def _pack_pair(a, s, v):
    """Packs annotation and segmentation, with void pixels cleared from both."""
    pa, ps = pack_bits(a), pack_bits(s)
    if v is not None:
        keep = ~pack_bits(v)
        pa, ps = pa & keep, ps & keep
    return pa, ps


def _popcount(words: Array) -> Int[Array, "*B"]:
    return jnp.sum(lax.population_count(words).astype(jnp.int32), axis=(-2, -1))


def _iou_packed(pa, ps) -> Float[Array, "*B"]:
    # popcounts of packed words: 32x less data to reduce than bool pixels (a bool reduction is the slow part)
    inter, union = _popcount(pa & ps), _popcount(pa | ps)
    ratio = inter.astype(jnp.float32) / jnp.maximum(union, 1).astype(jnp.float32)
    return jnp.where(union == 0, jnp.float32(1.0), ratio)


def _shift_rows_packed(words: Array, k: int) -> Array:
    """Packed ``out[..., y, :] = in[..., y + k, :]`` (any integer k), zero past either end."""
    num_words = words.shape[-2]
    axis = words.ndim - 2
    q, r = divmod(abs(k), _WORD)
    if q >= num_words:
        return jnp.zeros_like(words)
    zeros = jnp.zeros_like(words[..., : max(q, 1), :])
    if k > 0:
        if q:
            words = jnp.concatenate([words[..., q:, :], zeros], axis=axis)
        if r:
            after = jnp.concatenate([words[..., 1:, :], zeros[..., :1, :]], axis=axis)
            words = (words >> r) | (after << (_WORD - r))
    elif k < 0:
        if q:
            words = jnp.concatenate([zeros, words[..., : num_words - q, :]], axis=axis)
        if r:
            before = jnp.concatenate([zeros[..., :1, :], words[..., :-1, :]], axis=axis)
            words = (words << r) | (before >> (_WORD - r))
    return words


def _edge_right(x: Array) -> Array:
    """``out[..., x] = in[..., x + 1]``, the last column repeated."""
    return jnp.concatenate([x[..., 1:], x[..., -1:]], axis=-1)


def _bmap_packed(seg: UInt32[Array, "*B Hp W"], height: int) -> UInt32[Array, "*B Hp W"]:
    """DAVIS ``seg2bmap`` on packed columns. Neighbours past the right / bottom edge repeat the edge pixel, which
    reproduces the official last-column / last-row / corner rules; padding bits stay 0."""
    last_row = np.zeros((seg.shape[-2], 1), np.uint32)
    last_row[(height - 1) // _WORD, 0] = np.uint32(1) << np.uint32((height - 1) % _WORD)
    # the packed shift reads the (zero) padding bit at row H; OR-ing the pixel itself back in repeats the edge.
    below = _shift_rows_packed(seg, 1) | (seg & jnp.asarray(last_row))
    return (seg ^ _edge_right(seg)) | (seg ^ below) | (seg ^ _edge_right(below))


def _dilate_disk_packed(b: UInt32[Array, "*B Hp W"], radius: int) -> UInt32[Array, "*B Hp W"]:
    """Exact binary dilation by the disk of ``radius`` (zero outside the image) on packed columns.

    The disk is symmetric, so it is also the union over columns dx = -r..r of vertical segments of half-height
    ``floor(sqrt(r^2 - dx^2))``: each needed half-height is built by incremental bit shifts, then the 2r + 1
    horizontally shifted copies are OR-ed.
    """
    if radius == 0:
        return b
    half_heights = disk_row_half_widths(radius)
    needed = set(half_heights)
    segments = {0: b}
    current = b
    for k in range(1, max(half_heights) + 1):
        current = current | _shift_rows_packed(b, k) | _shift_rows_packed(b, -k)
        if k in needed:
            segments[k] = current
    keys = sorted(segments)
    width = b.shape[-1]
    padded = [jnp.pad(segments[k], [(0, 0)] * (b.ndim - 1) + [(radius, radius)]) for k in keys]
    # Materialise the few segment maps once; fused into the 2r + 1 consumers they would be recomputed 2r + 1 times.
    barrier = dict(zip(keys, lax.optimization_barrier(tuple(padded))))
    columns = [
        lax.slice_in_dim(barrier[h], radius + dx, radius + dx + width, axis=b.ndim - 1)
        for dx, h in zip(range(-radius, radius + 1), half_heights)
    ]
    return functools.reduce(operator.or_, columns)


def _counts_packed(pa, ps, height: int, bound_pix: int):
    """(n_fg, n_gt, fg_match, gt_match) from packed annotation / segmentation (void already removed)."""
    gt_b = _bmap_packed(pa, height)
    fg_b = _bmap_packed(ps, height)
    n_fg, n_gt = _popcount(fg_b), _popcount(gt_b)
    fg_match = _popcount(fg_b & _dilate_disk_packed(gt_b, bound_pix))
    gt_match = _popcount(gt_b & _dilate_disk_packed(fg_b, bound_pix))
    return n_fg, n_gt, fg_match, gt_match


def _f_from_counts(n_fg, n_gt, fg_match, gt_match) -> Float[Array, "*B"]:
    """Official empty-boundary conventions, then F = 2PR/(P+R) (0 when P + R = 0), in float32."""
    f32 = jnp.float32
    precision = fg_match.astype(f32) / jnp.maximum(n_fg, 1).astype(f32)
    recall = gt_match.astype(f32) / jnp.maximum(n_gt, 1).astype(f32)
    fg_empty, gt_empty = n_fg == 0, n_gt == 0
    precision = jnp.where(fg_empty, f32(1.0), jnp.where(gt_empty, f32(0.0), precision))
    recall = jnp.where(fg_empty, jnp.where(gt_empty, f32(1.0), f32(0.0)), jnp.where(gt_empty, f32(1.0), recall))
    total = precision + recall
    return jnp.where(total == 0, f32(0.0), 2.0 * precision * recall / jnp.where(total == 0, f32(1.0), total))


@jax.jit
def db_eval_iou_jax(
    annotation: Bool[ArrayLike, "*B H W"],
    segmentation: Bool[ArrayLike, "*B H W"],
    void_pixels: Bool[ArrayLike, "*B H W"] | None = None,
) -> Float[Array, "*B"]:
    """J per frame: |A & S & ~V| / |(A | S) & ~V|, and 1 where that union is empty.

    Args:
      annotation: [*B, H, W] ground truth (bool, or numeric where nonzero is foreground).
      segmentation: [*B, H, W] prediction.
      void_pixels: optional [*B, H, W] pixels to ignore.

    Returns:
      [*B] float32.
    """
    a = _as_mask("annotation", annotation)
    s = _as_mask("segmentation", segmentation)
    v = None if void_pixels is None else _as_mask("void_pixels", void_pixels)
    _check_shapes(a, s, v)
    return _iou_packed(*_pack_pair(a, s, v))


@functools.partial(jax.jit, static_argnames=("bound_th",))
def db_eval_boundary_jax(
    annotation: Bool[ArrayLike, "*B H W"],
    segmentation: Bool[ArrayLike, "*B H W"],
    void_pixels: Bool[ArrayLike, "*B H W"] | None = None,
    bound_th: float = 0.008,
) -> Float[Array, "*B"]:
    """F per frame (DAVIS boundary measure), batched over any leading axes.

    Args:
      annotation: [*B, H, W] ground truth (bool, or numeric where nonzero is foreground).
      segmentation: [*B, H, W] prediction.
      void_pixels: optional [*B, H, W] pixels set to background in both masks before taking boundaries.
      bound_th: static; fraction of the image diagonal if < 1, else a whole number of pixels.

    Returns:
      [*B] float32.
    """
    a = _as_mask("annotation", annotation)
    s = _as_mask("segmentation", segmentation)
    v = None if void_pixels is None else _as_mask("void_pixels", void_pixels)
    _check_shapes(a, s, v)
    bound_pix = boundary_tolerance(bound_th, a.shape[-2], a.shape[-1])
    return _f_from_counts(*boundary_counts_jax(a, s, v, bound_pix))


@functools.partial(jax.jit, static_argnames=("bound_th",))
def db_eval_jf_jax(
    annotation: Bool[ArrayLike, "*B H W"],
    segmentation: Bool[ArrayLike, "*B H W"],
    void_pixels: Bool[ArrayLike, "*B H W"] | None = None,
    bound_th: float = 0.008,
) -> tuple[Float[Array, "*B"], Float[Array, "*B"]]:
    """``(J, F)`` per frame in one compiled call, packing the masks once (see :func:`db_eval_iou_jax` and
    :func:`db_eval_boundary_jax`; same arguments, same values)."""
    a = _as_mask("annotation", annotation)
    s = _as_mask("segmentation", segmentation)
    v = None if void_pixels is None else _as_mask("void_pixels", void_pixels)
    _check_shapes(a, s, v)
    bound_pix = boundary_tolerance(bound_th, a.shape[-2], a.shape[-1])
    pa, ps = _pack_pair(a, s, v)
    return _iou_packed(pa, ps), _f_from_counts(*_counts_packed(pa, ps, a.shape[-2], bound_pix))


def seg2bmap_jax(seg: Bool[ArrayLike, "*B H W"]) -> Bool[Array, "*B H W"]:
    """DAVIS ``seg2bmap`` at the input size (bool in, bool out); see
    :func:`omnir1_jax.evaluation.metrics.davis.seg2bmap`."""
    seg = _as_mask("seg", seg)
    return unpack_bits(_bmap_packed(pack_bits(seg), seg.shape[-2]), seg.shape[-2])


def boundary_counts_jax(
    annotation: Bool[Array, "*B H W"],
    segmentation: Bool[Array, "*B H W"],
    void_pixels: Bool[Array, "*B H W"] | None,
    bound_pix: int,
) -> tuple[Int[Array, "*B"], Int[Array, "*B"], Int[Array, "*B"], Int[Array, "*B"]]:
    """Boundary pixel counts ``(n_fg, n_gt, fg_match, gt_match)`` per frame (fg = segmentation, gt = annotation).

    ``fg_match`` counts prediction-boundary pixels within ``bound_pix`` (disk) of a GT boundary pixel;
    ``gt_match`` the converse. Traceable (call it under jit); ``bound_pix`` is a static int.
    """
    pa, ps = _pack_pair(annotation, segmentation, void_pixels)
    return _counts_packed(pa, ps, annotation.shape[-2], bound_pix)
