"""Records (one per expression) and the example schema that the pipelines emit.

Record: :class:`ExpressionRecord` — what a reader returns, light (paths and ids; masks decoded lazily through a
:class:`MaskRef`), picklable so Grain can ship it to worker processes.

Example (one element of a pipeline before batching; a batch stacks / pads these, see ``pipeline.collate``):

======================  ==========================================================================================
key                     value
======================  ==========================================================================================
``model_inputs``        dict with exactly the keyword names of ``Qwen2_5OmniThinkerForConditionalGeneration``:
                        ``input_ids`` [S] int32, ``attention_mask`` [S] int32, ``pixel_values_videos``
                        [grid_t*grid_h*grid_w, 3*2*14*14] float32, ``video_grid_thw`` [1, 3] int64,
                        ``video_second_per_grid`` [1] float32 (= 2 / fps_s1), and when audio is used
                        ``input_features`` [128, 3000] float32, ``feature_attention_mask`` [3000] int32;
                        ``use_audio_in_video`` bool. Images instead of a video: ``pixel_values`` / ``image_grid_thw``.
``dataset``             str — ``"revos"``, ``"mevis"``, ``"refavs"``, ``"refcocog"``, ``"synthetic"``, ...
``video_id``            str (may contain ``/``)
``exp_id``              str
``subset``              str — ReVOS ``referring`` / ``reasoning``; otherwise the split (``test_s``, ``valid_u``...)
``type_id``             int — ReVOS type (0, 1, 2), -1 where the dataset has none
``frame_indices``       [T] int32 — sampled positions into the original video's frame list
``frame_paths``         tuple of T str — the sampled frames' files (original resolution)
``gt_masks``            [T, H, W] bool — union of the target objects' masks on the sampled frames, original size
``gt_boxes``            [T, O, 4] float32 — one box per target object (O = the expression's objects, e.g. its
                        ``anno_id`` s; at least 1): the tight box ``(x1, y1, x2, y2)`` of that object's own mask on
                        frame t in original pixels (``x2`` = last column + 1); 0 where the object is absent
``gt_box_valid``        [T, O] bool — object o is visible on frame t (frame t's GT box set = the valid rows)
``num_objects``         int O — the expression's target objects (0 without GT); ``gt_boxes`` has max(O, 1) columns
``num_frames``          int T
``fps_s1``              float 2.0 — the clip is presented to System 1 at 2 fps (docs/design.md §2.2)
``orig_size``           [2] int32 ``(H, W)``
``prompt``              str — the user instruction text (System-1 prompt with the expression filled in)
``expression``          str — the raw referring expression
``audio_path``          str — ``""`` when the sample has no audio
======================  ==========================================================================================
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from omnir1_jax.data import rle
from omnir1_jax.data.errors import DataFormatError

# The keyword names of Qwen2_5OmniThinkerForConditionalGeneration.__call__ that a batch's model_inputs may hold.
MODEL_INPUT_NAMES = (
    "input_ids",
    "attention_mask",
    "pixel_values",
    "image_grid_thw",
    "pixel_values_videos",
    "video_grid_thw",
    "video_second_per_grid",
    "input_features",
    "feature_attention_mask",
    "use_audio_in_video",
)

FPS_S1 = 2.0


@functools.lru_cache(maxsize=8)
def load_json(path: str) -> Any:
    """Parse a JSON file once per process (mask dictionaries are large); errors name the file."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataFormatError("file not found", path=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFormatError(f"not valid JSON: {e}", path=path) from None


class MaskRef:
    """How to decode an expression's target masks, per object or as their union.

    Subclasses implement :meth:`_pieces` (or override both public methods)."""

    def _pieces(self, positions: Sequence[int], height: int, width: int, record: str):
        """``(num_objects, iterator of (object, position_index, mask [H, W]))`` for the non-empty masks."""
        raise NotImplementedError

    def decode_objects(self, positions: Sequence[int], height: int, width: int, record: str) -> np.ndarray:
        """One mask per target object ``[O, len(positions), H, W]`` bool (O may be 0: no target object)."""
        num_objects, pieces = self._pieces(positions, height, width, record)
        out = np.zeros((num_objects, len(positions), height, width), dtype=bool)
        for o, i, m in pieces:
            out[o, i] = m
        return out

    def decode(self, positions: Sequence[int], height: int, width: int, record: str) -> np.ndarray:
        """Union target mask ``[len(positions), H, W]`` bool on the given frame positions."""
        out = np.zeros((len(positions), height, width), dtype=bool)
        for _, i, m in self._pieces(positions, height, width, record)[1]:
            out[i] |= m
        return out


