"""The synthetic world: exact masks, determinism, answerable expressions, real layouts, the CLI."""

import filecmp
import json
import os

import numpy as np
import pytest
from PIL import Image

from omnir1_jax.data import readers
from omnir1_jax.data.masks import mask_to_box
from omnir1_jax.data.synthetic import __main__ as cli
from omnir1_jax.data.synthetic import avs, world, writer


def test_palette_and_shapes_are_the_contract():
    assert world.PALETTE == {
        "red": (230, 25, 35),
        "green": (30, 170, 60),
        "blue": (30, 70, 230),
        "yellow": (240, 220, 30),
        "purple": (140, 50, 190),
        "orange": (250, 130, 20),
        "cyan": (30, 210, 220),
        "white": (245, 245, 245),
    }
    assert world.SHAPES == ("circle", "square", "triangle") and world.BACKGROUND == (25, 25, 25)


def test_shape_geometry():
    c = world.shape_mask("circle", 20.0, 15.0, 6.0, 40, 50)
    ys, xs = np.nonzero(c)
    assert np.all((xs - 20) ** 2 + (ys - 15) ** 2 <= 36) and c.sum() == sum(
        1 for y in range(40) for x in range(50) if (x - 20) ** 2 + (y - 15) ** 2 <= 36
    )
    s = world.shape_mask("square", 20.0, 15.0, 6.0, 40, 50)
    np.testing.assert_array_equal(mask_to_box(s), [14, 9, 27, 22])
    assert s.sum() == 13 * 13
    t = world.shape_mask("triangle", 20.0, 15.0, 6.0, 40, 50)
    rows = t.sum(axis=1)
    assert rows[9] == 1 and rows[21] == 13 and np.all(np.diff(rows[9:22]) >= 0)  # apex up, widening


def test_vos_tree_is_readable_exact_and_consistent(synthetic_vos):
    recs = readers.read_revos(synthetic_vos, "train") + readers.read_revos(synthetic_vos, "valid")
    oracle = json.load(open(os.path.join(synthetic_vos, writer.ORACLE_FILE)))
    assert {r.type_id for r in recs} == {0, 1} and any(len(r.anno_ids) > 1 for r in recs)
    for r in recs:
        v = oracle["videos"][r.video_id]
        objs = {o["obj_id"]: o for o in v["objects"]}
        masks = r.load_masks(range(r.num_frames), 56, 98)
        area = masks.reshape(r.num_frames, -1).sum(-1)
        if len(r.obj_ids) == 1:  # per-object facts agree with the decoded GT
            o = objs[r.obj_ids[0]]
            np.testing.assert_array_equal(area, o["area"])
            for t in range(r.num_frames):
                b = mask_to_box(masks[t])
                assert (o["box"][t] is None) == (b.ndim == 2) and (b.ndim == 2 or list(b) == o["box"][t])
        tmpl = v["expressions"][r.exp_id]["template"]
        seen = [o for o in objs.values() if o["first_visible"] >= 0]
        (tgt,) = r.obj_ids if len(r.obj_ids) == 1 else (None,)
        if tmpl == "leaves_last":
            leavers = [o for o in seen if o["last_visible"] < r.num_frames - 2]
            assert objs[tgt]["last_visible"] >= max(o["last_visible"] for o in leavers if o["obj_id"] != tgt) + 2
        elif tmpl == "fastest":
            assert objs[tgt]["speed"] >= 1.4 * max(o["speed"] for o in seen if o["obj_id"] != tgt)
        elif tmpl == "appears_first":
            assert objs[tgt]["first_visible"] + 2 <= min(o["first_visible"] for o in seen if o["obj_id"] != tgt)
        elif tmpl == "appears_after":
            shape, ref = r.expression.split(" that appears after the ")
            ref_obj = next(o for o in seen if o["description"] == ref)
            later = [
                o
                for o in seen
                if o["shape"] == shape.split()[-1] and o["first_visible"] >= ref_obj["first_visible"] + 2
            ]
            assert [o["obj_id"] for o in later] == [tgt]
        elif tmpl == "all_of_shape":
            shape = r.expression.split()[-1][:-1]
            assert set(r.obj_ids) == {o["obj_id"] for o in seen if o["shape"] == shape}
        elif tmpl == "colour_shape":
            assert r.expression == f"the {objs[tgt]['description']}"


