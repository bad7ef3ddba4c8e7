"""Evaluation on a held-out split and the run's figures: reward components per step, mask overlays."""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from omnir1_jax.runtime.metrics import read_jsonl

REWARD_KEYS = ("reward/total", "reward/format", "reward/keyframe", "reward/alignment", "reward/grounding")


def evaluate_split(cfg, policy, tokenizer, records, bridge, *, tag: str, max_expressions: int | None = None,
                   overlays: int = 3) -> dict[str, Any]:
    """J&F of the two-system pipeline on ``records`` (benchmark protocol, full videos); writes
    ``<out_dir>/eval_<tag>.jsonl`` (per expression) and ``eval_<tag>.json`` (the summary), and overlay PNGs of
    the first ``overlays`` expressions under ``overlays_<tag>/``. In a multi-process run every process evaluates
    the whole split with its own replica and bridge (the replicas are equal) and only process 0 writes."""
    import jax

    from omnir1_jax.eval.runner import evaluate_vos
    from omnir1_jax.runtime import setup as S
    from omnir1_jax.policy import eos_ids_of

    limit = max_expressions or cfg.run.eval_max_expressions or None
    recs = [r for r in records if r.masks is not None][: limit]
    rows: list[dict] = []
    pcfg = S.pipeline_config(cfg.data, train=False, seed=cfg.run.seed, batch_size=cfg.data.batch_size, num_epochs=1)
    acc = evaluate_vos(policy, tokenizer, recs, bridge.client, pipeline_config=pcfg,
                       max_new_tokens=cfg.grpo.max_new_tokens, eos_ids=eos_ids_of(tokenizer),
                       pad_id=tokenizer.pad_token_id or 0, on_expression=rows.append)
    out = cfg.run.out_dir
    summary = acc.summary()
    result = {"J&F": float(summary["overall"]["J&F"]), "J": float(summary["overall"]["J"]),
              "F": float(summary["overall"]["F"]), "count": int(summary["all"]["count"]), "table": summary,
              "valid_answers": float(np.mean([r["valid"] for r in rows])) if rows else 0.0}
    if jax.process_index() != 0:
        return result
    acc.write_jsonl(os.path.join(out, f"eval_{tag}.jsonl"))
    with open(os.path.join(out, f"eval_{tag}_answers.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    with open(os.path.join(out, f"eval_{tag}.json"), "w") as f:
        json.dump(result, f, indent=1, default=float)
    if overlays:
        by_key = {r.key: r for r in recs}
        save_overlays([by_key[r["id"]] for r in rows[:overlays]], rows[:overlays], bridge,
                      os.path.join(out, f"overlays_{tag}"))
    return result


def overlay(frame: np.ndarray, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """RGB frame with the prediction tinted green, the GT outline red."""
    out = frame.astype(np.float32).copy()
    out[pred] = 0.5 * out[pred] + 0.5 * np.array([40, 220, 60])
    edge = gt & ~(np.roll(gt, 1, 0) & np.roll(gt, -1, 0) & np.roll(gt, 1, 1) & np.roll(gt, -1, 1))
    out[edge] = (230, 30, 30)
    return out.clip(0, 255).astype(np.uint8)


def save_overlays(records: Sequence[Any], rows: Sequence[dict], bridge, directory: str, columns: int = 6) -> list[str]:
    """One contact-sheet PNG per expression: up to ``columns`` evenly spaced frames with prediction / GT."""
    from PIL import Image, ImageDraw

    from omnir1_jax.eval.runner import load_frames
    from sam2_bridge.protocol import Keyframe

    os.makedirs(directory, exist_ok=True)
    paths = []
    for rec, row in zip(records, rows):
        frames = load_frames(rec)
        queries = [Keyframe(f, d) for f, d in zip(row["keyframes"], row["descriptions"])]
        res = bridge.client.submit_group(frames, [queries]).result().raise_for_status()
        pred = np.asarray(res.rollouts[0].masks, bool)
        gt = rec.load_masks(list(range(rec.num_frames)), *pred.shape[1:])
        idx = np.linspace(0, rec.num_frames - 1, min(columns, rec.num_frames)).round().astype(int)
        tiles = [overlay(frames[i], pred[i], gt[i]) for i in idx]
        sheet = Image.fromarray(np.concatenate(tiles, axis=1))
        ImageDraw.Draw(sheet).text((4, 4), f"{rec.expression} | J={row['J']:.2f} F={row['F']:.2f}", fill=(255, 255, 0))
        path = os.path.join(directory, f"{rec.video_id.replace('/', '_')}_{rec.exp_id}.png")
        sheet.save(path)
        paths.append(path)
    return paths


def plot_rewards(metrics_path: str, png_path: str, keys: Sequence[str] = REWARD_KEYS) -> str | None:
    """Reward components (mean per step) against the step; returns the PNG path (None without metrics)."""
    if not os.path.exists(metrics_path):
        return None
    rows = read_jsonl(metrics_path)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for k in keys:
        pts = [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float))]
        if pts:
            s, v = zip(*pts)
            ax.plot(s, v, label=k.split("/")[-1])
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("mean reward over the batch")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
