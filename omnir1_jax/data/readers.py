"""Readers for the published on-disk formats: ReVOS, MeViS, Ref-AVS (refCOCOg is in ``refcoco.py``).

Each reader returns a list of :class:`~omnir1_jax.data.schema.ExpressionRecord`, one per expression, after
checking the metadata's structure; frames, masks and audio are only touched when a pipeline loads a sample.
Every malformed input raises :class:`~omnir1_jax.data.errors.DataFormatError` naming the file and the record.
Names read from metadata that become paths (video ids, frame names, Ref-AVS ``fid``) must stay inside the
dataset directory: an absolute name, a ``..`` component or a NUL byte is rejected (:func:`check_relative`).

Formats (as published):

- ReVOS: ``JPEGImages/<video>/<frame>.jpg``; ``mask_dict.json`` = ``{str(anno_id): [RLE or null per position
  in "frames"]}``; ``meta_expressions_{train,valid}_.json`` = ``{"videos": {vid: {"vid_id", "height", "width",
  "frames", "expressions": {exp_id: {"exp", "obj_id", "anno_id", "type_id"}}}}}``.
- MeViS: ``{train,valid_u,valid}/JPEGImages/<vid>/<frame>.jpg``, ``<split>/meta_expressions.json`` (no
  height/width, no type_id), ``<split>/mask_dict.json`` (train and valid_u only).
- Ref-AVS: ``metadata.csv`` (``vid,uid,split,fid,exp``), ``media/<vid>/audio.wav``, ``media/<vid>/frames/{0..9}.jpg``,
  ``gt_mask/<vid>/fid_<fid>/0000{i}.png``.
"""

from __future__ import annotations

import csv
import os
from typing import Any

from omnir1_jax.data.errors import DataFormatError
from omnir1_jax.data.schema import ExpressionRecord, PngMasks, RleDictMasks, load_json

REVOS_SUBSETS = {0: "referring", 1: "reasoning", 2: "excluded"}
REFAVS_SPLITS = ("train", "val", "test_s", "test_u", "test_n")
REFAVS_COLUMNS = ("vid", "uid", "split", "fid", "exp")
REFAVS_FRAMES = 10


def check_relative(name: Any, what: str, *, path: str, record: str | None = None) -> str:
    """``name`` as a relative path that stays below the directory it is joined to, else DataFormatError."""
    text = str(name)
    parts = text.replace("\\", "/").split("/")
    if not text or "\0" in text or os.path.isabs(text) or text.startswith(("/", "\\")) or ".." in parts:
        raise DataFormatError(
            f"{what} {text!r} is not a relative name inside the dataset directory", path=path, record=record
        )
    return text


def _ids(value: Any, field: str, path: str, record: str) -> tuple[int, ...]:
    if isinstance(value, (int, str)):
        value = [value]
    try:
        return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise DataFormatError(
            f"field {field!r} must be a list of ints, got {value!r}", path=path, record=record
        ) from None


def _read_meta_expressions(
    meta_path: str,
    image_root: str,
    mask_dict_path: str | None,
    *,
    dataset: str,
    split: str,
    with_types: bool,
    drop_excluded: bool,
) -> list[ExpressionRecord]:
    meta = load_json(meta_path)
    videos = meta.get("videos") if isinstance(meta, dict) else None
    if not isinstance(videos, dict):
        raise DataFormatError("top level must be {'videos': {video_id: {...}}}", path=meta_path)
    records = []
    for vid in sorted(videos):
        v = videos[vid]
        where = f"{dataset}/{split}/{vid}"
        if (
            not isinstance(v, dict)
            or not isinstance(v.get("frames"), list)
            or not isinstance(v.get("expressions"), dict)
        ):
            raise DataFormatError(
                "video entry needs a 'frames' list and an 'expressions' dict", path=meta_path, record=where
            )
        check_relative(vid, "video id", path=meta_path, record=where)
        names = tuple(check_relative(f, "frame name", path=meta_path, record=where) for f in v["frames"])
        if not names:
            raise DataFormatError("video has no frames", path=meta_path, record=where)
        paths = tuple(os.path.join(image_root, vid, f"{n}.jpg") for n in names)
        for exp_id in sorted(v["expressions"], key=lambda e: (len(str(e)), str(e))):
            e = v["expressions"][exp_id]
            rec = f"{where}/exp {exp_id}"
            if not isinstance(e, dict) or "exp" not in e:
                raise DataFormatError("expression entry needs an 'exp' field", path=meta_path, record=rec)
            anno_ids = _ids(e.get("anno_id", []), "anno_id", meta_path, rec)
            obj_ids = _ids(e.get("obj_id", []), "obj_id", meta_path, rec)
            type_id = -1
            subset = split
            if with_types:
                if e.get("type_id") not in REVOS_SUBSETS:
                    raise DataFormatError(
                        f"type_id must be 0, 1 or 2, got {e.get('type_id')!r}", path=meta_path, record=rec
                    )
                type_id = int(e["type_id"])
                subset = REVOS_SUBSETS[type_id]
                if drop_excluded and type_id == 2:
                    continue
            masks = None
            if mask_dict_path is not None:
                if not anno_ids:
                    raise DataFormatError("expression has no anno_id", path=meta_path, record=rec)
                masks = RleDictMasks(mask_dict_path, anno_ids)
            records.append(
                ExpressionRecord(
                    dataset=dataset,
                    split=split,
                    video_id=vid,
                    exp_id=str(exp_id),
                    expression=str(e["exp"]),
                    frame_names=names,
                    frame_paths=paths,
                    height=int(v.get("height", 0) or 0),
                    width=int(v.get("width", 0) or 0),
                    type_id=type_id,
                    subset=subset,
                    obj_ids=obj_ids,
                    anno_ids=anno_ids,
                    masks=masks,
                )
            )
    return records


