"""Grain pipelines: records -> examples -> padded batches; deterministic, multi-worker, checkpointable.

``build_pipeline(records, tokenizer, config)`` returns a ``grain.IterDataset``; ``iter()`` it to get a
``DatasetIterator`` whose ``get_state()`` / ``set_state()`` save and restore the position (restoring a state
gives exactly the batches that followed it). Everything random (shuffle, frame counts, prompt timestamps)
derives from ``config.seed`` and the element index, so results do not depend on the number of workers.

Batch layout (:func:`collate`): ``model_inputs`` holds numpy arrays under the Thinker's keyword names —
``input_ids`` / ``attention_mask`` ``[B, S]`` left-padded; ``pixel_values_videos`` concatenated over the batch
``[sum P_b, 1176]`` with ``video_grid_thw [B, 3]`` and ``video_second_per_grid [B]``; ``input_features
[B, 128, 3000]`` and ``feature_attention_mask [B, 3000]`` when the examples have audio; ``use_audio_in_video``
a bool. Metadata: per-example lists (``video_id``, ``gt_masks`` ``[T_b, H_b, W_b]``, ``frame_paths``...) plus
padded ``frame_indices [B, T_max]``, per-object ``gt_boxes [B, T_max, O_max, 4]`` / ``gt_box_valid
[B, T_max, O_max]`` (padding rows invalid; ``omnir1_jax.rl.rollout.gt_box_lists`` turns them into per-frame box
sets), ``num_objects [B]`` (each expression's O) and ``frame_mask [B, T_max]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import grain
import numpy as np
from absl import flags

from omnir1_jax.data import transforms, vision
from omnir1_jax.data.errors import DataFormatError
from omnir1_jax.data.schema import FPS_S1, ExpressionRecord
from omnir1_jax.data.text import left_pad

_LIST_KEYS = (
    "dataset",
    "video_id",
    "exp_id",
    "subset",
    "type_id",
    "expression",
    "frame_paths",
    "gt_masks",
    "orig_size",
    "prompt",
    "audio_path",
    "num_frames",
)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Options of :func:`build_pipeline`.

    Attributes:
      task: ``"vos"`` (Figure-3 prompt), ``"avs"`` (Figure-4 prompt, audio features) or ``"grounding"`` (the
        SegZero-style grounding prompt; use it with ``visual_mode="image"``).
      train: training sampling (random frame count, shuffling, random prompt timestamps) vs evaluation.
      batch_size: examples per batch.
      seed: the single seed all randomness derives from.
      min_frames, max_frames: training frame count range (paper: 8..24).
      eval_max_frames: evaluation frame count cap (paper: 24).
      s1_min_pixels, s1_max_pixels: System-1 per-frame pixel budget (paper: 128*28*28; floor 16*28*28).
      fps_s1: the rate the clip is presented at (docs/design.md §2.2: 2).
      visual_mode: ``"video"`` or ``"image"`` (first sampled frame only; RefAID).
      use_audio_in_video: interleave the audio into the video's tokens instead of a separate audio part.
      num_epochs: passes over the records (None = forever).
      num_workers: Grain worker processes (0 = in the calling process).
      drop_remainder: drop a last partial batch.
      pad_to_multiple: pad the token length up to a multiple of this (fewer shapes to compile).
      keep_frames: also return the uint8 frames at original resolution.
      prompt: ``"paper"`` (Figure 3 / 4), ``"short"`` or ``"minimal"`` (compact VOS prompts for tiny policies).
      num_keyframes: K of ``grpo.num_keyframes``: the VOS prompt asks for exactly K moments (None: "about 4").
      share: ``(i, n)``: yield only block ``i`` of ``n`` equal blocks of each batch of ``batch_size`` examples
        (the examples of process ``i`` of ``n`` in a multi-process run: every process walks the same seeded order
        and prepares only its own ``batch_size // n`` examples of each batch; a last partial batch is dropped).
        ``(0, 1)``: the whole batch.
      source: where the records came from (e.g. ``"split 'train' of revos in data/revos"``), named by the error
        an empty record list raises; ``source_path``: the dataset directory or file it names.
    """

    task: str = "vos"
    train: bool = True
    batch_size: int = 2
    seed: int = 0
    min_frames: int = 8
    max_frames: int = 24
    eval_max_frames: int = 24
    s1_min_pixels: int = vision.S1_MIN_PIXELS
    s1_max_pixels: int = vision.S1_MAX_PIXELS
    fps_s1: float = FPS_S1
    visual_mode: str = "video"
    use_audio_in_video: bool = False
    num_epochs: int | None = 1
    num_workers: int = 0
    drop_remainder: bool = False
    pad_to_multiple: int = 1
    keep_frames: bool = False
    prompt: str = "paper"
    num_keyframes: int | None = None
    source: str = ""
    source_path: str | None = None
    share: tuple[int, int] = (0, 1)

    def __post_init__(self):
        i, n = self.share
        if not 0 <= i < n or self.batch_size % n:
            raise ValueError(f"share={self.share}: need 0 <= i < n and batch_size={self.batch_size} a multiple of n")
        if self.task not in ("vos", "avs", "grounding"):
            raise ValueError(f"task must be 'vos', 'avs' or 'grounding', got {self.task!r}")
        if self.batch_size < 1 or self.num_workers < 0 or self.pad_to_multiple < 1:
            raise ValueError(
                f"need batch_size >= 1, num_workers >= 0, pad_to_multiple >= 1; got "
                f"{self.batch_size}, {self.num_workers}, {self.pad_to_multiple}"
            )
        if not 1 <= self.min_frames <= self.max_frames or self.eval_max_frames < 1:
            raise ValueError(f"bad frame range {self.min_frames}..{self.max_frames} / eval {self.eval_max_frames}")
        if self.num_epochs is not None and self.num_epochs < 1:
            raise ValueError(f"num_epochs must be >= 1 or None, got {self.num_epochs}")