def test_frames_show_the_palette_colour_inside_masks(synthetic_vos):
    from scipy.ndimage import binary_erosion

    (r,) = [x for x in readers.read_revos(synthetic_vos, "train") if len(x.obj_ids) == 1][:1]
    oracle = json.load(open(os.path.join(synthetic_vos, writer.ORACLE_FILE)))["videos"][r.video_id]
    colour = np.array(world.PALETTE[next(o for o in oracle["objects"] if o["obj_id"] == r.obj_ids[0])["colour"]])
    masks = r.load_masks(range(r.num_frames), 56, 98)
    t = int(np.argmax(masks.reshape(r.num_frames, -1).sum(-1)))
    inner = binary_erosion(masks[t], iterations=2)
    img = np.asarray(Image.open(r.frame_paths[t]).convert("RGB")).astype(int)
    if inner.any():
        assert np.abs(img[inner] - colour).mean() < 20  # JPEG error only


def test_deterministic_per_seed(tmp_path):
    a = writer.write_vos(str(tmp_path / "a"), 2, seed=11, height=40, width=64)
    b = writer.write_vos(str(tmp_path / "b"), 2, seed=11, height=40, width=64)
    c = writer.write_vos(str(tmp_path / "c"), 2, seed=12, height=40, width=64)
    for f in ("mask_dict.json", "meta_expressions_train_.json", writer.ORACLE_FILE):
        assert filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False)
    assert not filecmp.cmp(os.path.join(a, "mask_dict.json"), os.path.join(c, "mask_dict.json"), shallow=False)


def test_avs_tree_layout_sounds_and_null_rows(synthetic_avs):
    from omnir1_jax.data.audio import load_audio

    oracle = json.load(open(os.path.join(synthetic_avs, writer.ORACLE_FILE)))
    all_recs = [r for s in readers.REFAVS_SPLITS for r in readers.read_refavs(synthetic_avs, s)]
    assert {r.split for r in all_recs} >= {"train", "val", "test_s", "test_u", "test_n"}
    for r in all_recs:
        masks = r.load_masks(range(10), 56, 98)
        facts = oracle["videos"][r.video_id]["expressions"][r.exp_id]
        assert r.is_null == (not facts["obj_id"]) == (r.split == "test_n")
        assert masks.any() != r.is_null
    r = next(x for x in all_recs if x.expression.startswith("the object making the") and not x.is_null)
    sounds = oracle["videos"][r.video_id]["sounds"]
    ev = next(s for s in sounds if s["tone"] in r.expression)
    y = load_audio(r.audio_path)
    assert y.size == 160000
    inside = y[int(ev["start_s"] * 16000) : int(ev["end_s"] * 16000)]
    quiet = np.ones(y.size, bool)
    for s in sounds:
        quiet[int(s["start_s"] * 16000) : int(s["end_s"] * 16000)] = False
    assert np.sqrt(np.mean(inside**2)) > 10 * np.sqrt(np.mean(y[quiet] ** 2))
    # "sounds after X" targets the next sound's object
    for rr in all_recs:
        if "sounds after the" in rr.expression:
            tone = rr.expression.split("after the ")[1].split(" tone")[0]
            order = [s["tone"] for s in oracle["videos"][rr.video_id]["sounds"]]
            nxt = oracle["videos"][rr.video_id]["sounds"][order.index(tone) + 1]
            assert oracle["videos"][rr.video_id]["expressions"][rr.exp_id]["obj_id"] == [nxt["obj_id"]]


def test_tones_are_distinct():
    spectra = [np.abs(np.fft.rfft(avs.tone(n, 16000))) for n in avs.TONES]
    peaks = [int(np.argmax(s)) for s in spectra]
    assert len(set(peaks)) == len(avs.TONES)


def test_cli_writes_and_refuses_to_overwrite(tmp_path, capsys):
    out = str(tmp_path / "cli")
    assert cli.main(["--out", out, "--videos", "1", "--height", "40", "--width", "64"]) == 0
    assert os.path.exists(os.path.join(out, "meta_expressions_train_.json"))
    with pytest.raises(FileExistsError):
        cli.main(["--out", out, "--videos", "1"])


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer, "_save_jpeg", boom)
    with pytest.raises(RuntimeError):
        writer.write_vos(str(tmp_path / "x"), 1, height=40, width=64)
    assert os.listdir(tmp_path) == []