@dataclasses.dataclass(frozen=True)
class RleDictMasks(MaskRef):
    """ReVOS / MeViS: ``mask_dict.json`` maps ``str(anno_id)`` to one COCO RLE (or null) per frame position.
    One object per ``anno_id``, in ``anno_ids`` order."""

    mask_dict_path: str
    anno_ids: tuple[int, ...]

    def _pieces(self, positions, height, width, record):
        table = load_json(self.mask_dict_path)

        def gen():
            for o, a in enumerate(self.anno_ids):
                per_frame = table.get(str(a)) if isinstance(table, dict) else None
                if per_frame is None:
                    raise DataFormatError(f"anno_id {a} not in mask_dict", path=self.mask_dict_path, record=record)
                for i, p in enumerate(positions):
                    if p >= len(per_frame):
                        raise DataFormatError(
                            f"anno_id {a} has {len(per_frame)} masks but frame position {p} was asked for",
                            path=self.mask_dict_path,
                            record=record,
                        )
                    if per_frame[p] is None:
                        continue
                    m = rle.decode(
                        per_frame[p],
                        path=self.mask_dict_path,
                        record=f"{record} anno_id {a} frame {p}",
                        expected_size=(height, width),
                    )  # checked before decoding
                    if m.shape != (height, width):
                        raise DataFormatError(
                            f"anno_id {a} frame {p}: RLE size {m.shape} != frame size {(height, width)}",
                            path=self.mask_dict_path,
                            record=record,
                        )
                    yield o, i, m

        return len(self.anno_ids), gen()


@dataclasses.dataclass(frozen=True)
class InlineRleMasks(MaskRef):
    """Per frame position, a tuple of COCO RLEs (one per target object; None = absent) held in the record.

    Object o is entry o of every position's tuple (tuples shorter than the longest mean absent objects). The
    ArrayRecord builder stores the union mask as one object per position, so its records carry one GT box.
    """

    rles: tuple[tuple[Any, ...], ...]
    source: str = ""

    def _pieces(self, positions, height, width, record):
        num_objects = max((len(self.rles[p]) for p in positions), default=0)
        pieces = (
            (o, i, rle.decode(r, path=self.source or None, record=record, expected_size=(height, width)))
            for i, p in enumerate(positions)
            for o, r in enumerate(self.rles[p])
            if r is not None
        )
        return num_objects, pieces


@dataclasses.dataclass(frozen=True)
class PngMasks(MaskRef):
    """Ref-AVS: one PNG per frame (non-zero = target). ``paths=None`` means an empty target (null rows).

    The PNGs are binary, so the target is one object (zero objects for a null row)."""

    paths: tuple[str, ...] | None

    def decode_objects(self, positions, height, width, record):
        if self.paths is None:
            return np.zeros((0, len(positions), height, width), dtype=bool)
        return self.decode(positions, height, width, record)[None]

    def decode(self, positions, height, width, record):
        from PIL import Image

        out = np.zeros((len(positions), height, width), dtype=bool)
        if self.paths is None:
            return out
        for i, p in enumerate(positions):
            path = self.paths[p]
            try:
                with Image.open(path) as im:
                    m = np.asarray(im)
            except FileNotFoundError:
                raise DataFormatError("mask file missing", path=path, record=record) from None
            except (OSError, SyntaxError, ValueError) as e:
                raise DataFormatError(f"cannot decode mask PNG: {e}", path=path, record=record) from None
            if m.ndim == 3:
                m = m.max(axis=-1)
            if m.shape != (height, width):
                raise DataFormatError(f"mask size {m.shape} != frame size {(height, width)}", path=path, record=record)
            out[i] = m != 0
        return out


