"""Grain transforms, each one small step on an example dict (see ``schema.py`` for the keys they produce).

Order in the pipelines: :class:`ToExample` -> :class:`ResampleFrames` -> :class:`LoadFrames` ->
:class:`GroundTruth` -> :class:`System1View` -> :class:`AudioFeatures` -> :class:`BuildPrompt` ->
:class:`Tokenize` -> :class:`Finalize`. Any failure inside a step surfaces as a
:class:`~omnir1_jax.data.errors.DataFormatError` naming the file and the record.
"""

from __future__ import annotations

import dataclasses
import functools
import io
from typing import Any

import grain
import numpy as np

from omnir1_jax.data import audio as audio_lib
from omnir1_jax.data import prompts, text, vision
from omnir1_jax.data.errors import DataFormatError
from omnir1_jax.data.masks import frame_box_sets, object_masks_to_boxes
from omnir1_jax.data.schema import FPS_S1, ExpressionRecord

Example = dict[str, Any]


def _guard(fn):
    """Re-raise anything but a DataFormatError as one naming the record, so worker failures stay readable."""

    @functools.wraps(fn)
    def wrapper(self, ex, *args):
        try:
            return fn(self, ex, *args)
        except DataFormatError:
            raise
        except Exception as e:
            rec = ex.get("record") if isinstance(ex, dict) else ex
            key = rec.key if isinstance(rec, ExpressionRecord) else None
            raise DataFormatError(f"{type(self).__name__} failed: {type(e).__name__}: {e}", record=key) from e

    return wrapper


def sample_frame_indices(length: int, n: int) -> np.ndarray:
    """``linspace(0, L - 1, n)`` truncated to ints; every frame when ``L < n``."""
    if length < 1:
        raise ValueError(f"a clip needs at least one frame, got length={length}")
    if length < n:
        return np.arange(length, dtype=np.int32)
    return np.linspace(0, length - 1, n).astype(np.int32)


