"""What a user looks at: mask overlays of predictions against the ground truth, and the reward plot.

Overlays are drawn from masks the evaluator already holds (never a second bridge query). Colours: the
prediction is filled green (:data:`PRED_COLOUR`, half-way blend), the ground truth is outlined in magenta
(:data:`GT_COLOUR`) and its pixels the prediction missed are tinted magenta, so hits (green inside the outline),
false positives (green outside it) and misses (magenta tint) are told apart. Each frame is upscaled to a
readable width, labelled with its index in the video (in yellow, "keyframe", when System 1 chose it) and its J, and the
frames are laid out in a grid under a title with the expression, the scores and the legend.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from omnir1_jax.runtime.metrics import read_jsonl

PRED_COLOUR = (40, 220, 60)
GT_COLOUR = (255, 0, 255)
MISS_ALPHA = 0.35  # weight of the magenta tint on GT pixels the prediction missed
TILE_WIDTH = 384  # frames narrower than this are upscaled (nearest) by an integer factor to at least this width
DEFAULT_REWARDS = ("format", "keyframe", "alignment", "grounding", "accuracy", "consistency", "coherence")


# ------------------------------------------------------------------------------------------------ overlays
def outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (the image border counts as outside)."""
    m = np.pad(np.asarray(mask, bool), 1)
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return m[1:-1, 1:-1] & ~inner


def overlay_frame(frame: np.ndarray, pred: np.ndarray, gt: np.ndarray | None = None) -> np.ndarray:
    """uint8 RGB ``frame`` [H, W, 3] with ``pred`` blended half-way to green, the GT pixels ``pred`` missed
    blended :data:`MISS_ALPHA` to magenta and the GT outline solid magenta."""
    out = np.asarray(frame).astype(np.float32).copy()
    pred = np.asarray(pred, bool)
    out[pred] = 0.5 * out[pred] + 0.5 * np.asarray(PRED_COLOUR, np.float32)
    if gt is not None:
        gt = np.asarray(gt, bool)
        miss = gt & ~pred
        out[miss] = (1 - MISS_ALPHA) * out[miss] + MISS_ALPHA * np.asarray(GT_COLOUR, np.float32)
        out[outline(gt)] = GT_COLOUR
    return np.rint(out).clip(0, 255).astype(np.uint8)


def tint(frame: np.ndarray, mask: np.ndarray, colour=PRED_COLOUR) -> np.ndarray:
    """RGB frame with ``mask`` tinted half-way to ``colour``."""
    out = frame.astype(np.float32).copy()
    out[mask] = 0.5 * out[mask] + 0.5 * np.asarray(colour, np.float32)
    return out.clip(0, 255).astype(np.uint8)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: only the fixed bitmap font
        return ImageFont.load_default()