@dataclasses.dataclass(frozen=True)
class CocoMasks(MaskRef):
    """refCOCOg: COCO ``segmentation`` values (polygon lists or RLE) of the target annotations, one image."""

    segmentations: tuple[Any, ...]
    source: str = ""

    def _pieces(self, positions, height, width, record):
        """One object per annotation (entry of ``segmentations``), the same mask at every position."""

        def gen():
            for o, seg in enumerate(self.segmentations):
                if isinstance(seg, dict):  # compressed or uncompressed (iscrowd) RLE
                    m = rle.decode(seg, path=self.source or None, record=record, expected_size=(height, width))
                elif isinstance(seg, (list, tuple)):
                    m = rle.polygons_to_mask(seg, height, width)
                else:
                    raise DataFormatError(
                        f"unknown segmentation {type(seg).__name__}", path=self.source or None, record=record
                    )
                for i in range(len(positions)):
                    yield o, i, m.astype(bool)

        return len(self.segmentations), gen()


@dataclasses.dataclass(frozen=True)
class ExpressionRecord:
    """One referring expression of one video (or image), as read from a dataset on disk.

    Attributes:
      dataset: dataset name (``"revos"``, ``"mevis"``, ``"refavs"``, ``"refcocog"``, or a reader-given name).
      split: the split read (``"train"``, ``"valid"``, ``"test_s"``...).
      video_id: video name, possibly a nested path (``"UVO/all/-CiPki3XuVI"``).
      exp_id: expression id within the video (Ref-AVS: the ``uid``; refCOCOg: the ``sent_id``).
      expression: the referring text.
      frame_names: the video's frame names in order (ReVOS: 5-digit strings, possibly non-contiguous).
      frame_paths: absolute paths of those frames.
      height, width: frame size from the metadata, 0 when the format does not give it (read from the frames).
      type_id: ReVOS ``type_id`` (0 referring, 1 reasoning, 2 excluded), -1 where the dataset has none.
      subset: ``"referring"`` / ``"reasoning"`` / ``"excluded"`` (ReVOS) or the split name.
      obj_ids, anno_ids: the target objects as listed by the dataset.
      masks: how to decode target masks, or ``None`` when the split has no GT (MeViS ``valid``).
      audio_path: the clip's audio file, or ``None``.
      is_null: Ref-AVS null expression (refers to nothing; the target is empty everywhere).
      frame_bytes: encoded frames held in the record (ArrayRecord source); ``frame_paths`` are then
        ``arrayrecord://`` names, not files (run the pipeline with ``keep_frames=True`` to hand frames on).
      audio_waveform: mono 16 kHz waveform held in the record (ArrayRecord source), instead of ``audio_path``.
    """

    dataset: str
    split: str
    video_id: str
    exp_id: str
    expression: str
    frame_names: tuple[str, ...]
    frame_paths: tuple[str, ...]
    height: int = 0
    width: int = 0
    type_id: int = -1
    subset: str = ""
    obj_ids: tuple[int, ...] = ()
    anno_ids: tuple[int, ...] = ()
    masks: MaskRef | None = None
    audio_path: str | None = None
    is_null: bool = False
    frame_bytes: tuple[bytes, ...] | None = None
    audio_waveform: np.ndarray | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self):
        if len(self.frame_names) != len(self.frame_paths) or not self.frame_paths:
            raise DataFormatError(
                f"need >= 1 frame and as many names as paths, got {len(self.frame_names)} / {len(self.frame_paths)}",
                record=self.key,
            )

    @property
    def key(self) -> str:
        """``dataset/split/video_id/exp_id`` — how errors name the record."""
        return f"{self.dataset}/{self.split}/{self.video_id}/exp {self.exp_id}"

    @property
    def num_frames(self) -> int:
        return len(self.frame_paths)

    def load_masks(self, positions: Sequence[int], height: int, width: int) -> np.ndarray:
        """Target union masks ``[len(positions), H, W]`` bool; all-False when there is no GT or the row is null."""
        if self.masks is None:
            return np.zeros((len(positions), height, width), dtype=bool)
        return self.masks.decode(list(positions), height, width, self.key)

    def load_object_masks(self, positions: Sequence[int], height: int, width: int) -> np.ndarray:
        """One mask per target object ``[O, len(positions), H, W]`` bool (ReVOS / MeViS: per ``anno_id``;
        refCOCOg: per annotation; Ref-AVS: one object); O = 0 when there is no GT."""
        if self.masks is None:
            return np.zeros((0, len(positions), height, width), dtype=bool)
        return self.masks.decode_objects(list(positions), height, width, self.key)
