"""Fixture trees written at test time in the exact published formats (tiny frames, few records)."""

from __future__ import annotations

import csv
import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from omnir1_jax.data import rle

H, W = 20, 28


def _jpeg(path, rng, h=H, w=W):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, quality=90)


def _rect(y0, y1, x0, x1, h=H, w=W):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.fixture(scope="session")
def revos_tree(tmp_path_factory):
    """ReVOS: a nested video name, non-contiguous frame names, null RLEs, a two-object expression, type 2.

    Returns (root, truth) with truth[(vid, exp_id)] = expected union masks [L, H, W].
    """
    root = str(tmp_path_factory.mktemp("revos"))
    rng = np.random.default_rng(0)
    videos = {
        "UVO/all/-CiPki3XuVI": ["00000", "00005", "00010", "00020"],
        "plain_vid": ["00003", "00004", "00009"],
    }
    objs = {  # anno_id -> per-frame mask or None
        11: [_rect(2, 6, 3, 9), None, _rect(4, 8, 5, 12), _rect(0, 3, 0, 4)],
        12: [None, _rect(10, 15, 10, 20), _rect(6, 9, 10, 14), None],
        21: [_rect(1, 19, 1, 27), _rect(5, 6, 5, 6), None],
    }
    mask_dict = {str(a): [None if m is None else rle.encode(m) for m in ms] for a, ms in objs.items()}
    for vid, frames in videos.items():
        for f in frames:
            _jpeg(os.path.join(root, "JPEGImages", vid, f"{f}.jpg"), rng)
    meta = {
        "videos": {
            "UVO/all/-CiPki3XuVI": {
                "vid_id": 0,
                "height": H,
                "width": W,
                "frames": videos["UVO/all/-CiPki3XuVI"],
                "expressions": {
                    "0": {"exp": "the cat", "obj_id": [1], "anno_id": [11], "type_id": 0},
                    "1": {"exp": "both animals that run", "obj_id": [1, 2], "anno_id": [11, 12], "type_id": 1},
                    "2": {"exp": "an excluded one", "obj_id": [2], "anno_id": [12], "type_id": 2},
                },
            },
            "plain_vid": {
                "vid_id": 1,
                "height": H,
                "width": W,
                "frames": videos["plain_vid"],
                "expressions": {"0": {"exp": "the dog", "obj_id": [1], "anno_id": [21], "type_id": 0}},
            },
        }
    }
    with open(os.path.join(root, "meta_expressions_train_.json"), "w") as f:
        json.dump(meta, f)
    with open(os.path.join(root, "mask_dict.json"), "w") as f:
        json.dump(mask_dict, f)

    def union(ids, n):
        out = np.zeros((n, H, W), bool)
        for a in ids:
            for t, m in enumerate(objs[a]):
                if m is not None:
                    out[t] |= m
        return out

    truth = {
        ("UVO/all/-CiPki3XuVI", "0"): union([11], 4),
        ("UVO/all/-CiPki3XuVI", "1"): union([11, 12], 4),
        ("UVO/all/-CiPki3XuVI", "2"): union([12], 4),
        ("plain_vid", "0"): union([21], 3),
    }
    return root, truth


@pytest.fixture(scope="session")
def mevis_tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("mevis"))
    rng = np.random.default_rng(1)
    m = _rect(3, 9, 4, 10)
    for split in ("train", "valid_u", "valid"):
        base = os.path.join(root, split)
        for f in ("00000", "00001"):
            _jpeg(os.path.join(base, "JPEGImages", "vidA", f"{f}.jpg"), rng)
        meta = {
            "videos": {
                "vidA": {
                    "frames": ["00000", "00001"],
                    "expressions": {"0": {"exp": "the moving one", "obj_id": [0], "anno_id": [5]}},
                }
            }
        }
        with open(os.path.join(base, "meta_expressions.json"), "w") as f:
            json.dump(meta, f)
        if split != "valid":
            with open(os.path.join(base, "mask_dict.json"), "w") as f:
                json.dump({"5": [rle.encode(m), None]}, f)
    return root, m


