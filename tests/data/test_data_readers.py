"""Readers on fixture trees in the exact published formats, and their typed errors on bad input."""

import csv
import json
import os
import shutil

import numpy as np
import pytest

from omnir1_jax.data import readers
from omnir1_jax.data.errors import DataFormatError
from omnir1_jax.data.refcoco import read_refcocog
from omnir1_jax.data.transforms import load_frame

H, W = 20, 28  # the fixture trees' frame size (conftest.py)


def _by_key(records):
    return {(r.video_id, r.exp_id): r for r in records}


def test_revos_records_masks_and_types(revos_tree):
    root, truth = revos_tree
    recs = _by_key(readers.read_revos(root, "train"))
    assert set(recs) == {
        ("UVO/all/-CiPki3XuVI", "0"),
        ("UVO/all/-CiPki3XuVI", "1"),
        ("plain_vid", "0"),
    }  # type 2 dropped
    r = recs[("UVO/all/-CiPki3XuVI", "1")]
    assert r.subset == "reasoning" and r.type_id == 1 and r.anno_ids == (11, 12) and r.obj_ids == (1, 2)
    assert r.frame_names == ("00000", "00005", "00010", "00020")
    assert r.frame_paths[3] == os.path.join(root, "JPEGImages", "UVO", "all", "-CiPki3XuVI", "00020.jpg")
    assert os.path.exists(r.frame_paths[3])
    assert recs[("plain_vid", "0")].subset == "referring"
    for key, rec in recs.items():
        n = rec.num_frames
        np.testing.assert_array_equal(rec.load_masks(range(n), H, W), truth[key])
    # a subset of positions, out of order, decodes the matching frames (null RLE entries -> empty)
    np.testing.assert_array_equal(r.load_masks([3, 1], H, W), truth[("UVO/all/-CiPki3XuVI", "1")][[3, 1]])


def test_revos_keeps_type2_when_asked(revos_tree):
    root, truth = revos_tree
    recs = _by_key(readers.read_revos(root, "train", drop_excluded=False))
    r = recs[("UVO/all/-CiPki3XuVI", "2")]
    assert r.subset == "excluded" and r.type_id == 2
    np.testing.assert_array_equal(r.load_masks(range(4), H, W), truth[("UVO/all/-CiPki3XuVI", "2")])


def test_mevis_splits(mevis_tree):
    root, m = mevis_tree
    for split in ("train", "valid_u"):
        (r,) = readers.read_mevis(root, split)
        assert r.height == 0 and r.type_id == -1 and r.subset == split
        got = r.load_masks([0, 1], H, W)
        np.testing.assert_array_equal(got[0], m)
        assert not got[1].any()
    (r,) = readers.read_mevis(root, "valid")
    assert r.masks is None and not r.load_masks([0], H, W).any()


def test_refavs_rows_null_and_audio(refavs_tree):
    root, target = refavs_tree
    (r,) = readers.read_refavs(root, "train")
    assert r.video_id == "a_b-c" and readers.refavs_vid(r.exp_id) == "a_b-c"
    assert r.frame_names == tuple(str(i) for i in range(10)) and r.audio_path.endswith("media/a_b-c/audio.wav")
    np.testing.assert_array_equal(r.load_masks(range(10), H, W), target["a_b-c_3_1"])
    (n,) = readers.read_refavs(root, "test_n")
    assert n.is_null and n.video_id == "xyz" and not n.load_masks(range(10), H, W).any()
    (s,) = readers.read_refavs(root, "test_s")
    np.testing.assert_array_equal(s.load_masks([9, 0], H, W), target["xyz_0_2"][[9, 0]])


def test_refcocog_sentences_and_masks(refcocog_tree):
    root, rle_mask = refcocog_tree
    recs = read_refcocog(
        os.path.join(root, "refs(umd).p"),
        os.path.join(root, "instances.json"),
        os.path.join(root, "train2014"),
        "train",
    )
    assert [r.expression for r in recs] == ["the cat on the left", "a cat"]
    m = recs[0].load_masks([0], H, W)[0]
    rows, cols = np.nonzero(m)  # polygon [2..12] x [3..11]
    assert rows.min() == 3 and rows.max() in (10, 11) and cols.min() == 2 and cols.max() in (11, 12)
    (v,) = read_refcocog(
        os.path.join(root, "refs(umd).p"), os.path.join(root, "instances.json"), os.path.join(root, "train2014"), "val"
    )
    np.testing.assert_array_equal(v.load_masks([0], H, W)[0], rle_mask)
    assert load_frame(v.frame_paths[0]).shape == (H, W, 3)


