"""TFDS builders writing ArrayRecord (no TensorFlow needed) from a local copy of each dataset, and the reader
that turns the ArrayRecord rows back into records for the Grain pipelines.

One builder, :class:`OmniR1Expressions`, with one config per dataset (``revos``, ``mevis``, ``refavs``,
``refcocog``, ``synthetic``, ``synthetic_avs``); it runs the matching reader of this package over
``source_root`` and stores, per expression: the ids and text, the video's encoded frames (JPEG bytes as read
from disk, so nothing is re-encoded), the union target mask per frame as a COCO RLE string (``""`` where empty),
and the audio as mono 16 kHz float32. Usage::

    b = OmniR1Expressions(config="synthetic", source_root="data/syn", data_dir="data/tfds")
    b.download_and_prepare()
    records = ArrayRecordExpressions(b.as_data_source("train"))   # lazy; feed to build_pipeline(records, ...)

Frames and masks are decoded only for the sampled positions. ``frame_paths`` of these records are
``arrayrecord://`` names, so pass ``keep_frames=True`` to the pipeline when later stages need the pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import tensorflow_datasets as tfds

from omnir1_jax.data import readers, rle
from omnir1_jax.data.audio import load_audio
from omnir1_jax.data.errors import DataFormatError
from omnir1_jax.data.refcoco import read_refcocog
from omnir1_jax.data.schema import ExpressionRecord, InlineRleMasks
from omnir1_jax.data.transforms import load_frame

_SPLITS = {
    "revos": ("train", "valid"),
    "mevis": ("train", "valid_u", "valid"),
    "refavs": readers.REFAVS_SPLITS,
    "refcocog": ("train", "val", "test"),
    "synthetic": ("train", "valid"),
    "synthetic_avs": readers.REFAVS_SPLITS,
}


def _reader(name: str, root: str) -> Callable[[str], list[ExpressionRecord]]:
    if name in ("revos", "synthetic"):
        return lambda split: readers.read_revos(root, split, dataset=name)
    if name == "mevis":
        return lambda split: readers.read_mevis(root, split)
    if name in ("refavs", "synthetic_avs"):
        return lambda split: readers.read_refavs(root, split, dataset=name)
    if name == "refcocog":
        return lambda split: read_refcocog(
            os.path.join(root, "refs(umd).p"),
            os.path.join(root, "instances.json"),
            os.path.join(root, "train2014"),
            split,
        )
    raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(_SPLITS)}")


def _frame_size(rec: ExpressionRecord) -> tuple[int, int]:
    if rec.height and rec.width:
        return rec.height, rec.width
    return load_frame(rec.frame_paths[0], rec.key).shape[:2]


class OmniR1Expressions(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """ArrayRecord copy of one dataset read from ``source_root`` with this package's reader."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=n) for n in _SPLITS]

    @tfds.core.utils.classproperty
    @classmethod
    def url_infos(cls):
        """Nothing is downloaded (and TFDS's checksum-file lookup would need ``importlib_resources``)."""
        return None

    def __init__(self, *, source_root: str | None = None, splits: tuple[str, ...] | None = None, **kwargs):
        kwargs.setdefault("file_format", "array_record")
        self._source_root = source_root
        self._splits = splits
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        text = tfds.features.Text
        return tfds.core.DatasetInfo(
            builder=self,
            description="Omni-R1 expressions (one example per referring expression) with frames, masks, audio.",
            features=tfds.features.FeaturesDict(
                {
                    "dataset": text(),
                    "split": text(),
                    "video_id": text(),
                    "exp_id": text(),
                    "expression": text(),
                    "subset": text(),
                    "type_id": tfds.features.Scalar(np.int32),
                    "is_null": tfds.features.Scalar(np.int32),
                    "obj_ids": tfds.features.Sequence(tfds.features.Scalar(np.int64)),
                    "anno_ids": tfds.features.Sequence(tfds.features.Scalar(np.int64)),
                    "frame_names": tfds.features.Sequence(text()),
                    "frames": tfds.features.Sequence(tfds.features.Tensor(shape=(), dtype=np.object_)),
                    "height": tfds.features.Scalar(np.int32),
                    "width": tfds.features.Scalar(np.int32),
                    "has_masks": tfds.features.Scalar(np.int32),
                    "masks_rle": tfds.features.Sequence(text()),
                    "audio": tfds.features.Tensor(shape=(None,), dtype=np.float32),
                    "has_audio": tfds.features.Scalar(np.int32),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        if self._source_root is None:
            raise ValueError("pass source_root= (the local copy of the dataset) to build it")
        name = self.builder_config.name
        splits = self._splits or _SPLITS[name]
        read = _reader(name, self._source_root)
        out = {}
        for split in splits:
            try:
                recs = read(split)
            except DataFormatError as e:
                if "no meta file" in e.reason:  # a split the local copy does not have
                    continue
                raise
            if recs:
                out[split] = self._generate_examples(recs)
        return out

    def _generate_examples(self, records):
        for rec in records:
            h, w = _frame_size(rec)
            frames = []
            for p in rec.frame_paths:
                try:
                    with open(p, "rb") as f:
                        frames.append(f.read())
                except FileNotFoundError:
                    raise DataFormatError("frame file missing", path=p, record=rec.key) from None
            masks = rec.load_masks(range(rec.num_frames), h, w)
            yield (
                rec.key,
                {
                    "dataset": rec.dataset,
                    "split": rec.split,
                    "video_id": rec.video_id,
                    "exp_id": rec.exp_id,
                    "expression": rec.expression,
                    "subset": rec.subset,
                    "type_id": rec.type_id,
                    "is_null": int(rec.is_null),
                    "obj_ids": list(rec.obj_ids),
                    "anno_ids": list(rec.anno_ids),
                    "frame_names": list(rec.frame_names),
                    "frames": frames,
                    "height": h,
                    "width": w,
                    "has_masks": int(rec.masks is not None),
                    "masks_rle": [rle.encode(m)["counts"] if m.any() else "" for m in masks],
                    "audio": load_audio(rec.audio_path, record=rec.key)
                    if rec.audio_path
                    else np.zeros((0,), np.float32),
                    "has_audio": int(bool(rec.audio_path)),
                },
            )


def _s(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


class ArrayRecordExpressions:
    """Random-access view of a TFDS ArrayRecord data source as :class:`ExpressionRecord` s (lazy, picklable)."""

    def __init__(self, data_source):
        self._src = data_source

    def __len__(self) -> int:
        return len(self._src)

    def __getitem__(self, i: int) -> ExpressionRecord:
        row = self._src[int(i)]
        names = tuple(_s(n) for n in row["frame_names"])
        key = f"{_s(row['dataset'])}/{_s(row['split'])}/{_s(row['video_id'])}"
        h, w = int(row["height"]), int(row["width"])
        rles = tuple(((({"size": [h, w], "counts": _s(c)}),) if _s(c) else (None,)) for c in row["masks_rle"])
        return ExpressionRecord(
            dataset=_s(row["dataset"]),
            split=_s(row["split"]),
            video_id=_s(row["video_id"]),
            exp_id=_s(row["exp_id"]),
            expression=_s(row["expression"]),
            frame_names=names,
            frame_paths=tuple(f"arrayrecord://{key}/{n}" for n in names),
            height=h,
            width=w,
            type_id=int(row["type_id"]),
            subset=_s(row["subset"]),
            obj_ids=tuple(int(v) for v in row["obj_ids"]),
            anno_ids=tuple(int(v) for v in row["anno_ids"]),
            masks=InlineRleMasks(rles, source=f"arrayrecord://{key}") if int(row["has_masks"]) else None,
            is_null=bool(row["is_null"]),
            frame_bytes=tuple(bytes(b) for b in row["frames"]),
            audio_waveform=np.asarray(row["audio"], np.float32) if int(row["has_audio"]) else None,
        )
