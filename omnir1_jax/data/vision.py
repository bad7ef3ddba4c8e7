"""Qwen2-VL / Qwen2.5-Omni visual preprocessing in numpy + PIL (no torch): resize, normalise, patchify.

Layout (identical to transformers' ``Qwen2VLImageProcessor`` / ``Qwen2VLVideoProcessor``): frames are resized
so both sides are multiples of ``factor = patch_size * merge_size = 28`` with the pixel count in
``[min_pixels, max_pixels]`` (``smart_resize``), rescaled by 1/255, normalised with the OpenAI CLIP mean/std,
padded in time to a multiple of ``temporal_patch_size = 2`` by repeating the last frame, and cut into patches
ordered ``(t, h/2, w/2, 2, 2)`` with each patch flattened as ``(C, temporal, 14, 14)``:

  ``pixel_values_videos`` ``[grid_t * grid_h * grid_w, 3 * 2 * 14 * 14]`` float32,
  ``video_grid_thw = [grid_t, grid_h, grid_w]`` with ``grid_h = H' / 14``.

Resampling is PIL bicubic on uint8 frames, as in ``Qwen2VLImageProcessorPil`` (the torchvision video
processor resamples with its own antialiased bicubic, which differs from PIL by a few uint8 levels; the
pixel layout itself is checked against the torch video processor in the tests on frames that need no resize).

Axis legend: T frames, H/W height/width, C channels (3), P patches.
"""

from __future__ import annotations

import functools
import math

import numpy as np

PATCH_SIZE = 14
MERGE_SIZE = 2
TEMPORAL_PATCH_SIZE = 2
FACTOR = PATCH_SIZE * MERGE_SIZE
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

S1_MIN_PIXELS = 16 * 28 * 28
S1_MAX_PIXELS = 128 * 28 * 28
S2_MIN_PIXELS = 4 * 28 * 28
S2_MAX_PIXELS = 900 * 28 * 28


def smart_resize(
    height: int, width: int, factor: int = FACTOR, min_pixels: int = S1_MIN_PIXELS, max_pixels: int = S1_MAX_PIXELS
) -> tuple[int, int]:
    """Target ``(H', W')``: multiples of ``factor``, aspect ratio kept as closely as possible, pixels within bounds.

    Rounds each side to the nearest multiple; if that exceeds ``max_pixels`` scales both down by
    ``sqrt(H*W / max_pixels)`` and floors to multiples (at least ``factor``); if below ``min_pixels`` scales up
    and ceils. Raises ``ValueError`` for aspect ratios above 200.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio must be at most 200, got {height}x{width}")
    h = round(height / factor) * factor
    w = round(width / factor) * factor
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return int(h), int(w)


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``[T, H, W, 3]`` uint8 frames to ``[T, height, width, 3]`` uint8 with PIL bicubic."""
    from PIL import Image

    frames = np.asarray(frames)
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.BICUBIC)) for f in frames])


@functools.lru_cache(maxsize=1)
def _normalize_lut() -> np.ndarray:
    levels = (np.arange(256, dtype=np.float64) * (1.0 / 255.0)).astype(np.float32)
    mean = np.asarray(CLIP_MEAN, dtype=np.float32)
    std = np.asarray(CLIP_STD, dtype=np.float32)
    return ((levels[:, None] - mean[None]) / std[None]).astype(np.float32)  # [256, 3]


def normalize(frames: np.ndarray) -> np.ndarray:
    """uint8 ``[..., 3]`` -> float32 ``(x / 255 - mean) / std`` (rescale in float64 then cast, like transformers).

    Computed once per (level, channel) in a 256x3 table, so the result is bitwise the elementwise formula.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"normalize expects uint8 frames, got {frames.dtype}")
    lut = _normalize_lut()
    out = np.empty(frames.shape, dtype=np.float32)
    for c in range(frames.shape[-1]):
        np.take(lut[:, c], frames[..., c], out=out[..., c])
    return out


def patchify(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised ``[T, H', W', 3]`` float frames -> (patches ``[P, 3*2*14*14]``, grid_thw ``[3]`` int64).

    ``T`` is padded to a multiple of 2 by repeating the last frame; ``H'``, ``W'`` must be multiples of 28.
    """
    t, h, w, c = frames.shape
    if h % FACTOR or w % FACTOR:
        raise ValueError(f"frame size {h}x{w} is not a multiple of {FACTOR}")
    if pad := -t % TEMPORAL_PATCH_SIZE:
        frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)], axis=0)
        t += pad
    gt, gh, gw = t // TEMPORAL_PATCH_SIZE, h // PATCH_SIZE, w // PATCH_SIZE
    x = frames.transpose(0, 3, 1, 2)  # [T, C, H, W]
    x = x.reshape(
        gt, TEMPORAL_PATCH_SIZE, c, gh // MERGE_SIZE, MERGE_SIZE, PATCH_SIZE, gw // MERGE_SIZE, MERGE_SIZE, PATCH_SIZE
    )
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)  # gt, gh/2, gw/2, 2, 2, C, tp, ph, pw
    patches = np.ascontiguousarray(x).reshape(gt * gh * gw, c * TEMPORAL_PATCH_SIZE * PATCH_SIZE * PATCH_SIZE)
    return patches.astype(np.float32), np.array([gt, gh, gw], dtype=np.int64)


def video_view(
    frames: np.ndarray, *, min_pixels: int = S1_MIN_PIXELS, max_pixels: int = S1_MAX_PIXELS
) -> dict[str, np.ndarray]:
    """The System-1 view of a clip: ``[T, H, W, 3]`` uint8 -> ``pixel_values_videos`` and ``video_grid_thw [1, 3]``.

    Also returns ``resized_size [2]`` (``H'``, ``W'``). The frame count is made even by repeating the last frame.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected [T, H, W, 3] uint8 frames, got {frames.shape} {frames.dtype}")
    h, w = smart_resize(frames.shape[1], frames.shape[2], FACTOR, min_pixels, max_pixels)
    patches, grid = patchify(normalize(resize_frames(frames, h, w)))
    return {"pixel_values_videos": patches, "video_grid_thw": grid[None], "resized_size": np.array([h, w], np.int32)}


def image_view(
    image: np.ndarray, *, min_pixels: int = S1_MIN_PIXELS, max_pixels: int = S1_MAX_PIXELS
) -> dict[str, np.ndarray]:
    """One ``[H, W, 3]`` uint8 image -> ``pixel_values [P, 1176]`` and ``image_grid_thw [1, 3]`` (grid_t = 1)."""
    out = video_view(np.asarray(image)[None], min_pixels=min_pixels, max_pixels=max_pixels)
    return {
        "pixel_values": out["pixel_values_videos"],
        "image_grid_thw": out["video_grid_thw"],
        "resized_size": out["resized_size"],
    }


def keyframe_view(
    frame: np.ndarray, *, min_pixels: int = S2_MIN_PIXELS, max_pixels: int = S2_MAX_PIXELS
) -> tuple[np.ndarray, tuple[float, float]]:
    """The System-2 view of one keyframe: resized uint8 ``[H'', W'', 3]`` (<= 900*28*28 pixels, sides multiples of 28).

    Returns the image and the scale ``(sy, sx)`` from original to resized pixels, to map GT boxes into it.
    """
    frame = np.asarray(frame)
    h, w = smart_resize(frame.shape[0], frame.shape[1], FACTOR, min_pixels, max_pixels)
    img = resize_frames(frame[None], h, w)[0]
    return img, (h / frame.shape[0], w / frame.shape[1])