def test_refs_pickle_with_globals_is_refused(tmp_path):
    import pickle

    p = tmp_path / "refs(umd).p"
    p.write_bytes(pickle.dumps([{"x": os.getcwd}]))  # a global reference: must not be resolved
    with pytest.raises(DataFormatError, match="refs"):
        read_refcocog(str(p), str(p), str(tmp_path))


# ---------------------------------------------------------------- errors name the file and the record


def test_truncated_jpeg_names_file_and_record(revos_tree, tmp_path):
    root, _ = revos_tree
    bad = tmp_path / "00000.jpg"
    data = open(os.path.join(root, "JPEGImages", "plain_vid", "00003.jpg"), "rb").read()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError) as e:
        load_frame(str(bad), record="revos/train/plain_vid/exp 0")
    assert str(bad) in str(e.value) and "revos/train/plain_vid/exp 0" in str(e.value)


def test_bad_rle_in_mask_dict_names_file_and_record(revos_tree, tmp_path):
    root, _ = revos_tree
    copy = tmp_path / "revos"
    shutil.copytree(root, copy)
    md = json.load(open(copy / "mask_dict.json"))
    md["11"][0] = {"size": [H, W], "counts": "0000"}  # runs do not cover H*W
    json.dump(md, open(copy / "mask_dict.json", "w"))
    (r,) = [x for x in readers.read_revos(str(copy)) if x.exp_id == "0" and x.video_id.startswith("UVO")]
    with pytest.raises(DataFormatError) as e:
        r.load_masks([0], H, W)
    msg = str(e.value)
    assert str(copy / "mask_dict.json") in msg and "UVO/all/-CiPki3XuVI" in msg and "anno_id 11" in msg


def test_missing_anno_id_names_file_and_record(revos_tree, tmp_path):
    root, _ = revos_tree
    copy = tmp_path / "revos"
    shutil.copytree(root, copy)
    md = json.load(open(copy / "mask_dict.json"))
    del md["21"]
    json.dump(md, open(copy / "mask_dict.json", "w"))
    (r,) = [x for x in readers.read_revos(str(copy)) if x.video_id == "plain_vid"]
    with pytest.raises(DataFormatError, match="anno_id 21") as e:
        r.load_masks([0], H, W)
    assert "plain_vid" in str(e.value)


def test_missing_mask_png_names_file_and_record(refavs_tree, tmp_path):
    root, _ = refavs_tree
    copy = tmp_path / "refavs"
    shutil.copytree(root, copy)
    gone = copy / "gt_mask" / "a_b-c" / "fid_3" / "00004.png"
    os.remove(gone)
    (r,) = readers.read_refavs(str(copy), "train")
    r.load_masks([3], H, W)  # other frames still load
    with pytest.raises(DataFormatError) as e:
        r.load_masks([4], H, W)
    assert str(gone) in str(e.value) and "a_b-c_3_1" in str(e.value)


def test_csv_missing_column_names_file_and_column(refavs_tree, tmp_path):
    root, _ = refavs_tree
    copy = tmp_path / "refavs"
    shutil.copytree(root, copy)
    rows = list(csv.DictReader(open(copy / "metadata.csv")))
    with open(copy / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["vid", "uid", "split", "exp"])
        w.writeheader()
        w.writerows({k: v for k, v in row.items() if k != "fid"} for row in rows)
    with pytest.raises(DataFormatError) as e:
        readers.read_refavs(str(copy), "train")
    assert str(copy / "metadata.csv") in str(e.value) and "fid" in str(e.value)


def test_meta_missing_fields_names_record(tmp_path):
    (tmp_path / "meta_expressions_train_.json").write_text(
        json.dumps(
            {"videos": {"v1": {"frames": ["00000"], "expressions": {"0": {"exp": "x", "anno_id": [1], "type_id": 7}}}}}
        )
    )
    with pytest.raises(DataFormatError) as e:
        readers.read_revos(str(tmp_path))
    assert "meta_expressions_train_.json" in str(e.value) and "v1/exp 0" in str(e.value) and "type_id" in str(e.value)
