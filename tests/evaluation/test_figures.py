"""Overlays: colours at known prediction / GT pixels, the grid layout; the reward plot shows only weighted terms."""

import json

import numpy as np

from omnir1_jax.evaluation import figures

GREY = 100


def _case():
    frame = np.full((20, 30, 3), GREY, np.uint8)
    gt = np.zeros((20, 30), bool)
    gt[4:14, 4:14] = True  # GT square
    pred = np.zeros((20, 30), bool)
    pred[8:18, 8:22] = True  # prediction overlapping its lower-right corner
    return frame, pred, gt


def _blend(a, colour, w):
    return np.rint((1 - w) * a + w * np.asarray(colour, np.float64)).astype(np.uint8)


def test_overlay_colours_at_known_pixels():
    frame, pred, gt = _case()
    out = figures.overlay_frame(frame, pred, gt)
    green = _blend(GREY, (40, 220, 60), 0.5)  # (70, 160, 80)
    magenta_tint = _blend(GREY, (255, 0, 255), 0.35)
    assert green.tolist() == [70, 160, 80]
    assert out[10, 10].tolist() == green.tolist()  # hit: inside GT and predicted
    assert out[16, 20].tolist() == green.tolist()  # false positive: predicted outside GT
    assert out[6, 6].tolist() == magenta_tint.tolist()  # miss: GT interior not predicted
    assert out[4, 8].tolist() == [255, 0, 255] and out[13, 13].tolist() == [255, 0, 255]  # GT outline
    assert out[1, 28].tolist() == [GREY] * 3  # background untouched
    assert out[10, 10].tolist() != out[6, 6].tolist() != out[4, 8].tolist()


def test_sheet_upscales_labels_and_lays_out_a_grid():
    frame, pred, gt = _case()
    frames = np.repeat(frame[None], 10, 0)
    preds, gts = np.repeat(pred[None], 10, 0), np.repeat(gt[None], 10, 0)
    image, layout = figures.overlay_sheet(
        frames,
        preds,
        gts,
        title="the grey square",
        keyframes=[3],
        frame_scores=np.linspace(0, 1, 10),
        max_frames=8,
        columns=4,
    )
    assert len(layout) == 8 and 3 in layout
    s = int(layout[3][2])
    assert s == int(np.ceil(figures.TILE_WIDTH / 30)) and s * 30 >= figures.TILE_WIDTH  # readable size
    ys = sorted({y for _, y, _ in layout.values()})
    assert len(ys) == 2  # two rows of four, not a one-row strip
    ref = figures.overlay_frame(frame, pred, gt)
    for t, (x0, y0, sc) in layout.items():
        sc = int(sc)
        for y, x in ((10, 10), (6, 6), (4, 8), (1, 28)):
            block = image[y0 + y * sc : y0 + (y + 1) * sc, x0 + x * sc : x0 + (x + 1) * sc]
            assert (block == ref[y, x]).all(), (t, y, x)
    # the label strip above each tile holds drawn text (pixels brighter than the sheet background)
    x0, y0, _ = layout[3]
    assert image[y0 - 24 : y0 - 2, x0 : x0 + 120].max() > 200


def _metrics(path):
    rows = [
        {
            "step": i,
            "reward/total": 1.0 + 0.1 * i,
            "reward/format": 1.0,
            "reward/keyframe": 0.5 * (i % 2),
            "reward/alignment": 0.0,
            "reward/grounding": 0.05 * i,
            "loss": 0.1,
        }
        for i in range(1, 21)
    ]
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return rows


def test_reward_plot_shows_only_weighted_components_and_the_evaluations(tmp_path):
    import matplotlib.pyplot as plt

    rows = _metrics(tmp_path / "metrics.jsonl")
    weights = {"format": 1.0, "keyframe": 1.0, "alignment": 0.0, "grounding": 2.0}
    fig = figures.reward_figure(rows, weights=weights, evals=[(0, 0.155), (20, 0.734)])
    try:
        ax, ax2 = fig.axes
        shown = [ln.get_label() for ln in ax.get_lines() if not ln.get_label().startswith("_")]
        assert shown == ["total", "format (weight 1)", "keyframe (weight 1)", "grounding (weight 2)"]
        assert not any("alignment" in ln.get_label() for ln in ax.get_lines())
        raw = {ln.get_label(): ln for ln in ax.get_lines() if ln.get_label().startswith("_")}
        np.testing.assert_allclose(raw["_keyframe raw"].get_ydata(), [0.5 * (i % 2) for i in range(1, 21)])
        smooth = {ln.get_label(): ln.get_ydata() for ln in ax.get_lines()}["format (weight 1)"]
        np.testing.assert_allclose(smooth, 1.0)  # the smoothing of a constant is the constant
        (ev,) = ax2.get_lines()
        assert ev.get_label() == "J&F (evaluation)"
        assert ev.get_xdata().tolist() == [0, 20] and ev.get_ydata().tolist() == [0.155, 0.734]
    finally:
        plt.close(fig)
    png = figures.plot_rewards(
        str(tmp_path / "metrics.jsonl"), str(tmp_path / "rewards.png"), weights=weights, evals=[(0, 0.155), (20, 0.734)]
    )
    assert png == str(tmp_path / "rewards.png")
    from PIL import Image

    with Image.open(png) as im:
        assert im.size[0] >= 1000
    assert figures.plot_rewards(str(tmp_path / "missing.jsonl"), str(tmp_path / "x.png")) is None


def test_ema_by_hand():
    # span 2: smoothing a = 1/3; step 1: 0; step 2: (2/3 * 3) / (1 - 1/9) = 2.25
    np.testing.assert_allclose(figures.ema([0.0, 3.0], 2), [0.0, 2.25])


def test_reward_weights_of_a_config():
    from omnir1_jax.config import ExperimentConfig, GRPOSpec
    from omnir1_jax.rewards import RewardWeights

    cfg = ExperimentConfig(grpo=GRPOSpec(rewards=RewardWeights(alpha_k=0.0, alpha_a=0.5)))
    assert figures.reward_weights(cfg) == {"format": 1.0, "keyframe": 0.0, "alignment": 0.5, "grounding": 1.0}
