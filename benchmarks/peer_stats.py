"""Statistics, table and figure of ``benchmarks/peer_grpo.py`` (numpy, scipy, matplotlib).

Definitions (per stack, over its seeds):

- final reward of a seed: the mean reward of its last ``FINAL_STEPS`` steps (each step's reward is a mean over
  its 32 completions, so one step alone is noisy); the stack's final reward is the mean over seeds, with a 95 %
  percentile bootstrap CI over seeds (``scipy.stats.bootstrap``, 10,000 resamples, fixed seed);
- probability of improvement P(A > B): the probability that a random seed of A ends above a random seed of B,
  ties counting half (the Mann-Whitney statistic / (n m), as rliable defines it), with a 95 % bootstrap CI
  resampling both stacks' seeds independently;
- curve band: per window of ``WINDOW`` steps, the mean over seeds of each seed's window mean, with its 95 %
  bootstrap CI; the learning goal compares our window means with each peer's bands (and reports in how many
  windows the two bands overlap);
- timing: medians over every step after the first ``SKIP`` (compilation / warm-up) of every seed: step time,
  update time (step - sampling - reward), sampling tokens/s (the step's completion tokens / its sampling time);
  peak RSS: the largest of the seeds' peaks. Ratios are stack / ours (for tokens/s, ours / stack, so that a
  ratio < 1 means "ours is better" in every column).
"""

from __future__ import annotations

import numpy as np

FINAL_STEPS = 10
WINDOW = 5
SKIP = 2
COLOURS = {"ours": "tab:blue", "tunix": "tab:green", "trl": "tab:red"}


