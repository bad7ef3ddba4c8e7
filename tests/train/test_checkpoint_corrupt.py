"""A corrupt newest checkpoint: resume falls back to the newest step that restores.

Every checkpoint here is a real Orbax checkpoint written by RunCheckpointer; the newest one is then damaged the
way a full disk, a crash or a careless copy would. The skipped step is moved to ``checkpoints/corrupt/``.
"""

from __future__ import annotations

import glob
import os
import shutil

import numpy as np
import pytest

from omnir1_jax.runtime.checkpoint import CheckpointError, RunCheckpointer


def _state(i: int) -> dict:
    return {"w": np.full((4, 5), float(i), np.float32), "b": np.arange(3, dtype=np.int32) + i}


def _write(out: str, steps=(1, 2)) -> str:
    ckpt = RunCheckpointer(out, keep=5)
    try:
        for i in steps:
            ckpt.save(i, _state(i), {"step": i, "data_state": bytes([i, 0, 255])})
    finally:
        ckpt.close()
    return os.path.join(out, "checkpoints")


def _files(path: str) -> list[str]:
    return [f for f in glob.glob(os.path.join(path, "**", "*"), recursive=True) if os.path.isfile(f)]


def _truncate(step_dir):
    files = [f for f in _files(os.path.join(step_dir, "state")) if os.sep + "d" + os.sep in f]
    assert files
    for f in files:
        data = open(f, "rb").read()
        open(f, "wb").write(data[: len(data) // 2])


def _zero_fill(step_dir):
    for f in _files(os.path.join(step_dir, "state")):
        size = os.path.getsize(f)
        open(f, "wb").write(b"\0" * size)


def _garbage_meta(step_dir):
    open(os.path.join(step_dir, "meta", "metadata"), "wb").write(b"\x89PNG not json {{{")


def _missing_item(step_dir):
    shutil.rmtree(os.path.join(step_dir, "state"))


CORRUPTIONS = {
    "truncated": _truncate,
    "zero-filled": _zero_fill,
    "garbage meta": _garbage_meta,
    "missing item": _missing_item,
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupt_newest_checkpoint_falls_back_and_is_kept_aside(tmp_path, capsys, kind):
    out = str(tmp_path / "run")
    ckdir = _write(out)
    CORRUPTIONS[kind](os.path.join(ckdir, "2"))
    damaged = sorted(os.path.relpath(f, os.path.join(ckdir, "2")) for f in _files(os.path.join(ckdir, "2")))
    ckpt = RunCheckpointer(out, keep=5)
    try:
        assert ckpt.latest_step() == 2
        step, state, meta = ckpt.restore(_state(0))
        assert step == 1 and meta == {"step": 1, "data_state": bytes([1, 0, 255])}
        np.testing.assert_array_equal(state["w"], _state(1)["w"])
        np.testing.assert_array_equal(state["b"], _state(1)["b"])
        assert ckpt.latest_step() == 1
        ckpt.save(2, _state(2), {"step": 2})  # the run goes on and writes step 2 again
        assert ckpt.restore(_state(0))[0] == 2
    finally:
        ckpt.close()
    printed = capsys.readouterr().out
    assert "skipped step 2" in printed and "corrupt" in printed
    aside = os.listdir(os.path.join(ckdir, "corrupt"))
    assert len(aside) == 1 and aside[0].startswith("2-")
    kept = os.path.join(ckdir, "corrupt", aside[0])  # moved, not deleted: the same files are still there
    assert sorted(os.path.relpath(f, kept) for f in _files(kept)) == damaged


def test_empty_bogus_step_directory_is_skipped(tmp_path, capsys):
    out = str(tmp_path / "run")
    ckdir = _write(out)
    os.makedirs(os.path.join(ckdir, "7"))
    ckpt = RunCheckpointer(out, keep=5)
    try:
        assert ckpt.latest_step() == 7
        step, state, meta = ckpt.restore(_state(0))
        assert step == 2 and meta["step"] == 2
        np.testing.assert_array_equal(state["w"], _state(2)["w"])
    finally:
        ckpt.close()
    assert "skipped step 7" in capsys.readouterr().out
    assert [n.split("-")[0] for n in os.listdir(os.path.join(ckdir, "corrupt"))] == ["7"]
    assert sorted(n for n in os.listdir(ckdir) if n != "corrupt") == ["1", "2"]


def test_every_step_corrupt_gives_none_and_keeps_them_all(tmp_path):
    out = str(tmp_path / "run")
    ckdir = _write(out)
    for step in ("1", "2"):
        _garbage_meta(os.path.join(ckdir, step))
    ckpt = RunCheckpointer(out, keep=5)
    try:
        assert ckpt.restore(_state(0)) is None
        assert ckpt.latest_step() is None
    finally:
        ckpt.close()
    assert sorted(n.split("-")[0] for n in os.listdir(os.path.join(ckdir, "corrupt"))) == ["1", "2"]


def test_checkpoint_of_another_model_is_an_error_and_nothing_moves(tmp_path):
    out = str(tmp_path / "run")
    ckdir = _write(out)
    ckpt = RunCheckpointer(out, keep=5)
    try:
        with pytest.raises(CheckpointError, match=r"step 2 .*another model or config"):
            ckpt.restore({"w": np.zeros((4, 5), np.float32), "other": np.zeros(3, np.int32)})
    finally:
        ckpt.close()
    assert sorted(os.listdir(ckdir)) == ["1", "2"]


def test_failing_checkpoint_with_other_shapes_is_not_set_aside(tmp_path):
    # A damaged checkpoint of a model with other shapes: reported as another model, not moved (a config change
    # must not silently push a run's checkpoints aside).
    out = str(tmp_path / "run")
    ckdir = _write(out)
    _garbage_meta(os.path.join(ckdir, "2"))
    ckpt = RunCheckpointer(out, keep=5)
    try:
        with pytest.raises(CheckpointError, match=r"w: stored \(4, 5\), expected \(4, 6\)"):
            ckpt.restore({"w": np.zeros((4, 6), np.float32), "b": np.zeros(3, np.int32)})
    finally:
        ckpt.close()
    assert sorted(os.listdir(ckdir)) == ["1", "2"]
