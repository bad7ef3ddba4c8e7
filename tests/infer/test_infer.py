"""Two-system inference end to end: a synthetic video file, the tiny policy, the synthetic bridge subprocess."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from omnir1_jax import infer
from omnir1_jax.config import BridgeSpec
from omnir1_jax.crossomni.media import read_video, write_video
from omnir1_jax.evaluation.results import read_masks
from omnir1_jax.runtime.bridge import open_bridge

pytestmark = pytest.mark.torch  # the bridge subprocess imports the PyTorch side

H, W, L = 64, 96, 12
RED = (230, 25, 35)


def _frames():
    fr = np.full((L, H, W, 3), 25, np.uint8)
    for t in range(L):
        x = 8 + 4 * t
        fr[t, 20:40, x : x + 20] = RED
    return fr


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    b = open_bridge(
        BridgeSpec(grounder="synthetic", segmenter="synthetic", workers=1, timeout_s=120),
        str(tmp_path_factory.mktemp("bridge")),
        wait_s=120,
    )
    yield b
    b.close()


@pytest.fixture(scope="module")
def video_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("video") / "clip.mp4")
    return write_video(path, _frames(), fps=6.0)


def test_video_decoding_keeps_frames(video_file):
    v = read_video(video_file)
    assert v.frames.shape == (L, H, W, 3) and v.fps == pytest.approx(6.0) and v.audio is None
    # H.264 at crf 18 is lossy but close: the red square is where it was drawn
    assert np.abs(v.frames.astype(int) - _frames().astype(int)).mean() < 3.0


def test_cli_end_to_end_writes_one_mask_per_frame(video_file, bridge, tmp_path):
    out = tmp_path / "out"
    rc = infer.main(
        [
            "--video",
            video_file,
            "--query",
            "the red square",
            "--policy",
            "tiny",
            "--out",
            str(out),
            "--max-new-tokens",
            "8",
            "--bridge",
            bridge.client.addresses[0],
            "--max-frames",
            "8",
            "--s1-max-pixels",
            str(4 * 28 * 28),
            "--s1-min-pixels",
            str(4 * 28 * 28),
        ]
    )
    assert rc == 0
    files = sorted(os.listdir(out / "masks"))
    assert files == [f"{i:05d}.png" for i in range(L)]
    for f in files:
        with Image.open(out / "masks" / f) as im:
            assert im.size == (W, H) and im.mode == "L"
            assert set(np.unique(np.asarray(im)).tolist()) <= {0, 255}
    answer = json.loads((out / "answer.json").read_text())
    assert answer["num_frames"] == L
    masks = read_masks(str(out / "masks"), [f[:-4] for f in files])
    assert int(masks.sum()) == answer["mask_pixels"]
    assert (out / "contact_sheet.png").exists()


def test_scripted_answer_segments_the_object_in_every_frame(bridge, tmp_path):
    """System 1's answer names the red square at two moments; System 2 + the segmenter must recover the drawn
    square on every frame of the full video (keyframes mapped from the 6-frame clip to the 12-frame video)."""
    from omnir1_jax.testing.tokenizer import build_tiny_tokenizer

    frames = _frames()
    tok = build_tiny_tokenizer()
    batch = infer.system1_batch(
        frames, "the red square", tok, max_frames=6, s1_min_pixels=4 * 784, s1_max_pixels=4 * 784
    )
    positions = batch["frame_indices"][0].tolist()
    assert positions == np.linspace(0, L - 1, 6).astype(int).tolist()
    text = (
        '<think>the square moves right</think><answer>[{"start_time": "00:01.00", "end_time": "00:01.00", '
        '"description": "the red square"}, {"start_time": "00:02.0", "end_time": "00:02.4", '
        '"description": "the red square"}]</answer>'
    )
    pred = infer.predict_batch(None, tok, bridge.client, batch, [frames], texts=[text])[0]
    assert pred.valid and [m.clip_index for m in pred.moments] == [2, 4]
    assert [m.video_index for m in pred.moments] == [positions[2], positions[4]]
    truth = np.all(frames == np.asarray(RED, np.uint8), axis=-1)
    assert pred.masks.shape == (L, H, W)
    inter = (pred.masks & truth).sum((1, 2))
    union = (pred.masks | truth).sum((1, 2))
    assert np.all(inter / union > 0.95), inter / union
    paths = infer.write_masks(str(tmp_path / "m"), pred.masks, [str(i) for i in range(L)])
    np.testing.assert_array_equal(read_masks(str(tmp_path / "m"), [str(i) for i in range(L)]), pred.masks)
    assert len(paths) == L


def test_malformed_answer_gives_empty_masks_and_no_moments(bridge):
    from omnir1_jax.testing.tokenizer import build_tiny_tokenizer

    frames = _frames()
    tok = build_tiny_tokenizer()
    batch = infer.system1_batch(frames, "x", tok, max_frames=4, s1_min_pixels=4 * 784, s1_max_pixels=4 * 784)
    pred = infer.predict_batch(None, tok, bridge.client, batch, [frames], texts=["<answer>{not json</answer>"])[0]
    assert not pred.valid and pred.moments == [] and pred.masks.shape == (L, H, W) and not pred.masks.any()


def test_bad_video_path_names_the_file(tmp_path):
    from omnir1_jax.data.errors import DataFormatError

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(DataFormatError, match="broken.mp4"):
        read_video(str(bad))