def collate(examples: Sequence[dict[str, Any]], *, pad_id: int = 0, pad_to_multiple: int = 1) -> dict[str, Any]:
    """Batch examples from :class:`~omnir1_jax.data.transforms.Finalize` (layout in the module docstring)."""
    mis = [ex["model_inputs"] for ex in examples]
    longest = max(len(m["input_ids"]) for m in mis)
    length = -(-longest // pad_to_multiple) * pad_to_multiple
    ids, mask = left_pad([m["input_ids"] for m in mis], pad_id, length)
    out_mi: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
    for k, grid in (("pixel_values_videos", "video_grid_thw"), ("pixel_values", "image_grid_thw")):
        have = [k in m for m in mis]
        if any(have) and not all(have):
            raise ValueError(f"cannot batch examples with and without {k}")
        if all(have):
            out_mi[k] = np.concatenate([m[k] for m in mis], axis=0)
            out_mi[grid] = np.concatenate([m[grid] for m in mis], axis=0)
    if "video_second_per_grid" in mis[0]:
        out_mi["video_second_per_grid"] = np.concatenate([m["video_second_per_grid"] for m in mis]).astype(np.float32)
    have_audio = ["input_features" in m for m in mis]
    if any(have_audio) and not all(have_audio):
        raise ValueError("cannot batch examples with and without audio")
    if all(have_audio):
        out_mi["input_features"] = np.stack([m["input_features"] for m in mis])
        out_mi["feature_attention_mask"] = np.stack([m["feature_attention_mask"] for m in mis])
    uaiv = {bool(ex["use_audio_in_video"]) for ex in examples}
    if len(uaiv) != 1:
        raise ValueError("cannot batch examples that differ in use_audio_in_video")
    out_mi["use_audio_in_video"] = uaiv.pop()
    batch: dict[str, Any] = {"model_inputs": out_mi}
    for k in _LIST_KEYS:
        batch[k] = [ex[k] for ex in examples]
    t_max = max(ex["num_frames"] for ex in examples)
    b = len(examples)
    batch["frame_mask"] = np.zeros((b, t_max), bool)
    batch["frame_indices"] = np.zeros((b, t_max), np.int32)
    o_max = max(max(np.shape(ex["gt_box_valid"])[1:] or (1,)) for ex in examples)
    batch["gt_boxes"] = np.zeros((b, t_max, o_max, 4), np.float32)
    batch["gt_box_valid"] = np.zeros((b, t_max, o_max), bool)
    for i, ex in enumerate(examples):
        n = ex["num_frames"]
        batch["frame_mask"][i, :n] = True
        batch["frame_indices"][i, :n] = ex["frame_indices"]
        boxes, valid = np.asarray(ex["gt_boxes"], np.float32), np.asarray(ex["gt_box_valid"], bool)
        if valid.ndim == 1:  # one box per frame (an example built before the per-object layout)
            boxes, valid = boxes[:, None], valid[:, None]
        batch["gt_boxes"][i, :n, : valid.shape[1]] = boxes
        batch["gt_box_valid"][i, :n, : valid.shape[1]] = valid
    batch["num_frames"] = np.asarray(batch["num_frames"], np.int32)
    # O per example (older examples without the key: their box columns)
    batch["num_objects"] = np.asarray(
        [
            int(ex["num_objects"]) if "num_objects" in ex else (np.shape(ex["gt_box_valid"]) + (1,))[1]
            for ex in examples
        ],
        np.int32,
    )
    batch["fps_s1"] = float(examples[0]["fps_s1"])
    if "frames" in examples[0]:
        batch["frames"] = [ex["frames"] for ex in examples]
    return batch


class _Collate:
    """Picklable batch function (ships to workers with the dataset)."""

    def __init__(self, pad_id: int, pad_to_multiple: int):
        self.pad_id, self.pad_to_multiple = pad_id, pad_to_multiple

    def __call__(self, examples):
        return collate(examples, pad_id=self.pad_id, pad_to_multiple=self.pad_to_multiple)


def example_dataset(records: Sequence[ExpressionRecord], tokenizer, config: PipelineConfig) -> grain.MapDataset:
    """The per-example ``MapDataset`` (shuffled and repeated for training), before batching."""
    if len(records) == 0:
        where = f" ({config.source})" if config.source else ""
        raise DataFormatError(f"no records to build a pipeline from{where}", path=config.source_path)
    source = records if hasattr(records, "__getitem__") else list(records)  # lazy sources stay lazy
    ds = grain.MapDataset.source(source).seed(config.seed)
    if config.train:
        ds = ds.shuffle()
    if config.num_epochs != 1:
        ds = ds.repeat(config.num_epochs)
    n_max = config.max_frames if config.train else config.eval_max_frames
    ds = (
        ds.map(transforms.ToExample())
        .random_map(
            transforms.ResampleFrames(
                train=config.train, min_frames=config.min_frames if config.train else n_max, max_frames=n_max
            )
        )
        .map(transforms.LoadFrames())
        .map(transforms.GroundTruth())
        .map(transforms.System1View(config.s1_min_pixels, config.s1_max_pixels, config.fps_s1, config.visual_mode))
        .map(transforms.AudioFeatures())
        .random_map(
            transforms.BuildPrompt(
                config.task,
                config.fps_s1,
                random_timestamps=config.train,
                style=config.prompt,
                num_keyframes=config.num_keyframes,
            )
        )
        .map(transforms.Tokenize(tokenizer, config.use_audio_in_video))
        .map(transforms.Finalize(config.keep_frames))
    )
    if config.share[1] > 1:  # lazy: only this share's examples are ever loaded and prepared
        ds = _Share(ds, config.batch_size, *config.share)
    return ds


class _Share(grain.MapDataset):
    """Block ``i`` of ``n`` of every batch of ``batch`` consecutive elements of the parent (a last partial batch
    dropped). The per-element randomness of the parent derives from the parent's index, so a share holds exactly
    the elements the whole batch would."""

    def __init__(self, parent: grain.MapDataset, batch: int, i: int, n: int):
        super().__init__(parent)
        self.batch, self.k, self.i = batch, batch // n, i

    def __len__(self) -> int:
        return len(self._parent) // self.batch * self.k

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        return self._parent[(index // self.k) * self.batch + self.i * self.k + index % self.k]

    def __str__(self) -> str:
        return f"_Share(block {self.i} of each batch of {self.batch}, {self.k} each)"


def _ensure_absl_flags_parsed() -> None:
    """Grain's worker start-up reads absl flags; outside ``absl.app.run`` they are unparsed and it raises.
    Mark them parsed with their defaults (what ``app.run`` would do with no command-line flags)."""
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def build_pipeline(records: Sequence[ExpressionRecord], tokenizer, config: PipelineConfig) -> grain.IterDataset:
    """Batched ``IterDataset`` over ``records``; ``iter()`` it for a checkpointable iterator.

    With ``config.num_workers > 0`` examples are produced in that many processes (``mp_prefetch``); the
    element order and values are the same as with 0 workers.
    """
    ds = example_dataset(records, tokenizer, config).to_iter_dataset()
    if config.num_workers > 0:
        _ensure_absl_flags_parsed()
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=config.num_workers, per_worker_buffer_size=2))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    size = config.batch_size // config.share[1]
    return ds.batch(size, drop_remainder=config.drop_remainder, batch_fn=_Collate(pad_id, config.pad_to_multiple))
