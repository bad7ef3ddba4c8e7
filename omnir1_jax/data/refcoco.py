"""refCOCOg reader (REFER layout: ``refs(umd).p`` + COCO ``instances.json`` + COCO train2014 images).

``refs(umd).p`` is a Python pickle of plain lists / dicts / strings (written by Python 2). It is read with an
unpickler that refuses every global, so a tampered file cannot run code. One record per sentence; the image is
a one-frame clip; the target mask comes from the annotation's COCO ``segmentation`` (polygons or RLE).
"""

from __future__ import annotations

import io
import os
import pickle

from omnir1_jax.data.errors import DataFormatError
from omnir1_jax.data.readers import check_relative
from omnir1_jax.data.schema import CocoMasks, ExpressionRecord, load_json


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing global {module}.{name} in a refs file")


def load_refs(path: str) -> list[dict]:
    """Load a REFER ``refs(*.p)`` pickle containing only builtin containers; errors name the file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataFormatError("refs file not found", path=path) from None
    try:
        refs = _PlainUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as e:
        raise DataFormatError(f"cannot read refs pickle: {e}", path=path) from None
    if not isinstance(refs, list):
        raise DataFormatError(f"refs must be a list of dicts, got {type(refs).__name__}", path=path)
    for i, ref in enumerate(refs):
        if not isinstance(ref, dict):
            raise DataFormatError(f"refs[{i}] must be a dict, got {type(ref).__name__}", path=path)
    return refs


def read_refcocog(
    refs_path: str, instances_path: str, image_root: str, split: str = "train", *, dataset: str = "refcocog"
) -> list[ExpressionRecord]:
    """One record per referring sentence of ``split`` (``train``, ``val``, ``test``).

    Args:
      refs_path: ``refs(umd).p``.
      instances_path: COCO ``instances.json`` of the same images (``images``, ``annotations``).
      image_root: directory holding the images (``train2014/``), joined with each image's ``file_name``.
    """
    refs = load_refs(refs_path)
    inst = load_json(instances_path)
    try:
        images = {int(im["id"]): im for im in inst["images"]}
        anns = {int(a["id"]): a for a in inst["annotations"]}
    except (KeyError, TypeError, ValueError) as e:
        raise DataFormatError(
            f"instances need 'images' and 'annotations' with ids: {e!r}", path=instances_path
        ) from None
    records = []
    for ref in refs:
        if ref.get("split") != split:
            continue
        rec = f"{dataset}/{split}/ref {ref.get('ref_id')}"
        try:
            ann = anns[int(ref["ann_id"])]
            im = images[int(ref["image_id"])]
        except (KeyError, TypeError, ValueError):
            raise DataFormatError(
                f"ann_id {ref.get('ann_id')!r} / image_id {ref.get('image_id')!r} not in instances",
                path=refs_path,
                record=rec,
            ) from None
        sentences = ref.get("sentences", [])
        if not isinstance(sentences, list) or not all(isinstance(x, dict) for x in sentences):
            raise DataFormatError("'sentences' must be a list of dicts", path=refs_path, record=rec)
        try:
            file_name = check_relative(im["file_name"], "file_name", path=instances_path, record=rec)
            height, width = int(im["height"]), int(im["width"])
            category, ann_id, segmentation = int(ann.get("category_id", -1)), int(ann["id"]), ann["segmentation"]
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            if isinstance(e, DataFormatError):
                raise
            raise DataFormatError(
                f"image / annotation entry is malformed: {e!r}", path=instances_path, record=rec
            ) from None
        path = os.path.join(image_root, file_name)
        for sent in sentences:
            records.append(
                ExpressionRecord(
                    dataset=dataset,
                    split=split,
                    video_id=file_name,
                    exp_id=str(sent.get("sent_id")),
                    expression=str(sent.get("sent", sent.get("raw", ""))),
                    frame_names=(os.path.splitext(file_name)[0],),
                    frame_paths=(path,),
                    height=height,
                    width=width,
                    subset=split,
                    obj_ids=(category,),
                    anno_ids=(ann_id,),
                    masks=CocoMasks((segmentation,), instances_path),
                )
            )
    return records
