"""Benchmark: R_G + DAVIS J&F for one GRPO group, JAX (jit) vs the numpy reference, side by side.

One group = N rollouts x T frames x H x W (default 8 x 24 x 480 x 854, the paper's training clip at DAVIS
resolution). Per rollout we compute R_G (mean per-frame IoU) and J&F against the GT. The numpy path is the
reference implementation (``grounding_reward_numpy`` + ``db_eval_iou`` + ``db_eval_boundary``, per rollout);
the JAX path is ``grounding_reward`` + ``db_eval_jf_jax`` over the whole [N, T, H, W] batch, jit-compiled
(compile time reported separately, excluded from the steady-state figure).

    python benchmarks/bench_rewards.py [--rollouts 8 --frames 24 --height 480 --width 854 --repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from omnir1_jax.evaluation.metrics import db_eval_boundary, db_eval_iou
from omnir1_jax.evaluation.metrics.davis_jax import db_eval_jf_jax
from omnir1_jax.rewards.grounding import grounding_reward, grounding_reward_numpy


def moving_ellipses(rng, n_seq, t, h, w, jitter):
    """[n_seq, T, H, W] masks of an ellipse that drifts over the clip; rollouts jitter around the GT."""
    yy, xx = np.mgrid[:h, :w]
    cy0, cx0 = rng.uniform(0.3, 0.7) * h, rng.uniform(0.2, 0.5) * w
    out = np.zeros((n_seq, t, h, w), bool)
    for i in range(n_seq):
        dy, dx = rng.normal(0, jitter * h, 2) if i else (0.0, 0.0)
        ry, rx = h * rng.uniform(0.12, 0.2), w * rng.uniform(0.08, 0.15)
        for f in range(t):
            cy, cx = cy0 + dy, cx0 + dx + f * w * 0.4 / t
            out[i, f] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    return out


def numpy_path(pred, gt):
    rg = grounding_reward_numpy(pred, gt)
    j = np.stack([db_eval_iou(gt, p) for p in pred])
    f = np.stack([db_eval_boundary(gt, p) for p in pred])
    return rg, j.mean(1), f.mean(1)


@jax.jit
def _jax_path(pred, gt):
    rg = grounding_reward(pred, gt)
    j, f = db_eval_jf_jax(jnp.broadcast_to(gt, pred.shape), pred)
    return rg, j.mean(-1), f.mean(-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rollouts", type=int, default=8)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=854)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    masks = moving_ellipses(rng, args.rollouts + 1, args.frames, args.height, args.width, jitter=0.05)
    gt, pred = masks[0], masks[1:]
    print(
        f"group: {args.rollouts} rollouts x {args.frames} frames x {args.height}x{args.width}; "
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {platform.machine()}"
    )

    t0 = time.perf_counter()
    ref = numpy_path(pred, gt)
    numpy_times = [time.perf_counter() - t0]
    for _ in range(args.repeats - 1):
        t0 = time.perf_counter()
        numpy_path(pred, gt)
        numpy_times.append(time.perf_counter() - t0)

    pred_d, gt_d = jax.device_put(pred), jax.device_put(gt)
    t0 = time.perf_counter()
    out = jax.block_until_ready(_jax_path(pred_d, gt_d))
    compile_s = time.perf_counter() - t0
    jax_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(_jax_path(pred_d, gt_d))
        jax_times.append(time.perf_counter() - t0)

    err = max(float(np.abs(np.asarray(a) - b).max()) for a, b in zip(out, ref))
    t_np, t_jax = min(numpy_times), min(jax_times)
    print(f"numpy reference : {t_np * 1e3:9.1f} ms / group (best of {args.repeats})")
    print(
        f"jax jit         : {t_jax * 1e3:9.1f} ms / group (best of {args.repeats}; first call incl. compile "
        f"{compile_s:.1f} s)"
    )
    print(f"max |jax - numpy| over R_G, J, F: {err:.2e}")
    print(f"ratio numpy / jax: {t_np / t_jax:.1f}x")
    print(f"R_G per rollout: {np.round(ref[0], 3).tolist()}")


if __name__ == "__main__":
    main()
