"""COCO run-length encoding (the "compressed RLE" of ``pycocotools``) in plain numpy.

Masks are ``[H, W]`` bool arrays. A COCO RLE is ``{"size": [H, W], "counts": str}``: run lengths of the mask
flattened in column-major (Fortran) order, starting with a run of zeros (possibly of length 0), written as a
string in which each run length (after the first two, as a difference to the run two places back) is a
variable-length sequence of 5-bit groups, each stored as ``chr(48 + group | continuation_bit)``. Uncompressed
RLEs (``counts`` a list of ints) are accepted on decode as well.

Decoding checks the declared ``size`` before it allocates anything: it must equal the frame size when the caller
knows it (``expected_size``), and may never exceed :data:`MAX_PIXELS` (a lying header cannot make a worker
allocate gigabytes).

Parity with ``pycocotools.mask.encode / decode`` is checked in ``tests/data/test_rle.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from omnir1_jax.data.errors import DataFormatError

# Largest mask decode() accepts: 8192 x 8192, about twice an 8K UHD frame (7680 x 4320); the datasets here are
# at most 1080p. A [H, W] bool mask of this size is 64 MiB.
MAX_PIXELS = 8192 * 8192


def _runs_to_string(counts: Sequence[int]) -> str:
    out = []
    for i, count in enumerate(counts):
        x = int(count)
        if i > 2:
            x -= int(counts[i - 2])
        while True:
            group = x & 0x1F
            x >>= 5
            more = (x != -1) if (group & 0x10) else (x != 0)
            if more:
                group |= 0x20
            out.append(chr(group + 48))
            if not more:
                break
    return "".join(out)


def _string_to_runs(s: str) -> list[int]:
    counts: list[int] = []
    pos, n = 0, len(s)
    while pos < n:
        x, shift, more = 0, 0, True
        while more:
            if pos >= n:
                raise ValueError("counts string ends inside a run length")
            c = ord(s[pos]) - 48
            if c < 0 or c > 63:
                raise ValueError(f"invalid character {s[pos]!r} at position {pos}")
            x |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            pos += 1
            shift += 5
            if not more and (c & 0x10):
                x |= -1 << shift
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def encode(mask: np.ndarray) -> dict[str, Any]:
    """Encode an ``[H, W]`` mask (any dtype; non-zero = foreground) as a compressed COCO RLE dict.

    Returns ``{"size": [H, W], "counts": str}`` — the same value ``pycocotools.mask.encode`` gives (with
    ``counts`` decoded from bytes to str, as stored in ReVOS / MeViS ``mask_dict.json``).
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"encode expects an [H, W] mask, got shape {mask.shape}")
    h, w = mask.shape
    flat = (mask != 0).reshape(-1, order="F").astype(np.int8)
    if flat.size == 0:
        return {"size": [h, w], "counts": _runs_to_string([0])}
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0] == 1:
        runs = [0] + runs
    return {"size": [int(h), int(w)], "counts": _runs_to_string(runs)}


def decode(
    rle: Mapping[str, Any],
    *,
    path: str | None = None,
    record: str | None = None,
    expected_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Decode a COCO RLE (compressed str/bytes or uncompressed list ``counts``) to an ``[H, W]`` bool mask.

    Args:
      expected_size: ``(H, W)`` of the frame the mask belongs to, when known; checked before decoding.

    Raises:
      DataFormatError: naming ``path`` / ``record`` when the RLE is malformed (missing keys, bad characters,
        negative runs, or run lengths that do not sum to ``H * W``), its size differs from ``expected_size`` or
        exceeds :data:`MAX_PIXELS`.
    """
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as e:
        raise DataFormatError(f"bad RLE (need 'size' [H, W] and 'counts'): {e!r}", path=path, record=record) from None
    if expected_size is not None and (h, w) != tuple(expected_size):
        raise DataFormatError(
            f"RLE size {h}x{w} != frame size {expected_size[0]}x{expected_size[1]}", path=path, record=record
        )
    if h < 0 or w < 0 or h * w > MAX_PIXELS:
        raise DataFormatError(
            f"RLE size {h}x{w} is outside 0..{MAX_PIXELS} pixels (rle.MAX_PIXELS)", path=path, record=record
        )
    try:
        if isinstance(counts, bytes):
            counts = counts.decode("ascii")
        runs = _string_to_runs(counts) if isinstance(counts, str) else [int(c) for c in counts]
    except (ValueError, TypeError, UnicodeDecodeError) as e:
        raise DataFormatError(f"bad RLE counts: {e}", path=path, record=record) from None
    runs_arr = np.asarray(runs, dtype=np.int64)
    if h < 0 or w < 0 or (runs_arr < 0).any() or int(runs_arr.sum()) != h * w:
        raise DataFormatError(
            f"bad RLE: run lengths sum to {int(runs_arr.sum())} (negative runs: {bool((runs_arr < 0).any())}) "
            f"but size is {h}x{w}={h * w}",
            path=path,
            record=record,
        )
    values = (np.arange(runs_arr.size) % 2).astype(bool)
    flat = np.repeat(values, runs_arr)
    return flat.reshape(w, h).T.copy()


def area(rle: Mapping[str, Any]) -> int:
    """Foreground pixel count of a COCO RLE (sum of the odd runs) without decoding the mask."""
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    runs = _string_to_runs(counts) if isinstance(counts, str) else list(counts)
    return int(sum(runs[1::2]))


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygon segmentation (list of flat ``[x0, y0, x1, y1, ...]``) to an ``[H, W]`` bool mask.

    Uses PIL's polygon fill; pycocotools rasterises polygons with its own scan converter, so edge pixels can
    differ by about one pixel along the boundary (documented; the test bounds the disagreement).
    """
    from PIL import Image, ImageDraw

    img = Image.new("L", (int(width), int(height)), 0)
    draw = ImageDraw.Draw(img)
    for poly in polygons:
        pts = [(float(poly[i]), float(poly[i + 1])) for i in range(0, len(poly) - 1, 2)]
        if len(pts) >= 3:
            draw.polygon(pts, fill=1, outline=1)
    return np.asarray(img, dtype=bool)