def read_revos(
    root: str, split: str = "train", *, drop_excluded: bool = True, dataset: str = "revos"
) -> list[ExpressionRecord]:
    """Read ReVOS ``meta_expressions_{split}_.json`` (split ``"train"`` or ``"valid"``) under ``root``.

    Args:
      root: the dataset directory (holds ``JPEGImages/``, ``mask_dict.json`` and the meta files).
      split: ``"train"`` or ``"valid"``.
      drop_excluded: skip ``type_id == 2`` expressions (excluded from evaluation by the dataset's protocol).
      dataset: the name records carry (the synthetic world, written in this layout, passes ``"synthetic"``).
    """
    root = os.path.abspath(root)
    meta = os.path.join(root, f"meta_expressions_{split}_.json")
    if not os.path.exists(meta):
        raise DataFormatError(f"no meta file for split {split!r}", path=meta)
    return _read_meta_expressions(
        meta,
        os.path.join(root, "JPEGImages"),
        os.path.join(root, "mask_dict.json"),
        dataset=dataset,
        split=split,
        with_types=True,
        drop_excluded=drop_excluded,
    )


def read_mevis(root: str, split: str = "train", *, dataset: str = "mevis") -> list[ExpressionRecord]:
    """Read MeViS ``<root>/<split>/meta_expressions.json``; ``split`` in ``train``, ``valid_u``, ``valid``.

    ``valid`` has no ``mask_dict.json`` (its GT is held by the evaluation server): records get ``masks=None``.
    """
    if split not in ("train", "valid_u", "valid"):
        raise ValueError(f"MeViS split must be train, valid_u or valid, got {split!r}")
    base = os.path.join(os.path.abspath(root), split)
    meta = os.path.join(base, "meta_expressions.json")
    if not os.path.exists(meta):
        raise DataFormatError(f"no meta file for split {split!r}", path=meta)
    mask_dict = os.path.join(base, "mask_dict.json")
    if split != "valid" and not os.path.exists(mask_dict):
        raise DataFormatError(f"split {split!r} must have a mask_dict.json", path=mask_dict)
    return _read_meta_expressions(
        meta,
        os.path.join(base, "JPEGImages"),
        mask_dict if split != "valid" else None,
        dataset=dataset,
        split=split,
        with_types=False,
        drop_excluded=False,
    )


def refavs_vid(uid: str) -> str:
    """The Ref-AVS video of a ``uid`` (``uid.rsplit('_', 2)[0]``)."""
    return uid.rsplit("_", 2)[0]


def read_refavs(root: str, split: str = "train", *, dataset: str = "refavs") -> list[ExpressionRecord]:
    """Read Ref-AVS ``metadata.csv`` rows of ``split`` (``train``, ``val``, ``test_s``, ``test_u``, ``test_n``).

    Non-null rows must have ``uid.rsplit('_', 2)[0] == vid``; null rows (``uid`` starting ``null_``) refer to no
    object, their target is empty on every frame (their ``gt_mask`` folder is read when present).
    """
    if split not in REFAVS_SPLITS:
        raise ValueError(f"Ref-AVS split must be one of {REFAVS_SPLITS}, got {split!r}")
    root = os.path.abspath(root)
    csv_path = os.path.join(root, "metadata.csv")
    try:
        f = open(csv_path, newline="")
    except FileNotFoundError:
        raise DataFormatError("metadata.csv not found", path=csv_path) from None
    with f:
        try:
            reader = csv.DictReader(f)
            missing = [c for c in REFAVS_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataFormatError(f"missing column(s) {missing}; header is {reader.fieldnames}", path=csv_path)
            rows = list(reader)
        except (UnicodeDecodeError, csv.Error) as e:  # binary junk, NUL bytes, broken quoting
            raise DataFormatError(f"not a UTF-8 CSV file: {type(e).__name__}: {e}", path=csv_path) from None
    records = []
    for line, row in enumerate(rows, start=2):
        if row["split"] != split:
            continue
        uid, vid = row["uid"], row["vid"]
        rec = f"{dataset}/{split}/{vid}/uid {uid} (line {line})"
        if any(row[c] in (None, "") for c in ("vid", "uid", "fid")):
            raise DataFormatError("empty vid, uid or fid", path=csv_path, record=rec)
        check_relative(vid, "vid", path=csv_path, record=rec)
        check_relative(f"fid_{row['fid']}", "fid", path=csv_path, record=rec)
        is_null = uid.startswith("null_")
        if not is_null and refavs_vid(uid) != vid:
            raise DataFormatError(f"uid {uid!r} does not belong to vid {vid!r}", path=csv_path, record=rec)
        media = os.path.join(root, "media", vid)
        mask_dir = os.path.join(root, "gt_mask", vid, f"fid_{row['fid']}")
        png = tuple(os.path.join(mask_dir, f"0000{i}.png") for i in range(REFAVS_FRAMES))
        if is_null and not os.path.isdir(mask_dir):
            png = None
        records.append(
            ExpressionRecord(
                dataset=dataset,
                split=split,
                video_id=vid,
                exp_id=uid,
                expression=row["exp"],
                frame_names=tuple(str(i) for i in range(REFAVS_FRAMES)),
                frame_paths=tuple(os.path.join(media, "frames", f"{i}.jpg") for i in range(REFAVS_FRAMES)),
                subset=split,
                masks=PngMasks(png),
                audio_path=os.path.join(media, "audio.wav"),
                is_null=is_null,
            )
        )
    return records