def _resize(tile: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """``tile`` at a readable width: narrow frames upscaled by an integer factor (nearest, so every source pixel
    becomes an s x s block), wide ones scaled down to ``width``. Returns ``(tile, scale)``."""
    from PIL import Image

    h, w = tile.shape[:2]
    if w < width:
        s = math.ceil(width / w)
        return np.repeat(np.repeat(tile, s, axis=0), s, axis=1), float(s)
    if w == width:
        return tile, 1.0
    s = width / w
    return np.asarray(Image.fromarray(tile).resize((width, max(1, round(h * s))), Image.BILINEAR)), s


def pick_frames(num_frames: int, keyframes: Sequence[int] = (), max_frames: int = 8) -> list[int]:
    """Up to ``max_frames`` frame indices in order: the keyframes first, the rest evenly spaced over the video."""
    chosen = list(dict.fromkeys(int(k) for k in keyframes if 0 <= int(k) < num_frames))[:max_frames]
    for i in np.linspace(0, num_frames - 1, max_frames).round().astype(int).tolist():
        if len(chosen) >= max_frames:
            break
        if i not in chosen:
            chosen.append(i)
    return sorted(chosen)


def overlay_sheet(
    frames: np.ndarray,
    pred: np.ndarray,
    gt: np.ndarray | None = None,
    *,
    title: str = "",
    subtitle: str = "",
    keyframes: Sequence[int] = (),
    frame_scores: Sequence[float] | None = None,
    max_frames: int = 8,
    columns: int = 4,
    tile_width: int = TILE_WIDTH,
) -> tuple[np.ndarray, dict[int, tuple[int, int, float]]]:
    """A grid of labelled overlay tiles with a title band.

    Args:
      frames: uint8 [L, H, W, 3]; pred, gt: bool [L, H, W] (``gt`` None: prediction only).
      keyframes: video frame indices System 1 chose (always shown, labelled in yellow).
      frame_scores: per-frame J shown on each tile's label.

    Returns:
      ``(image uint8 [H', W', 3], layout)``; ``layout[t] = (x0, y0, scale)``: frame ``t``'s pixel ``(y, x)``
      is drawn at ``(y0 + y * scale, x0 + x * scale)`` of the image.
    """
    from PIL import Image, ImageDraw

    frames, pred = np.asarray(frames), np.asarray(pred, bool)
    if pred.shape != frames.shape[:3] or (gt is not None and np.shape(gt) != pred.shape):
        raise ValueError(f"frames {frames.shape}, prediction {pred.shape} and GT {np.shape(gt)} disagree")
    idx = pick_frames(len(frames), keyframes, max_frames)
    keys = {int(k) for k in keyframes}
    tiles = [_resize(overlay_frame(frames[t], pred[t], None if gt is None else gt[t]), tile_width) for t in idx]
    th, tw = tiles[0][0].shape[:2]
    font, small = _font(20), _font(16)
    label_h, pad = 26, 6
    cols = max(1, min(columns, len(idx)))
    rows = math.ceil(len(idx) / cols)
    width = cols * tw + (cols + 1) * pad
    legend_h = 26
    lines = _wrap(title, font, width - 2 * pad) + ([subtitle] if subtitle else [])
    head = pad + 26 * len(lines) + legend_h + pad
    sheet = Image.new("RGB", (width, head + rows * (label_h + th + pad)), (18, 18, 18))
    draw = ImageDraw.Draw(sheet)
    y = pad
    for line in lines:
        draw.text((pad, y), line, fill=(255, 255, 255), font=font)
        y += 26
    x = pad
    for colour, text in ((PRED_COLOUR, "prediction"), (GT_COLOUR, "ground truth (outline; tint = missed)")):
        if colour == GT_COLOUR and gt is None:
            continue
        draw.rectangle((x, y + 3, x + 16, y + 19), fill=colour)
        draw.text((x + 22, y + 1), text, fill=(230, 230, 230), font=small)
        x += 22 + int(draw.textlength(text, font=small)) + 24
    draw.text((x, y + 1), "yellow label: a keyframe System 1 chose", fill=(255, 230, 0), font=small)
    layout: dict[int, tuple[int, int, float]] = {}
    for k, (t, (tile, scale)) in enumerate(zip(idx, tiles)):
        x0 = pad + (k % cols) * (tw + pad)
        y0 = head + (k // cols) * (label_h + th + pad)
        label = f"frame {t}{' (keyframe)' if t in keys else ''}"
        if frame_scores is not None:
            label += f"   J={float(frame_scores[t]):.2f}"
        draw.text((x0 + 2, y0 + 3), label, fill=(255, 230, 0) if t in keys else (255, 255, 255), font=small)
        sheet.paste(Image.fromarray(tile), (x0, y0 + label_h))
        layout[t] = (x0, y0 + label_h, scale)
    return np.asarray(sheet), layout


def _wrap(text: str, font, width: int) -> list[str]:
    from PIL import Image, ImageDraw

    if not text:
        return []
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines, cur = [], ""
    for word in text.split():
        nxt = f"{cur} {word}".strip()
        if cur and draw.textlength(nxt, font=font) > width:
            lines.append(cur)
            cur = word
        else:
            cur = nxt
    return (lines + [cur])[:3]


def save_sheet(image: np.ndarray, path: str) -> str:
    """Write ``image`` as a PNG through a temporary file (no half-written figure)."""
    from PIL import Image

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}.png"
    Image.fromarray(image).save(tmp)
    os.replace(tmp, path)
    return path


def record_overlay(record, prediction, row: Mapping[str, Any], path: str) -> str:
    """The overlay PNG of one evaluated expression from its prediction (``.masks`` over the full video,
    ``.moments``) and its results row (J / F / per-frame J); frames and GT are read from the record."""
    # lazy: the two-system predictor pulls in jax and grain
    from omnir1_jax.evaluation.two_system import load_frames

    masks = np.asarray(prediction.masks, bool)
    frames = load_frames(record)
    gt = record.load_masks(list(range(record.num_frames)), *masks.shape[1:]) if record.masks is not None else None
    scores = [f"{k}={row[k]:.3f}" for k in ("J&F", "J", "F", "S") if isinstance(row.get(k), (int, float))]
    if isinstance(row.get("J"), float) and isinstance(row.get("F"), float) and "J&F" not in row:
        scores.insert(0, f"J&F={(row['J'] + row['F']) / 2:.3f}")
    valid = getattr(prediction, "valid", None)
    subtitle = "   ".join(
        scores
        + ([] if valid is None else [f"answer {'parsed' if valid else 'did not parse'}"])
        + [f"{record.video_id} / {record.exp_id}"]
    )
    keyframes = [m.video_index for m in getattr(prediction, "moments", [])]
    earlier = getattr(prediction, "earlier", None) or []
    turn = f"answer {len(earlier) + 1} of {len(earlier) + 1}: " if earlier else ""
    image, _ = overlay_sheet(
        frames,
        masks,
        gt,
        title=f'{turn}"{record.expression}"',
        subtitle=subtitle,
        keyframes=keyframes,
        frame_scores=row.get("J_frames"),
    )
    out = save_sheet(image, path)
    # multi-turn System 1: one sheet per earlier answer, its keyframes and masks (``<name>_turn<k>.png``)
    stem, ext = os.path.splitext(path)
    for k, (e, scored) in enumerate(zip(earlier, row.get("turns", [{}] * len(earlier)))):
        js = "   ".join(f"{m}={scored[m]:.3f}" for m in ("J", "F") if isinstance(scored.get(m), float))
        img, _ = overlay_sheet(
            frames,
            np.asarray(e.masks, bool),
            gt,
            title=f'answer {k + 1} of {len(earlier) + 1}: "{record.expression}"',
            subtitle=f"{js}   {record.video_id} / {record.exp_id}",
            keyframes=[m.video_index for m in e.moments],
        )
        save_sheet(img, f"{stem}_turn{k + 1}{ext}")
    return out


# -------------------------------------------------------------------------------------------- reward plot
def ema(values: Sequence[float], span: float) -> np.ndarray:
    """Bias-corrected exponential moving average with smoothing ``1 - 2 / (span + 1)`` (TensorBoard's kind)."""
    a = 1.0 - 2.0 / (float(span) + 1.0)
    out, acc = np.zeros(len(values)), 0.0
    for i, v in enumerate(values):
        acc = a * acc + (1 - a) * float(v)
        out[i] = acc / (1 - a ** (i + 1)) if a > 0 else float(v)
    return out


def reward_series(
    rows: Sequence[Mapping[str, Any]], weights: Mapping[str, float] | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``{name: (steps, raw, smoothed)}`` of what the reward plot shows: ``total`` and every component with a
    weight > 0 (``weights`` keyed by component name, ``format`` or ``reward/format``; None = the usual
    components present in ``rows``). Smoothing: :func:`ema` over about a tenth of the run (span 2..50)."""
    if weights is None:
        names = [n for n in DEFAULT_REWARDS if any(f"reward/{n}" in r for r in rows)]
    else:
        names = [k.split("/")[-1] for k, w in weights.items() if float(w) > 0 and k.split("/")[-1] != "total"]
    out = {}
    for name in ["total"] + names:
        pts = [
            (r["step"], float(r[f"reward/{name}"]))
            for r in rows
            if isinstance(r.get(f"reward/{name}"), (int, float)) and "step" in r
        ]
        if not pts:
            continue
        steps, raw = (np.asarray(x) for x in zip(*pts))
        out[name] = (steps, raw, ema(raw, min(50, max(2, len(raw) // 10))))
    return out


def reward_figure(
    rows: Sequence[Mapping[str, Any]],
    *,
    weights: Mapping[str, float] | None = None,
    evals: Sequence[tuple[int, float]] = (),
):
    """The matplotlib figure of :func:`plot_rewards` (the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = reward_series(rows, weights)
    fig, ax = plt.subplots(figsize=(10, 5.2))
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:cyan", "tab:olive")  # red: J&F
    for k, (name, (steps, raw, smooth)) in enumerate(series.items()):
        c = "black" if name == "total" else colours[(k - 1) % len(colours)]
        w = "" if weights is None or name == "total" else f" (weight {float(_weight(weights, name)):g})"
        ax.plot(steps, raw, color=c, alpha=0.25, lw=1, label=f"_{name} raw")
        ax.plot(steps, smooth, color=c, lw=2.4 if name == "total" else 1.8, label=f"{name}{w}")
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward over the batch (faint: per step, bold: smoothed)")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if evals:
        ax2 = ax.twinx()
        s, v = zip(*sorted((int(a), float(b)) for a, b in evals))
        ax2.plot(s, v, "D--", color="tab:red", ms=8, lw=1.2, label="J&F (evaluation)")
        for a, b in zip(s, v):
            ax2.annotate(
                f"{b:.3f}",
                (a, b),
                textcoords="offset points",
                xytext=(0, 10),
                ha="center",
                color="tab:red",
                fontsize=10,
                fontweight="bold",
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85),
            )
        ax2.set_ylabel("J&F", color="tab:red")
        ax2.set_ylim(0, 1.05)
        ax2.tick_params(axis="y", colors="tab:red")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper left", fontsize=9, framealpha=0.85)
    ax.set_title("rewards that count (weight > 0) and evaluations")
    fig.tight_layout()
    return fig


def _weight(weights: Mapping[str, float], name: str) -> float:
    return weights.get(name, weights.get(f"reward/{name}", 0.0))


def plot_rewards(
    metrics_path: str,
    png_path: str,
    *,
    weights: Mapping[str, float] | None = None,
    evals: Sequence[tuple[int, float]] = (),
) -> str | None:
    """Plot ``metrics.jsonl``: the total reward and the components whose weight is > 0, each as a faint raw
    line with a smoothed line over it, and the J&F evaluations ``(step, value)`` on a second axis. Returns the
    PNG path (None when there are no metrics yet)."""
    if not os.path.exists(metrics_path):
        return None
    rows = read_jsonl(metrics_path)
    if not rows:
        return None
    import matplotlib.pyplot as plt

    fig = reward_figure(rows, weights=weights, evals=evals)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(png_path)), exist_ok=True)
        tmp = f"{png_path}.tmp-{os.getpid()}.png"
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, png_path)
    finally:
        plt.close(fig)
    return png_path


def reward_weights(cfg, qa_weights=None) -> dict[str, float]:
    """The reward weights of an experiment by component name, for :func:`plot_rewards`. VOS: ``format``,
    ``keyframe``, ``alignment``, ``grounding`` from ``cfg.grpo.rewards``; CrossOmni QA (``data.task == "qa"``):
    ``format``, ``accuracy``, ``consistency``, ``coherence`` of ``qa_weights`` (default ``QARewardWeights()``)."""
    if cfg.data.task == "qa":
        # lazy: the QA rewards pull in jax
        from omnir1_jax.crossomni.rewards import QARewardWeights

        w = qa_weights or QARewardWeights()
        return {"format": w.format, "accuracy": w.accuracy, "consistency": w.consistency, "coherence": w.coherence}
    w = cfg.grpo.rewards
    return {"format": w.format, "keyframe": w.alpha_k, "alignment": w.alpha_a, "grounding": w.alpha_g}
