"""Bad dataset files give a DataFormatError naming the file (and record), never a bare error.

Every fixture is written in tmp_path: a copy of the published-format trees of conftest.py, then broken.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tracemalloc

import numpy as np
import pytest

from omnir1_jax.config import DataSpec
from omnir1_jax.data import audio, build_pipeline, readers, rle
from omnir1_jax.data.errors import DataFormatError
from omnir1_jax.data.refcoco import read_refcocog
from omnir1_jax.runtime.records import pipeline_config, read_records

H, W = 20, 28  # the fixture trees' frame size (conftest.py)


def _copy(tree, tmp_path, name):
    root, _ = tree
    copy = tmp_path / name
    shutil.copytree(root, copy)
    return copy


def test_refavs_metadata_of_binary_junk_names_the_file(refavs_tree, tmp_path):
    copy = _copy(refavs_tree, tmp_path, "refavs")
    csv_path = copy / "metadata.csv"
    csv_path.write_bytes(bytes(np.random.default_rng(0).integers(128, 256, 4000, dtype=np.uint8)))  # not UTF-8
    with pytest.raises(DataFormatError) as e:
        readers.read_refavs(str(copy), "train")
    assert e.value.path == str(csv_path) and str(csv_path) in str(e.value)
    csv_path.write_bytes(b"vid,uid,split,fid,exp\na\x00b,a_1_1,train,1,x\n")  # a NUL byte in a row
    with pytest.raises(DataFormatError) as e:
        readers.read_refavs(str(copy), "train")
    assert e.value.path == str(csv_path)


@pytest.mark.parametrize(
    "refs", [[["not", "a", "dict"]], [42], [{"ann_id": 7, "image_id": 42, "split": "train", "sentences": "a cat"}]]
)
def test_refs_pickle_of_wrong_shape_names_the_file(refcocog_tree, tmp_path, refs):
    copy = _copy(refcocog_tree, tmp_path, "refcocog")
    refs_path = copy / "refs(umd).p"
    with open(refs_path, "wb") as f:
        pickle.dump(refs, f, protocol=2)
    with pytest.raises(DataFormatError) as e:
        read_refcocog(str(refs_path), str(copy / "instances.json"), str(copy / "train2014"), "train")
    assert str(refs_path) in str(e.value)


def test_empty_split_names_split_and_root(refavs_tree, tiny_tokenizer):
    root, _ = refavs_tree
    spec = DataSpec(dataset="refavs", root=root, split="val", min_frames=4, max_frames=4)
    records = read_records(spec)
    assert records == []  # the fixture has no 'val' row
    with pytest.raises(DataFormatError) as e:
        build_pipeline(records, tiny_tokenizer, pipeline_config(spec, train=True, seed=0))
    msg = str(e.value)
    assert "'val'" in msg and root in msg and "refavs" in msg


def test_missing_audio_names_the_file_and_record(refavs_tree, tmp_path):
    copy = _copy(refavs_tree, tmp_path, "refavs")
    (r,) = readers.read_refavs(str(copy), "train")
    os.remove(r.audio_path)
    with pytest.raises(DataFormatError) as e:
        audio.load_audio(r.audio_path, record=r.key)
    msg = str(e.value)
    assert r.audio_path in msg and "a_b-c_3_1" in msg and "missing" in msg and "System error" not in msg


def _huge_rle(h: int, w: int) -> dict:
    return {"size": [h, w], "counts": rle._runs_to_string([h * w])}  # a valid all-background RLE of h x w


def _peak_bytes(fn) -> tuple[int, DataFormatError]:
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError) as e:
            fn()
        return tracemalloc.get_traced_memory()[1], e.value
    finally:
        tracemalloc.stop()


def test_rle_claiming_20000_by_20000_is_rejected_before_decoding(revos_tree, tmp_path):
    copy = _copy(revos_tree, tmp_path, "revos")
    md = json.load(open(copy / "mask_dict.json"))
    md["21"][0] = _huge_rle(20_000, 20_000)
    json.dump(md, open(copy / "mask_dict.json", "w"))
    (r,) = [x for x in readers.read_revos(str(copy)) if x.video_id == "plain_vid"]
    # decoding would allocate 400 MB (one byte per pixel, twice); numpy allocations are traced by tracemalloc
    peak, err = _peak_bytes(lambda: r.load_masks([0], H, W))
    assert "20000x20000" in str(err) and str(copy / "mask_dict.json") in str(err) and "plain_vid" in str(err)
    assert peak < 20 * 2**20, peak
    # without a known frame size, the documented limit applies
    peak, err = _peak_bytes(lambda: rle.decode(_huge_rle(20_000, 20_000), path="mask_dict.json"))
    assert "MAX_PIXELS" in str(err) and peak < 20 * 2**20, peak
    assert rle.decode(_huge_rle(H, W), expected_size=(H, W)).shape == (H, W)  # a correct size still decodes


@pytest.mark.parametrize("vid", ["../../../../../outside", "ABSOLUTE", "ok/../../escape"])
def test_meta_video_id_outside_the_root_is_rejected(tmp_path, vid):
    if vid == "ABSOLUTE":  # an absolute path outside the dataset root, made from this test's own directory
        vid = str(tmp_path.parent / "outside")
    meta_path = tmp_path / "meta_expressions_train_.json"
    meta_path.write_text(
        json.dumps(
            {
                "videos": {
                    vid: {
                        "frames": ["00000"],
                        "height": H,
                        "width": W,
                        "expressions": {"0": {"exp": "x", "anno_id": [1], "obj_id": [1], "type_id": 0}},
                    }
                }
            }
        )
    )
    with pytest.raises(DataFormatError) as e:
        readers.read_revos(str(tmp_path))
    assert str(meta_path) in str(e.value) and repr(vid) in str(e.value)


def test_meta_frame_name_outside_the_root_is_rejected(tmp_path):
    (tmp_path / "meta_expressions_train_.json").write_text(
        json.dumps(
            {
                "videos": {
                    "v": {
                        "frames": ["../../../../secret"],
                        "expressions": {"0": {"exp": "x", "anno_id": [1], "type_id": 0}},
                    }
                }
            }
        )
    )
    with pytest.raises(DataFormatError, match="frame name '../../../../secret'"):
        readers.read_revos(str(tmp_path))


def test_refavs_vid_outside_the_root_is_rejected(tmp_path):
    csv_path = tmp_path / "metadata.csv"
    csv_path.write_text("vid,uid,split,fid,exp\n../../x,null_x_1_1,train,1,the cat\n")
    with pytest.raises(DataFormatError) as e:
        readers.read_refavs(str(tmp_path), "train")
    assert str(csv_path) in str(e.value) and "'../../x'" in str(e.value)


def test_nested_video_ids_are_still_accepted(revos_tree):
    root, truth = revos_tree
    assert {r.video_id for r in readers.read_revos(root)} == {vid for vid, _ in truth}  # "UVO/all/-CiPki3XuVI"
