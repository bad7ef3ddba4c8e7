"""Frame resampling statistics, prompts, and the System-2 keyframe view."""

import grain
import numpy as np
import pytest
from scipy.stats import chisquare

from omnir1_jax.data import prompts, transforms
from omnir1_jax.data.schema import ExpressionRecord


def _record(n_frames):
    names = tuple(f"{i:05d}" for i in range(n_frames))
    return ExpressionRecord("x", "train", "v", "0", "the red circle", names, tuple(f"nope/{n}.jpg" for n in names))


def test_train_frame_counts_cover_8_to_24_uniformly():
    ds = (
        grain.MapDataset.source([_record(48)] * 10_000)
        .seed(7)
        .map(transforms.ToExample())
        .random_map(transforms.ResampleFrames(train=True))
    )
    counts = np.bincount([len(ds[i]["frame_indices"]) for i in range(len(ds))], minlength=26)
    assert set(np.flatnonzero(counts)) == set(range(8, 25))
    expected = 10_000 / 17
    assert np.all(np.abs(counts[8:25] - expected) < 0.25 * expected)
    assert chisquare(counts[8:25]).pvalue > 1e-4


def test_indices_are_linspace_and_all_frames_when_short():
    # linspace(0, 47, 8) = 0, 6.71, 13.43, 20.14, 26.86, 33.57, 40.29, 47 (step 47/7), truncated by hand
    np.testing.assert_array_equal(transforms.sample_frame_indices(48, 8), [0, 6, 13, 20, 26, 33, 40, 47])
    idx = transforms.sample_frame_indices(100, 24)
    assert idx[0] == 0 and idx[-1] == 99 and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(transforms.sample_frame_indices(5, 12), np.arange(5))
    ev = transforms.ResampleFrames(train=False, min_frames=24, max_frames=24)
    rng = np.random.default_rng(0)
    assert len(ev.random_map({"record": _record(300)}, rng)["frame_indices"]) == 24
    assert len(ev.random_map({"record": _record(10)}, rng)["frame_indices"]) == 10


def test_vos_prompt_fills_paper_template():
    p = prompts.vos_prompt("the square that appears after the red circle", 13, fps=2.0, rng=np.random.default_rng(0))
    assert p.startswith(
        "- Given a 6.5 seconds video and a reference instruction: the square that appears after the red circle"
    )
    assert p.count("the square that appears after the red circle") == 2
    assert "Select about 4 most relevant moments" in p and p.rstrip().endswith("</answer>")
    starts = set()
    for seed in range(50):
        s = prompts.vos_prompt("x", 13, rng=np.random.default_rng(seed))
        a = float(s.split('"start_time": "00:')[1][:5])
        b = float(s.split('"end_time": "00:')[1][:5])
        assert 0 <= a <= b <= 6.5
        starts.add(a)
    assert len(starts) > 40  # randomised example timestamps
    # eval (no rng): the middle third of the clip, 12 frames at 2 fps = 6 s -> 00:02.00 .. 00:04.00
    fixed = prompts.vos_prompt("x", 12)
    assert '"start_time": "00:02.00",\n  "end_time": "00:04.00"' in fixed
    assert '"start_time": "00:03.33",\n  "end_time": "00:06.67"' in prompts.vos_prompt("x", 20)  # 10 s clip


def test_avs_prompt():
    p = prompts.avs_prompt("the object making the violin-like sound", 10.0)
    assert p.startswith(
        "- Given a 10 seconds audio and a reference instruction: the object making the violin-like sound,"
    )
    assert "producing sound" in p and "<answer></answer>" in p


def test_system2_view_only_requested_frames_and_scaled_boxes():
    frames = np.zeros((4, 480, 854, 3), np.uint8)
    boxes = np.array([[10, 20, 110, 220], [0, 0, 0, 0], [0, 0, 854, 480], [5, 5, 6, 6]], np.float32)
    valid = np.array([True, False, True, True])
    out = transforms.system2_view(frames, [2, 1], boxes, valid)
    assert [o["position"] for o in out] == [2, 1]
    img = out[0]["image"]
    np.testing.assert_allclose(out[0]["gt_boxes"], [[0, 0, img.shape[1], img.shape[0]]], atol=1e-3)
    assert out[1]["gt_boxes"].shape == (0, 4)


def test_guard_names_record_for_unexpected_errors():
    from omnir1_jax.data.errors import DataFormatError

    rec = _record(3)
    with pytest.raises(DataFormatError) as e:
        transforms.LoadFrames().map({"record": rec, "frame_indices": np.array([0])})
    assert "nope/00000.jpg" in str(e.value) and rec.key in str(e.value)