def _ci(values, statistic=np.mean) -> tuple[float, float]:
    from scipy.stats import bootstrap

    x = np.asarray(values, np.float64)
    if x.size < 2 or np.ptp(x) == 0:
        v = float(statistic(x)) if x.size else float("nan")
        return (v, v) if x.size >= 2 else (float("nan"), float("nan"))
    res = bootstrap(
        (x,), statistic, confidence_level=0.95, n_resamples=10_000, method="percentile", random_state=0, vectorized=True
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _poi(x, y, axis=-1):
    x, y = np.moveaxis(np.asarray(x), axis, -1), np.moveaxis(np.asarray(y), axis, -1)
    gt = (x[..., :, None] > y[..., None, :]).mean(axis=(-2, -1))
    eq = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
    return gt + 0.5 * eq


def probability_of_improvement(a, b) -> dict[str, float]:
    """P(a seed of A ends above a seed of B) and its 95 % bootstrap CI (both samples resampled)."""
    from scipy.stats import bootstrap

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    p = float(_poi(a, b))
    if a.size < 2 or b.size < 2:
        return {"p": p, "low": float("nan"), "high": float("nan")}
    res = bootstrap(
        (a, b),
        _poi,
        paired=False,
        confidence_level=0.95,
        n_resamples=10_000,
        method="percentile",
        random_state=0,
        vectorized=True,
    )
    return {"p": p, "low": float(res.confidence_interval.low), "high": float(res.confidence_interval.high)}


def curves(stack_runs) -> np.ndarray:
    """Rewards ``[seeds, steps]`` (runs cut to the shortest)."""
    steps = min(len(r["steps"]) for r in stack_runs)
    return np.asarray([[row["reward"] for row in r["steps"][:steps]] for r in stack_runs], np.float64)


def windows(curve: np.ndarray) -> np.ndarray:
    """Window means ``[seeds, steps // WINDOW]``."""
    w = curve.shape[1] // WINDOW
    return curve[:, : w * WINDOW].reshape(curve.shape[0], w, WINDOW).mean(-1)


def timing(stack_runs) -> dict[str, float]:
    rows = [row for r in stack_runs for row in r["steps"][SKIP:]]
    step = np.asarray([x["t_step"] for x in rows])
    update = np.asarray([x["t_step"] - x["t_sample"] - x["t_reward"] for x in rows])
    tok_s = np.asarray([x["tokens"] / x["t_sample"] for x in rows if x["t_sample"] > 0])
    return {
        "step_s": float(np.median(step)),
        "update_s": float(np.median(update)),
        "sample_s": float(np.median([x["t_sample"] for x in rows])),
        "tokens_per_s": float(np.median(tok_s)) if tok_s.size else float("nan"),
        "peak_rss_mb": float(max(r["peak_rss_mb"] for r in stack_runs)),
        "wall_s": float(np.sum([r.get("wall_s", 0.0) for r in stack_runs])),
    }


def summarise(runs: dict[str, list[dict]], reference: str = "ours") -> dict:
    out: dict = {"stacks": {}, "poi": {}, "learning": {}, "speed": {}}
    finals = {}
    for stack, rs in runs.items():
        if not rs:
            continue
        c = curves(rs)
        final = c[:, -FINAL_STEPS:].mean(1)
        finals[stack] = final
        lo, hi = _ci(final)
        win = windows(c)
        bands = [_ci(win[:, j]) for j in range(win.shape[1])]
        out["stacks"][stack] = dict(
            timing(rs),
            seeds=[r["seed"] for r in rs],
            final_mean=float(final.mean()),
            final_low=lo,
            final_high=hi,
            final_per_seed=final.tolist(),
            first_mean=float(c[:, :FINAL_STEPS].mean()),
            window_mean=win.mean(0).tolist(),
            window_low=[b[0] for b in bands],
            window_high=[b[1] for b in bands],
            versions=rs[0].get("versions", {}),
        )
    names = list(finals)
    for a in names:
        for b in names:
            if a != b:
                out["poi"][f"{a}>{b}"] = probability_of_improvement(finals[a], finals[b])
    ref = out["stacks"].get(reference)
    if ref is not None:
        for stack, st in out["stacks"].items():
            if stack == reference:
                continue
            inside = [lo <= m <= hi for m, lo, hi in zip(ref["window_mean"], st["window_low"], st["window_high"])]
            overlap = [
                not (a_hi < b_lo or b_hi < a_lo)
                for a_lo, a_hi, b_lo, b_hi in zip(
                    ref["window_low"], ref["window_high"], st["window_low"], st["window_high"]
                )
            ]
            out["learning"][stack] = {
                "windows_inside": int(sum(inside)),
                "windows": len(inside),
                "bands_overlap": int(sum(overlap)),
                "outside_steps": [f"{j * WINDOW + 1}-{(j + 1) * WINDOW}" for j, ok in enumerate(inside) if not ok],
            }
            out["speed"][stack] = {
                "step_ratio": ref["step_s"] / st["step_s"],
                "update_ratio": ref["update_s"] / st["update_s"],
                "tokens_ratio": st["tokens_per_s"] / ref["tokens_per_s"],
                "rss_ratio": ref["peak_rss_mb"] / st["peak_rss_mb"],
            }
    return out


def table(summary: dict) -> str:
    st, sp = summary["stacks"], summary["speed"]
    lines = [
        "| stack | seeds | reward, first 10 steps | final reward (last 10 steps) [95 % CI] | median step s "
        "(ours / stack) | median update s (ours / stack) | sampling tok/s (stack / ours) | peak RSS MiB "
        "(ours / stack) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in st.items():
        r = sp.get(name)
        ratio = lambda k: f" ({r[k]:.2f})" if r else ""
        lines.append(
            f"| {name} | {len(s['seeds'])} | {s['first_mean']:.3f} | {s['final_mean']:.3f} "
            f"[{s['final_low']:.3f}, {s['final_high']:.3f}] | {s['step_s']:.3f}{ratio('step_ratio')} | "
            f"{s['update_s']:.3f}{ratio('update_ratio')} | {s['tokens_per_s']:.0f}{ratio('tokens_ratio')} | "
            f"{s['peak_rss_mb']:.0f}{ratio('rss_ratio')} |"
        )
    lines += ["", "| P(row ends above column) [95 % CI] | " + " | ".join(st) + " |", "|---|" + "---|" * len(st)]
    for a in st:
        cells = []
        for b in st:
            p = summary["poi"].get(f"{a}>{b}")
            cells.append("-" if p is None else f"{p['p']:.2f} [{p['low']:.2f}, {p['high']:.2f}]")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    if summary["learning"]:
        lines.append("")
        for name, g in summary["learning"].items():
            out = ", ".join(g["outside_steps"]) or "none"
            lines.append(
                f"- learning: our {WINDOW}-step mean reward inside {name}'s 95 % band in "
                f"{g['windows_inside']} of {g['windows']} windows (outside: steps {out}); the two bands "
                f"overlap in {g['bands_overlap']} of {g['windows']}"
            )
        for name, r in sp.items():
            goal = {"trl": 0.5, "tunix": 0.8}.get(name)
            verdict = "" if goal is None else (f"; goal <= {goal}: {'met' if r['step_ratio'] <= goal else 'NOT met'}")
            lines.append(f"- speed: our median step = {r['step_ratio']:.2f} x {name}'s{verdict}")
    return "\n".join(lines)


def plot(runs: dict[str, list[dict]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for stack, rs in runs.items():
        if not rs:
            continue
        c = curves(rs)
        kernel = np.ones(WINDOW) / WINDOW
        smooth = np.asarray([np.convolve(row, kernel, mode="valid") for row in c])
        x = np.arange(smooth.shape[1]) + WINDOW
        colour = COLOURS.get(stack)
        for row in smooth:
            ax.plot(x, row, color=colour, lw=0.6, alpha=0.35)
        bands = np.asarray([_ci(smooth[:, j]) for j in range(smooth.shape[1])])
        ax.fill_between(x, bands[:, 0], bands[:, 1], color=colour, alpha=0.2)
        ax.plot(x, smooth.mean(0), color=colour, lw=2.0, label=f"{stack} ({len(rs)} seeds)")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel(f"reward ({WINDOW}-step moving mean)")
    ax.set_title("Colour task: mean over seeds with 95 % bootstrap band; thin: seeds")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
