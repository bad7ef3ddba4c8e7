"""Shared helpers of the DAVIS metrics: input checks, the boundary tolerance and the disk footprint.

Used by both the numpy reference (:mod:`omnir1_jax.evaluation.metrics.davis`) and the JAX version
(:mod:`omnir1_jax.evaluation.metrics.davis_jax`), so the two cannot drift apart on these definitions.
"""

from __future__ import annotations

import math

import numpy as np


class MaskInputError(ValueError):
    """A mask argument has the wrong shape, dtype or values. The message names the argument."""


def check_binary(name: str, x, ndims: tuple[int, ...] | None = None) -> np.ndarray:
    """Returns ``x`` as a numpy bool array after checking that it holds only 0/1 (or is bool).

    Args:
      name: the argument's name, used in the error message.
      x: array-like mask; bool, or a numeric dtype holding only 0 and 1.
      ndims: allowed numbers of dimensions (``None``: any number >= 2).

    Raises:
      MaskInputError: wrong number of dimensions, or a value other than 0/1 (the message shows one).
    """
    a = np.asarray(x)
    if ndims is not None and a.ndim not in ndims:
        raise MaskInputError(f"{name} must have {' or '.join(map(str, ndims))} dimensions, got shape {a.shape}")
    if ndims is None and a.ndim < 2:
        raise MaskInputError(f"{name} must be [..., H, W], got shape {a.shape}")
    if a.dtype == np.bool_:
        return a
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise MaskInputError(f"{name} must be bool or numeric 0/1, got dtype {a.dtype}")
    bad = (a != 0) & (a != 1)
    if bad.any():
        value = a[bad].flat[0]
        raise MaskInputError(f"{name} must hold only 0/1 (a binary mask), found value {value!r}")
    return a != 0


def check_same_shape(names: tuple[str, ...], *arrays) -> None:
    """Raises :class:`MaskInputError` unless all arrays (``None`` skipped) have the same shape."""
    shapes = [(n, np.shape(a)) for n, a in zip(names, arrays) if a is not None]
    first_name, first = shapes[0]
    for n, s in shapes[1:]:
        if s != first:
            raise MaskInputError(f"{n} has shape {s} but {first_name} has shape {first}")


def boundary_tolerance(bound_th: float, height: int, width: int) -> int:
    """DAVIS boundary tolerance in pixels.

    ``ceil(bound_th * ||(H, W)||_2)`` when ``bound_th < 1`` (a fraction of the image diagonal; the DAVIS default
    0.008 gives 8 px at 480x854), else ``bound_th`` itself (a pixel count).

    Raises:
      MaskInputError: ``bound_th`` negative, or ``>= 1`` and not a whole number (the official code would build
        an even-sized, off-centre footprint from it; we refuse rather than guess).
    """
    if not bound_th >= 0:
        raise MaskInputError(f"bound_th must be >= 0, got {bound_th!r}")
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise MaskInputError(f"bound_th >= 1 is a pixel radius and must be a whole number, got {bound_th!r}")
        return int(bound_th)
    # np.linalg.norm of the shape, as the official code, so the rounding of ceil() is identical.
    return int(np.ceil(bound_th * np.linalg.norm(np.asarray((height, width), np.float64))))


def disk_footprint(radius: int) -> np.ndarray:
    """[2r+1, 2r+1] bool disk: offsets (dy, dx) with ``dx**2 + dy**2 <= r**2`` (``skimage.morphology.disk``)."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius * radius


def disk_row_half_widths(radius: int) -> list[int]:
    """Half-width of each row of :func:`disk_footprint`, for dy = -r..r: ``floor(sqrt(r**2 - dy**2))``.

    The disk is the union over dy of the horizontal segments ``{(dy, dx): |dx| <= half_width[dy]}``, which is
    what lets the JAX dilation run as a few 1-D window maxima plus vertical shifts.
    """
    return [math.isqrt(radius * radius - dy * dy) for dy in range(-radius, radius + 1)]