def load_frame(path: str, record: str | None = None, data: bytes | None = None) -> np.ndarray:
    """Decode one image file (or its encoded ``data``, named ``path``) to ``[H, W, 3]`` uint8.

    A missing, truncated or corrupt image raises DataFormatError naming ``path`` and ``record``.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as im:
            im.load()
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise DataFormatError("frame file missing", path=path, record=record) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataFormatError(f"cannot decode image: {e}", path=path, record=record) from None


class ToExample(grain.transforms.Map):
    """Wrap a record as an example dict."""

    def map(self, record: ExpressionRecord) -> Example:
        return {"record": record}


@dataclasses.dataclass(frozen=True)
class ResampleFrames(grain.transforms.RandomMap):
    """Pick the clip's frames. Train: ``n ~ U{min_frames..max_frames}``; eval: ``n = max_frames``; indices
    ``linspace(0, L-1, n)`` (all frames when ``L < n``). Sets ``frame_indices [T]`` int32."""

    train: bool = True
    min_frames: int = 8
    max_frames: int = 24

    def __post_init__(self):
        if not 1 <= self.min_frames <= self.max_frames:
            raise ValueError(f"need 1 <= min_frames <= max_frames, got {self.min_frames}, {self.max_frames}")

    @_guard
    def random_map(self, ex: Example, rng: np.random.Generator) -> Example:
        n = int(rng.integers(self.min_frames, self.max_frames + 1)) if self.train else self.max_frames
        ex["frame_indices"] = sample_frame_indices(ex["record"].num_frames, n)
        return ex


class LoadFrames(grain.transforms.Map):
    """Decode the sampled frames: ``frames [T, H, W, 3]`` uint8 at original resolution, ``orig_size [2]``."""

    @_guard
    def map(self, ex: Example) -> Example:
        rec: ExpressionRecord = ex["record"]
        blobs = rec.frame_bytes
        frames = [
            load_frame(rec.frame_paths[i], rec.key, None if blobs is None else blobs[i]) for i in ex["frame_indices"]
        ]
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise DataFormatError(
                f"frames of one video differ in size: {sorted(shapes)}", path=rec.frame_paths[0], record=rec.key
            )
        h, w = frames[0].shape[:2]
        if rec.height and rec.width and (rec.height, rec.width) != (h, w):
            raise DataFormatError(
                f"frame is {h}x{w} but the metadata says {rec.height}x{rec.width}",
                path=rec.frame_paths[0],
                record=rec.key,
            )
        ex["frames"] = np.stack(frames)
        ex["orig_size"] = np.array([h, w], dtype=np.int32)
        return ex


class GroundTruth(grain.transforms.Map):
    """Target union masks and per-object tight boxes on the sampled frames at original resolution.

    ``gt_masks [T, H, W]`` is the union of the target objects (R_G, R_saliency, J&F); ``gt_boxes [T, O, 4]`` /
    ``gt_box_valid [T, O]`` hold one box per target object visible on the frame (R_A, RefAID: "B*_s can contain
    multiple instances", Omni-R1 section 3.3), each the tight box of that object's own mask.
    """

    @_guard
    def map(self, ex: Example) -> Example:
        h, w = (int(v) for v in ex["orig_size"])
        objects = ex["record"].load_object_masks(ex["frame_indices"].tolist(), h, w)
        ex["gt_masks"] = objects.any(axis=0) if len(objects) else np.zeros((len(ex["frame_indices"]), h, w), bool)
        ex["gt_boxes"], ex["gt_box_valid"] = object_masks_to_boxes(objects)
        ex["num_objects"] = len(objects)
        return ex


@dataclasses.dataclass(frozen=True)
class System1View(grain.transforms.Map):
    """Low-resolution view for System 1: ``pixel_values_videos``, ``video_grid_thw``, ``video_second_per_grid``.

    ``mode="image"`` feeds only the first sampled frame as an image (RefAID: first frame + full audio).
    """

    min_pixels: int = vision.S1_MIN_PIXELS
    max_pixels: int = vision.S1_MAX_PIXELS
    fps: float = FPS_S1
    mode: str = "video"

    def __post_init__(self):
        if self.mode not in ("video", "image"):
            raise ValueError(f"mode must be 'video' or 'image', got {self.mode!r}")
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError(f"need 0 < min_pixels <= max_pixels, got {self.min_pixels}, {self.max_pixels}")

    @_guard
    def map(self, ex: Example) -> Example:
        if self.mode == "image":
            v = vision.image_view(ex["frames"][0], min_pixels=self.min_pixels, max_pixels=self.max_pixels)
            ex["visual"] = {"pixel_values": v["pixel_values"], "image_grid_thw": v["image_grid_thw"]}
        else:
            v = vision.video_view(ex["frames"], min_pixels=self.min_pixels, max_pixels=self.max_pixels)
            ex["visual"] = {
                "pixel_values_videos": v["pixel_values_videos"],
                "video_grid_thw": v["video_grid_thw"],
                "video_second_per_grid": np.array([vision.TEMPORAL_PATCH_SIZE / self.fps], dtype=np.float32),
            }
        return ex


class AudioFeatures(grain.transforms.Map):
    """Whisper log-mel features of the record's audio (if any): ``input_features``, ``feature_attention_mask``."""

    @_guard
    def map(self, ex: Example) -> Example:
        rec: ExpressionRecord = ex["record"]
        if rec.audio_waveform is not None or rec.audio_path:
            if rec.audio_waveform is not None:
                wav = np.asarray(rec.audio_waveform, dtype=np.float32)
            else:
                wav = audio_lib.load_audio(rec.audio_path, record=rec.key)
            ex["audio"] = audio_lib.whisper_features(wav)
            ex["audio_seconds"] = wav.size / audio_lib.SAMPLE_RATE
        return ex


@dataclasses.dataclass(frozen=True)
class BuildPrompt(grain.transforms.RandomMap):
    """The paper's System-1 prompt: ``task="vos"`` (Figure 3; random example timestamps when
    ``random_timestamps``), ``"avs"`` (Figure 4) or ``"grounding"`` (the released code's SegZero-style prompt on
    one image, :func:`omnir1_jax.data.prompts.grounding_prompt`). Sets ``prompt``. ``style="short"`` uses the
    compact VOS
    prompt of :func:`omnir1_jax.data.prompts.vos_prompt_short` instead (tiny from-scratch policies), ``"minimal"``
    the one-sentence :func:`omnir1_jax.data.prompts.vos_prompt_minimal` (the CPU demo).
    ``num_keyframes`` = K makes a VOS prompt ask for exactly K moments (``grpo.num_keyframes``)."""

    task: str = "vos"
    fps: float = FPS_S1
    random_timestamps: bool = True
    style: str = "paper"
    num_keyframes: int | None = None

    def __post_init__(self):
        if self.task not in ("vos", "avs", "grounding"):
            raise ValueError(f"task must be 'vos', 'avs' or 'grounding', got {self.task!r}")
        if self.style not in ("paper", "short", "minimal"):
            raise ValueError(f"prompt style must be 'paper', 'short' or 'minimal', got {self.style!r}")

    @_guard
    def random_map(self, ex: Example, rng: np.random.Generator) -> Example:
        expr = ex["record"].expression
        if self.task == "avs":
            ex["prompt"] = prompts.avs_prompt(expr, ex.get("audio_seconds", 0.0))
        elif self.task == "grounding":
            ex["prompt"] = prompts.grounding_prompt(expr)
        else:
            n = len(ex["frame_indices"])
            if self.style in ("short", "minimal"):
                build = prompts.vos_prompt_short if self.style == "short" else prompts.vos_prompt_minimal
                ex["prompt"] = build(expr, n, self.fps, self.num_keyframes)
            else:
                ex["prompt"] = prompts.vos_prompt(
                    expr, n, self.fps, rng if self.random_timestamps else None, self.num_keyframes
                )
        return ex


@dataclasses.dataclass(frozen=True)
class Tokenize(grain.transforms.Map):
    """Chat template + placeholder expansion -> ``input_ids [S]`` int32 (same ids as Qwen2_5OmniProcessor)."""

    tokenizer: Any
    use_audio_in_video: bool = False

    @_guard
    def map(self, ex: Example) -> Example:
        vis, aud = ex["visual"], ex.get("audio")
        has_video = "video_grid_thw" in vis
        separate_audio = aud is not None and not (self.use_audio_in_video and has_video)
        msgs = prompts.user_message(ex["prompt"], video=has_video, image=not has_video, audio=separate_audio)
        chat = self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        n_audio = [audio_lib.num_audio_tokens(int(aud["feature_attention_mask"].sum()))] if aud is not None else None
        ex["input_ids"] = text.encode_with_placeholders(
            self.tokenizer,
            chat,
            video_grid_thw=vis.get("video_grid_thw"),
            video_second_per_grid=vis.get("video_second_per_grid"),
            image_grid_thw=vis.get("image_grid_thw"),
            audio_token_counts=n_audio,
            use_audio_in_video=self.use_audio_in_video and has_video and aud is not None,
        )
        ex["use_audio_in_video"] = bool(self.use_audio_in_video and has_video and aud is not None)
        return ex


@dataclasses.dataclass(frozen=True)
class Finalize(grain.transforms.Map):
    """Assemble ``model_inputs`` (unbatched) and the metadata fields of the schema; drop working state."""

    keep_frames: bool = False

    @_guard
    def map(self, ex: Example) -> Example:
        rec: ExpressionRecord = ex["record"]
        mi = dict(ex["visual"])
        mi["input_ids"] = ex["input_ids"]
        mi["attention_mask"] = np.ones_like(ex["input_ids"])
        mi["use_audio_in_video"] = ex["use_audio_in_video"]
        if "audio" in ex:
            mi["input_features"] = ex["audio"]["input_features"]
            mi["feature_attention_mask"] = ex["audio"]["feature_attention_mask"]
        idx = ex["frame_indices"]
        out = {
            "model_inputs": mi,
            "use_audio_in_video": ex["use_audio_in_video"],
            "dataset": rec.dataset,
            "video_id": rec.video_id,
            "exp_id": rec.exp_id,
            "subset": rec.subset,
            "type_id": rec.type_id,
            "expression": rec.expression,
            "frame_indices": idx,
            "frame_paths": tuple(rec.frame_paths[i] for i in idx),
            "gt_masks": ex["gt_masks"],
            "gt_boxes": ex["gt_boxes"],
            "gt_box_valid": ex["gt_box_valid"],
            "num_objects": int(ex["num_objects"]),
            "num_frames": len(idx),
            "fps_s1": FPS_S1,
            "orig_size": ex["orig_size"],
            "prompt": ex["prompt"],
            "audio_path": rec.audio_path or "",
        }
        if self.keep_frames:
            out["frames"] = ex["frames"]
        return out


def system2_view(frame_paths, positions, gt_boxes=None, gt_box_valid=None, *, max_pixels: int = vision.S2_MAX_PIXELS):
    """System-2 keyframe view, produced only for the frames asked for.

    Args:
      frame_paths: the example's ``frame_paths`` (or a ``[T, H, W, 3]`` uint8 array of kept frames).
      positions: which sampled frames (0..T-1) to produce.
      gt_boxes, gt_box_valid: the example's GT boxes (``[T, O, 4]`` / ``[T, O]``, or one box per frame
        ``[T, 4]`` / ``[T]``); when given, each frame's valid boxes are mapped into its resized image.

    Returns:
      list of dicts ``{"position", "image" [H'', W'', 3] uint8, "scale" (sy, sx), "gt_boxes" [n, 4]}``.
    """
    sets = None
    if gt_boxes is not None:
        gt_boxes = np.asarray(gt_boxes, np.float32)
        if gt_box_valid is None:
            gt_box_valid = np.ones(gt_boxes.shape[:-1], bool)
        sets = frame_box_sets(gt_boxes, gt_box_valid)
    out = []
    for p in positions:
        frame = frame_paths[p] if isinstance(frame_paths, np.ndarray) else load_frame(frame_paths[p])
        img, (sy, sx) = vision.keyframe_view(frame, max_pixels=max_pixels)
        item = {"position": int(p), "image": img, "scale": (sy, sx)}
        if sets is not None:
            item["gt_boxes"] = (sets[p] * np.array([sx, sy, sx, sy], dtype=np.float32)).astype(np.float32)
        out.append(item)
    return out
