"""Write the synthetic world to disk in the real dataset layouts (ReVOS for VOS, Ref-AVS for AVS).

Besides the published files, each tree holds ``synthetic_objects.json`` (not part of either format): per video
the objects' colour, shape, description, per-frame visibility / area / tight box, first / last visible frame,
speed, the sounds (AVS) and, per expression, its template and target objects — enough to script an "oracle"
System-1 answer for tests and the SFT warm-up.

The tree is built in a temporary sibling directory and renamed into place, so a failure leaves nothing behind.
Everything is a function of ``(seed, video index, size)``: the same arguments give byte-identical JSON and masks.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Sequence

import numpy as np

from omnir1_jax.data import rle
from omnir1_jax.data.masks import mask_to_box
from omnir1_jax.data.synthetic import ambiguous as ambiguous_lib
from omnir1_jax.data.synthetic import avs as avs_lib
from omnir1_jax.data.synthetic import world

ORACLE_FILE = "synthetic_objects.json"
VOS_SPLITS = ("train", "valid")
AVS_SPLITS = ("train", "val", "test_s", "test_u")


def _prepare_out(out: str, overwrite: bool) -> str:
    out = os.path.abspath(out)
    if os.path.exists(out) and os.listdir(out) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty (pass overwrite=True / --overwrite)")
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp-", dir=parent)


def _commit(tmp: str, out: str) -> None:
    out = os.path.abspath(out)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.rename(tmp, out)


def _save_jpeg(path: str, frame: np.ndarray) -> None:
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(frame).save(path, format="JPEG", quality=92)


def _object_facts(track: world.Track, ev: world.ObjectEvents, masks_k: np.ndarray) -> dict:
    boxes = []
    for t in range(masks_k.shape[0]):
        b = mask_to_box(masks_k[t])
        boxes.append(None if b.ndim == 2 else [float(v) for v in b])
    return {
        "obj_id": track.obj_id,
        "colour": track.colour,
        "shape": track.shape,
        "description": track.description,
        "visible": [int(v) for v in ev.visible],
        "area": [int(v) for v in ev.area],
        "box": boxes,
        "first_visible": ev.first_visible,
        "last_visible": ev.last_visible,
        "speed": round(ev.speed, 4),
    }


def world_params(
    n_videos, seed, height, width, min_frames, max_frames, colours, objects, templates, shapes=None, ambiguous=False
) -> dict:
    """The generation parameters of a VOS world, as stored in its ``synthetic_objects.json`` (``params``)."""
    return {
        "videos": int(n_videos),
        "seed": int(seed),
        "height": int(height),
        "width": int(width),
        "min_frames": int(min_frames),
        "max_frames": int(max_frames),
        "colours": None if colours is None else list(colours),
        "objects": [int(objects[0]), int(objects[1])],
        "templates": None if templates is None else list(templates),
        "shapes": None if shapes is None else list(shapes),
        "ambiguous": bool(ambiguous),
    }


def write_vos(
    out: str,
    n_videos: int,
    *,
    seed: int = 0,
    height: int = world.DEFAULT_HEIGHT,
    width: int = world.DEFAULT_WIDTH,
    min_frames: int = 24,
    max_frames: int = 48,
    overwrite: bool = False,
    colours: Sequence[str] | None = None,
    objects: tuple[int, int] = (3, 5),
    templates: Sequence[str] | None = None,
    shapes: Sequence[str] | None = None,
    ambiguous: bool = False,
) -> str:
    """Write ``n_videos`` VOS clips in the ReVOS layout under ``out`` and return ``out``.

    ``colours`` / ``shapes`` restrict the palette / shapes (default: all of :data:`world.PALETTE` /
    :data:`world.SHAPES`), ``objects`` is the inclusive
    range of objects per video, ``templates`` keeps only those expression templates (``colour_shape``,
    ``all_of_shape``, ``leaves_last``, ``appears_first``, ``fastest``, ``appears_after``; default: all). The
    CPU demo uses a 4-colour, 2-3 object, ``colour_shape``-only world.

    ``ambiguous=True`` (``--ambiguous``, docs/design.md §8.5) writes a world of ambiguous scenes instead
    (:mod:`.ambiguous`): two look-alikes (same colour, shape, size) that differ in when they appear or in which way
    they move, plus ``objects - 2`` distractors, and per video the two expressions that tell them apart ("the red
    circle that appears second", "the blue square moving left"), each targeting exactly one look-alike;
    ``templates`` then picks the kinds of scene (``appears_order``, ``moves_direction``; default both) and
    ``objects`` must start at 2. Same layout and splits (``valid`` = every fifth video: the ambiguous evaluation
    split); ``synthetic_objects.json`` adds per expression ``lookalikes`` (both look-alikes' object ids).

    Layout: ``JPEGImages/shapes/v{i:04d}/{frame:05d}.jpg`` (nested video names; frame names advance by a
    per-video stride of 1, 3 or 5, so they are not contiguous), ``mask_dict.json`` (one COCO RLE per frame
    position, ``null`` where the object is not visible), ``meta_expressions_{train,valid}_.json`` (every
    fifth video is ``valid``), and ``synthetic_objects.json``.
    """
    if n_videos < 1 or not (4 <= min_frames <= max_frames):
        raise ValueError(
            f"need n_videos >= 1 and 4 <= min_frames <= max_frames (objects enter and leave), got "
            f"n_videos={n_videos}, min_frames={min_frames}, max_frames={max_frames}"
        )
    if colours is not None and not set(colours) <= set(world.PALETTE):
        raise ValueError(f"colours {sorted(set(colours) - set(world.PALETTE))} not in {list(world.PALETTE)}")
    if shapes is not None and (not shapes or not set(shapes) <= set(world.SHAPES)):
        raise ValueError(f"shapes {list(shapes)} must be a non-empty subset of {world.SHAPES}")
    n_colours = len(world.PALETTE) if colours is None else len(colours)
    if not (1 <= objects[0] <= objects[1] <= n_colours):
        raise ValueError(f"objects={tuple(objects)} must satisfy 1 <= min <= max <= {n_colours} (colours available)")
    known = ambiguous_lib.AMBIGUOUS_TEMPLATES if ambiguous else world.VOS_TEMPLATES
    if templates is not None and (not templates or not set(templates) <= set(known)):
        raise ValueError(
            f"templates {sorted(set(templates) - set(known))} not in {known}"
            f"{' (the --ambiguous world)' if ambiguous else ''}"
        )
    if ambiguous and objects[0] < 2:
        raise ValueError(f"objects={tuple(objects)}: an ambiguous world needs at least 2 objects (the look-alikes)")
    tmp = _prepare_out(out, overwrite)
    try:
        metas = {s: {"videos": {}} for s in VOS_SPLITS}
        mask_dict: dict[str, list] = {}
        oracle = {
            "format": "omnir1-synthetic-vos-v1",
            "seed": seed,
            "height": height,
            "width": width,
            "params": world_params(
                n_videos, seed, height, width, min_frames, max_frames, colours, objects, templates, shapes, ambiguous
            ),
            "videos": {},
        }
        anno_next = 0
        for i in range(n_videos):
            rng = np.random.default_rng([seed, i])
            n_frames = int(rng.integers(min_frames, max_frames + 1))
            n_objects = int(rng.integers(objects[0], objects[1] + 1))
            lookalikes: list[int] = []
            if ambiguous:
                _, tracks, frames, masks, exprs = ambiguous_lib.simulate_ambiguous(
                    rng, n_frames, height, width, n_objects, colours=colours, shapes=shapes, kinds=templates
                )
                lookalikes = [tracks[-2].obj_id, tracks[-1].obj_id]
                events = [world.object_events(tr, masks[k]) for k, tr in enumerate(tracks)]
            else:
                tracks = world.simulate_tracks(rng, n_frames, height, width, n_objects, colours=colours, shapes=shapes)
                frames, masks = world.render(tracks, height, width, rng)
                events = [world.object_events(tr, masks[k]) for k, tr in enumerate(tracks)]
                exprs = world.vos_expressions(tracks, events, rng)
                if templates is not None:
                    exprs = [ex for ex in exprs if ex.template in templates]
            vid = f"shapes/v{i:04d}"
            stride, start = int(rng.choice([1, 3, 5])), int(rng.integers(0, 10))
            names = [f"{start + stride * t:05d}" for t in range(n_frames)]
            for t, name in enumerate(names):
                _save_jpeg(os.path.join(tmp, "JPEGImages", vid, f"{name}.jpg"), frames[t])
            anno_of = {}
            for k, tr in enumerate(tracks):
                anno_of[tr.obj_id] = anno_next
                mask_dict[str(anno_next)] = [
                    rle.encode(masks[k, t]) if masks[k, t].any() else None for t in range(n_frames)
                ]
                anno_next += 1
            split = "valid" if i % 5 == 4 else "train"
            metas[split]["videos"][vid] = {
                "vid_id": i,
                "height": height,
                "width": width,
                "frames": names,
                "expressions": {
                    str(e): {
                        "exp": ex.text,
                        "obj_id": list(ex.obj_ids),
                        "anno_id": [anno_of[o] for o in ex.obj_ids],
                        "type_id": ex.type_id,
                    }
                    for e, ex in enumerate(exprs)
                },
            }
            oracle["videos"][vid] = {
                "split": split,
                "frames": names,
                "objects": [
                    dict(_object_facts(tr, events[k], masks[k]), anno_id=anno_of[tr.obj_id])
                    for k, tr in enumerate(tracks)
                ],
                "expressions": {
                    str(e): {
                        "template": ex.template,
                        "obj_id": list(ex.obj_ids),
                        **({"lookalikes": lookalikes} if ambiguous else {}),
                    }
                    for e, ex in enumerate(exprs)
                },
            }
        for split, meta in metas.items():
            with open(os.path.join(tmp, f"meta_expressions_{split}_.json"), "w") as f:
                json.dump(meta, f)
        with open(os.path.join(tmp, "mask_dict.json"), "w") as f:
            json.dump(mask_dict, f)
        with open(os.path.join(tmp, ORACLE_FILE), "w") as f:
            json.dump(oracle, f)
        _commit(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def write_avs(
    out: str,
    n_videos: int,
    *,
    seed: int = 0,
    height: int = world.DEFAULT_HEIGHT,
    width: int = world.DEFAULT_WIDTH,
    overwrite: bool = False,
) -> str:
    """Write ``n_videos`` audio-visual clips in the Ref-AVS layout under ``out`` and return ``out``.

    Layout: ``metadata.csv`` (``vid,uid,split,fid,exp``; ``uid = f"{vid}_{fid}_{k}"``; null rows have
    ``uid = f"null_{vid}_{fid}_{k}"`` and split ``test_n``), ``media/<vid>/audio.wav`` (10 s, mono 16 kHz,
    PCM16), ``media/<vid>/frames/{0..9}.jpg``, ``gt_mask/<vid>/fid_<fid>/0000{i}.png`` (255 = target, all zero
    for null rows), and ``synthetic_objects.json``.
    """
    import soundfile as sf
    from PIL import Image

    if n_videos < 1:
        raise ValueError(f"n_videos must be >= 1, got {n_videos}")
    tmp = _prepare_out(out, overwrite)
    try:
        rows = []
        oracle = {"format": "omnir1-synthetic-avs-v1", "seed": seed, "height": height, "width": width, "videos": {}}
        for i in range(n_videos):
            rng = np.random.default_rng([seed, 1_000_003, i])
            tracks = world.simulate_tracks(rng, avs_lib.N_FRAMES, height, width, int(rng.integers(2, 5)), static=True)
            frames, masks = world.render(tracks, height, width, rng)
            events = [world.object_events(tr, masks[k]) for k, tr in enumerate(tracks)]
            sounds = avs_lib.simulate_sounds(tracks, rng)
            exprs, null_text = avs_lib.avs_expressions(sounds, rng)
            vid = f"syn_av{i:04d}"
            media = os.path.join(tmp, "media", vid)
            for t in range(avs_lib.N_FRAMES):
                _save_jpeg(os.path.join(media, "frames", f"{t}.jpg"), frames[t])
            sf.write(
                os.path.join(media, "audio.wav"), avs_lib.mix_audio(sounds, rng), avs_lib.SAMPLE_RATE, subtype="PCM_16"
            )
            split = AVS_SPLITS[i % len(AVS_SPLITS)]
            k_of = {tr.obj_id: k for k, tr in enumerate(tracks)}
            items = [(ex.text, ex.obj_ids, split) for ex in exprs]
            if null_text is not None and split in ("test_s", "test_u"):
                items.append((null_text, (), "test_n"))
            exp_facts = {}
            for fid, (text, obj_ids, row_split) in enumerate(items):
                target = np.zeros((avs_lib.N_FRAMES, height, width), dtype=bool)
                for o in obj_ids:
                    target |= masks[k_of[o]]
                mdir = os.path.join(tmp, "gt_mask", vid, f"fid_{fid}")
                os.makedirs(mdir)
                for t in range(avs_lib.N_FRAMES):
                    Image.fromarray(target[t].astype(np.uint8) * 255).save(os.path.join(mdir, f"0000{t}.png"))
                uid = f"{'null_' if not obj_ids else ''}{vid}_{fid}_{0}"
                rows.append({"vid": vid, "uid": uid, "split": row_split, "fid": fid, "exp": text})
                exp_facts[uid] = {"fid": fid, "obj_id": list(obj_ids)}
            oracle["videos"][vid] = {
                "split": split,
                "frames": [str(t) for t in range(avs_lib.N_FRAMES)],
                "objects": [_object_facts(tr, events[k], masks[k]) for k, tr in enumerate(tracks)],
                "sounds": [vars(ev) | {} for ev in sounds],
                "expressions": exp_facts,
            }
        with open(os.path.join(tmp, "metadata.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["vid", "uid", "split", "fid", "exp"])
            w.writeheader()
            w.writerows(rows)
        with open(os.path.join(tmp, ORACLE_FILE), "w") as f:
            json.dump(oracle, f)
        _commit(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
