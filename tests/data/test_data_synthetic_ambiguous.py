"""The ambiguous synthetic world: every claim of every expression is checked from the WRITTEN
files (meta expressions, COCO RLE masks decoded with pycocotools, the oracle file), and the world is a function
of its seed."""

import filecmp
import json
import os

import numpy as np
import pytest

pycocotools_mask = pytest.importorskip("pycocotools.mask")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools vs numpy 2

from omnir1_jax.data import readers  # noqa: E402
from omnir1_jax.data.synthetic import __main__ as cli  # noqa: E402
from omnir1_jax.data.synthetic import writer  # noqa: E402

H, W = 96, 160
KW = dict(seed=3, height=H, width=W, min_frames=8, max_frames=12, objects=(2, 4), ambiguous=True)


@pytest.fixture(scope="module")
def amb_world(tmp_path_factory):
    return writer.write_vos(str(tmp_path_factory.mktemp("amb") / "world"), 15, **KW)


def _masks(mask_dict, anno_id, n_frames):
    out = np.zeros((n_frames, H, W), bool)
    for t, r in enumerate(mask_dict[str(anno_id)]):
        if r is not None:
            out[t] = pycocotools_mask.decode({"size": r["size"], "counts": r["counts"].encode()}).astype(bool)
    return out


def _cx(mask):
    return np.nonzero(mask)[1].mean()


def test_each_expression_targets_exactly_one_of_two_lookalikes(amb_world):
    oracle = json.load(open(os.path.join(amb_world, writer.ORACLE_FILE)))
    mask_dict = json.load(open(os.path.join(amb_world, "mask_dict.json")))
    kinds, n_exprs = set(), 0
    for split in ("train", "valid"):
        meta = json.load(open(os.path.join(amb_world, f"meta_expressions_{split}_.json")))["videos"]
        assert meta, split  # both splits hold videos (valid: every fifth)
        for vid, v in meta.items():
            objects = {o["obj_id"]: o for o in oracle["videos"][vid]["objects"]}
            anno = {o["obj_id"]: o["anno_id"] for o in objects.values()}
            masks = {i: _masks(mask_dict, anno[i], len(v["frames"])) for i in objects}
            targets = []
            assert len(v["expressions"]) == 2
            for e in v["expressions"].values():
                assert len(e["obj_id"]) == 1 and e["anno_id"] == [anno[e["obj_id"][0]]] and e["type_id"] == 1
                target = objects[e["obj_id"][0]]
                twins = [
                    o for o in objects.values() if (o["colour"], o["shape"]) == (target["colour"], target["shape"])
                ]
                assert len(twins) == 2, (vid, e)  # exactly one other object looks the same
                other = next(o for o in twins if o["obj_id"] != target["obj_id"])
                prefix = f"the {target['colour']} {target['shape']} "
                assert e["exp"].startswith(prefix), e["exp"]
                claim = e["exp"][len(prefix) :]
                mt, mo = masks[target["obj_id"]], masks[other["obj_id"]]
                first_t, first_o = np.flatnonzero(mt.any((1, 2)))[0], np.flatnonzero(mo.any((1, 2)))[0]
                if claim == "that appears first":
                    assert first_t < first_o
                elif claim == "that appears second":
                    assert first_t > first_o
                elif claim in ("moving left", "moving right"):
                    sign = -1 if claim == "moving left" else 1
                    assert sign * (_cx(mt[-1]) - _cx(mt[0])) > 0.2 * W and sign * (_cx(mo[-1]) - _cx(mo[0])) < -0.2 * W
                else:
                    raise AssertionError(f"unexpected expression {e['exp']!r}")
                both = mt.any((1, 2)) & mo.any((1, 2))
                assert both.sum() >= 3  # frames on which a colour + shape description matches both
                assert not (mt & mo).any()  # disjoint, never merged into one region
                targets.append(target["obj_id"])
                kinds.add(claim.split()[0])
                n_exprs += 1
            assert len(set(targets)) == 2  # the two expressions name the two look-alikes
            for e in oracle["videos"][vid]["expressions"].values():
                assert sorted(e["lookalikes"]) == sorted(targets)
    assert kinds == {"that", "moving"} and n_exprs == 30  # both kinds of scene occur in 15 videos
    recs = readers.read_revos(amb_world, "train") + readers.read_revos(amb_world, "valid")
    assert len(recs) == 30  # the ReVOS reader reads the world as it reads ReVOS


def test_deterministic_given_the_seed(amb_world, tmp_path):
    again = writer.write_vos(str(tmp_path / "again"), 15, **KW)
    cmp = filecmp.dircmp(amb_world, again)
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only
    for sub, _dirs, files in os.walk(os.path.join(amb_world, "JPEGImages")):
        rel = os.path.relpath(sub, amb_world)
        for f in files:
            assert filecmp.cmp(os.path.join(sub, f), os.path.join(again, rel, f), shallow=False)
    other = writer.write_vos(str(tmp_path / "other"), 15, **dict(KW, seed=4))
    assert open(os.path.join(other, "mask_dict.json")).read() != open(os.path.join(amb_world, "mask_dict.json")).read()


def test_kinds_are_selectable_and_bad_knobs_are_named(tmp_path):
    out = writer.write_vos(str(tmp_path / "moves"), 5, **dict(KW, templates=("moves_direction",)))
    meta = json.load(open(os.path.join(out, "meta_expressions_train_.json")))["videos"]
    assert all(
        e["exp"].endswith(("moving left", "moving right")) for v in meta.values() for e in v["expressions"].values()
    )
    for kw, word in (
        (dict(objects=(1, 3)), "objects"),
        (dict(templates=("fastest",)), "templates"),
        (dict(templates=()), "templates"),
    ):
        with pytest.raises(ValueError, match=word):
            writer.write_vos(str(tmp_path / "bad"), 2, **dict(KW, **kw))
    assert not os.path.exists(tmp_path / "bad")


def test_cli_flag(tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        cli.main(
            [
                "--out",
                str(out),
                "--videos",
                "2",
                "--ambiguous",
                "--objects",
                "2",
                "3",
                "--height",
                "64",
                "--width",
                "96",
                "--min-frames",
                "6",
                "--max-frames",
                "8",
                "--seed",
                "5",
            ]
        )
        == 0
    )
    assert "ambiguous VOS" in capsys.readouterr().out
    params = json.load(open(out / writer.ORACLE_FILE))["params"]
    assert params["ambiguous"] is True and params["objects"] == [2, 3]
    with pytest.raises(SystemExit):
        cli.main(["--out", str(tmp_path / "x"), "--videos", "1", "--avs", "--ambiguous"])


def test_data_config_field():
    from omnir1_jax.config import ConfigError, DataSpec

    assert DataSpec().synthetic_ambiguous is False
    assert DataSpec(synthetic_ambiguous=True, synthetic_objects=(2, 3)).synthetic_ambiguous is True
    for bad in (dict(synthetic_ambiguous=True, synthetic_objects=(1, 3)), dict(synthetic_ambiguous="yes")):
        with pytest.raises(ConfigError, match="synthetic_ambiguous"):
            DataSpec(**bad)
