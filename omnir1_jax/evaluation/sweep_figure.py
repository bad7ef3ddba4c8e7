"""The figure of a sweep (``sweep.png``): per arm, each seed's reward curve and evaluation curve (thin lines)
with their mean and a 95 % bootstrap CI band, and the final metric of every arm as an interval plot (mean and
CI, each seed a dot)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from omnir1_jax.runtime.metrics import read_jsonl


def _band(curves: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-column 95 % percentile-bootstrap CI of the mean of ``curves [seeds, steps]``."""
    from scipy import stats

    if curves.shape[0] < 2:
        return curves[0], curves[0]
    res = stats.bootstrap(
        (curves,),
        np.mean,
        axis=0,
        vectorized=True,
        n_resamples=2000,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return np.asarray(res.confidence_interval.low), np.asarray(res.confidence_interval.high)


def reward_curves(seed_dirs: Mapping[str, str], key: str = "reward/total") -> tuple[np.ndarray, np.ndarray] | None:
    """``(steps, [seeds, steps])`` of ``key`` from each seed's ``metrics.jsonl``, cut to the shortest run."""
    series = []
    for d in seed_dirs.values():
        path = os.path.join(d, "metrics.jsonl")
        rows = [r for r in read_jsonl(path) if key in r] if os.path.exists(path) else []
        if rows:
            series.append(([int(r["step"]) for r in rows], [float(r[key]) for r in rows]))
    if not series:
        return None
    n = min(len(s[0]) for s in series)
    return np.asarray(series[0][0][:n]), np.asarray([s[1][:n] for s in series], np.float64)


def sweep_figure(sweep: dict, arm_dirs: Mapping[str, str], path: str) -> str:
    """Draw ``sweep.png`` (see the module docstring) from ``sweep.json``'s content and each arm's directory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(sweep["arms"])
    metric = sweep["metric"]
    fig = plt.figure(figsize=(11, 3.0 * len(names) + 3.0))
    grid = fig.add_gridspec(len(names) + 1, 2)
    for i, name in enumerate(names):
        arm = sweep["arms"][name]
        dirs = {k: os.path.join(arm_dirs[name], f"seed{k}") for k in arm["seeds"]}
        ax = fig.add_subplot(grid[i, 0])
        got = reward_curves(dirs)
        if got is not None:
            steps, curves = got
            for c in curves:
                ax.plot(steps, c, lw=0.6, alpha=0.35, color="tab:blue")
            lo, hi = _band(curves)
            ax.fill_between(steps, lo, hi, alpha=0.25, color="tab:blue", lw=0)
            ax.plot(steps, curves.mean(0), color="tab:blue", lw=1.6, label=f"mean of {len(curves)} seeds")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_title(f"{name}: total reward per step", fontsize=9)
        ax.set_xlabel("GRPO step")
        ax = fig.add_subplot(grid[i, 1])
        evals = []
        for r in arm["seeds"].values():
            pts = (
                ([(0, r["before"])] if r["before"] is not None else [])
                + [tuple(e) for e in r.get("evals", [])]
                + [(r.get("steps") or 0, r["after"])]
            )
            pts = sorted({int(s): float(v) for s, v in pts}.items())
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "-o", lw=0.6, ms=2, alpha=0.4, color="tab:green")
            evals.append(pts)
        same = evals and len({tuple(s for s, _ in e) for e in evals}) == 1
        if same:
            xs = [s for s, _ in evals[0]]
            curves = np.asarray([[v for _, v in e] for e in evals])
            lo, hi = _band(curves)
            ax.fill_between(xs, lo, hi, alpha=0.25, color="tab:green", lw=0)
            ax.plot(xs, curves.mean(0), "-o", color="tab:green", lw=1.6, ms=3, label="mean")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_title(f"{name}: {metric} (step 0 = after SFT)", fontsize=9)
        ax.set_xlabel("GRPO step")
    ax = fig.add_subplot(grid[len(names), :])
    for j, name in enumerate(names):
        arm = sweep["arms"][name]
        vals = [v["after"] for v in arm["seeds"].values()]
        ax.scatter(np.full(len(vals), j) + np.linspace(-0.08, 0.08, len(vals)), vals, s=12, color="gray", zorder=3)
        if "mean_after" in arm:
            lo, hi = arm["ci_after"]
            ax.errorbar(
                [j],
                [arm["mean_after"]],
                yerr=[[arm["mean_after"] - lo], [hi - arm["mean_after"]]],
                fmt="D",
                color="black",
                capsize=6,
                zorder=4,
            )
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel(f"{metric} after GRPO")
    ax.set_title("final metric per arm: seeds (dots), mean and 95 % bootstrap CI", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