@pytest.fixture(scope="session")
def refavs_tree(tmp_path_factory):
    """Ref-AVS: two videos (one vid with underscores), a null row without a mask folder, 10 frames + audio."""
    import soundfile as sf

    root = str(tmp_path_factory.mktemp("refavs"))
    rng = np.random.default_rng(2)
    rows = [
        {"vid": "a_b-c", "uid": "a_b-c_3_1", "split": "train", "fid": "3", "exp": "the guitar"},
        {"vid": "xyz", "uid": "xyz_0_2", "split": "test_s", "fid": "0", "exp": "the violin"},
        {"vid": "xyz", "uid": "null_xyz_7_1", "split": "test_n", "fid": "7", "exp": "the piano"},
    ]
    target = {}
    for vid in ("a_b-c", "xyz"):
        for i in range(10):
            _jpeg(os.path.join(root, "media", vid, "frames", f"{i}.jpg"), rng)
        sf.write(
            os.path.join(root, "media", vid, "audio.wav"), rng.normal(0, 0.1, 16000 * 10).astype(np.float32), 16000
        )
    for row in rows[:2]:
        d = os.path.join(root, "gt_mask", row["vid"], f"fid_{row['fid']}")
        os.makedirs(d)
        ms = np.zeros((10, H, W), bool)
        for i in range(10):
            ms[i] = _rect(i, i + 5, 2, 2 + i + 1)
            Image.fromarray(ms[i].astype(np.uint8) * 255).save(os.path.join(d, f"0000{i}.png"))
        target[row["uid"]] = ms
    with open(os.path.join(root, "metadata.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["vid", "uid", "split", "fid", "exp"])
        w.writeheader()
        w.writerows(rows)
    return root, target


@pytest.fixture(scope="session")
def refcocog_tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("refcocog"))
    rng = np.random.default_rng(3)
    _jpeg(os.path.join(root, "train2014", "COCO_train2014_000000000042.jpg"), rng)
    rle_mask = _rect(5, 10, 6, 16)
    inst = {
        "images": [{"id": 42, "file_name": "COCO_train2014_000000000042.jpg", "height": H, "width": W}],
        "annotations": [
            {
                "id": 7,
                "image_id": 42,
                "category_id": 1,
                "bbox": [2.0, 3.0, 10.0, 8.0],
                "iscrowd": 0,
                "segmentation": [[2.0, 3.0, 12.0, 3.0, 12.0, 11.0, 2.0, 11.0]],
            },
            {
                "id": 8,
                "image_id": 42,
                "category_id": 2,
                "bbox": [6.0, 5.0, 10.0, 5.0],
                "iscrowd": 1,
                "segmentation": rle.encode(rle_mask),
            },
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    with open(os.path.join(root, "instances.json"), "w") as f:
        json.dump(inst, f)
    refs = [
        {
            "ref_id": 0,
            "ann_id": 7,
            "image_id": 42,
            "split": "train",
            "category_id": 1,
            "sentences": [{"sent": "the cat on the left", "sent_id": 100}, {"sent": "a cat", "sent_id": 101}],
        },
        {
            "ref_id": 1,
            "ann_id": 8,
            "image_id": 42,
            "split": "val",
            "category_id": 2,
            "sentences": [{"sent": "the dog", "sent_id": 102}],
        },
    ]
    with open(os.path.join(root, "refs(umd).p"), "wb") as f:
        pickle.dump(refs, f, protocol=2)
    return root, rle_mask


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from omnir1_jax.testing.tokenizer import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def synthetic_vos(tmp_path_factory):
    from omnir1_jax.data.synthetic import writer

    out = str(tmp_path_factory.mktemp("syn") / "vos")
    return writer.write_vos(out, 5, seed=3, height=56, width=98, min_frames=24, max_frames=30)


@pytest.fixture(scope="session")
def synthetic_avs(tmp_path_factory):
    from omnir1_jax.data.synthetic import writer

    out = str(tmp_path_factory.mktemp("syn") / "avs")
    return writer.write_avs(out, 4, seed=5, height=56, width=98)
