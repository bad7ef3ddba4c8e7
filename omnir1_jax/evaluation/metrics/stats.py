"""Statistics over seeds: what a multi-seed figure reports (Agarwal et al., NeurIPS 2021, "Deep RL at the Edge
of the Statistical Precipice").

For one arm's per-seed values: the mean and the interquartile mean (IQM: the mean of the middle 50 %, robust to
one odd seed), each with a 95 % percentile-bootstrap confidence interval. For two arms run on the same seeds:
the paired difference (its mean and bootstrap CI, seeds resampled in pairs) and the probability of improvement
P(X > Y) (each value of one arm against each of the other, ties counting one half: the Mann-Whitney U statistic
over n x m, as rliable defines it) with its bootstrap CI. Every interval comes from
``scipy.stats.bootstrap`` (percentile method: the bias-corrected BCa interval is undefined for the constant
samples a small sweep can produce); nothing is resampled by hand. ``n_resamples`` and the seed are fixed so a
table is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as _st

CONFIDENCE = 0.95
N_RESAMPLES = 10_000


def iqm(values: ArrayLike, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the values between the 25th and the 75th percentile (``trim_mean``
    cutting a quarter at each end)."""
    return _st.trim_mean(np.asarray(values, np.float64), 0.25, axis=axis)


def _interval(
    samples: tuple,
    statistic,
    *,
    paired: bool = False,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
) -> tuple[float, float]:
    if any(len(s) < 2 for s in samples):
        v = float(statistic(*samples, axis=-1))
        return (v, v)  # one seed: no interval (reported as a point, labelled as one seed by the callers)
    res = _st.bootstrap(
        samples,
        statistic,
        paired=paired,
        vectorized=True,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    lo, hi = res.confidence_interval
    return float(lo), float(hi)


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def summarize(values: Sequence[float], *, seed: int = 0) -> dict:
    """``{"n", "mean", "ci", "iqm", "iqm_ci", "std", "min", "max"}`` of one arm's per-seed values (95 % CIs)."""
    x = np.asarray(values, np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"need a non-empty 1-D list of per-seed values, got shape {x.shape}")
    return {
        "n": len(x),
        "mean": float(x.mean()),
        "ci": list(_interval((x,), _mean, seed=seed)),
        "iqm": float(iqm(x)),
        "iqm_ci": list(_interval((x,), iqm, seed=seed)),
        "std": float(x.std(ddof=1)) if len(x) > 1 else 0.0,
        "min": float(x.min()),
        "max": float(x.max()),
    }


def probability_of_improvement(x: ArrayLike, y: ArrayLike, axis: int = -1) -> np.ndarray:
    """P(X > Y): the fraction of (x_i, y_j) pairs with x_i > y_j, ties counted one half (Mann-Whitney U / nm)."""
    xs = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    ys = np.moveaxis(np.asarray(y, np.float64), axis, -1)
    gt = (xs[..., :, None] > ys[..., None, :]).mean(axis=(-2, -1))
    eq = (xs[..., :, None] == ys[..., None, :]).mean(axis=(-2, -1))
    return gt + 0.5 * eq


def paired_difference(a: Sequence[float], b: Sequence[float], *, seed: int = 0) -> dict:
    """Arm ``b`` against arm ``a`` on the same seeds (``a[k]``, ``b[k]`` from seed k): ``{"n", "mean", "ci"}`` of
    ``b - a`` (seeds resampled in pairs) and ``prob_improvement`` P(b > a) with its ``prob_improvement_ci``."""
    xa, xb = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if xa.shape != xb.shape or xa.ndim != 1 or len(xa) == 0:
        raise ValueError(f"paired arms need per-seed values of the same seeds, got {xa.shape} and {xb.shape}")
    diff = xb - xa
    return {
        "n": len(xa),
        "mean": float(diff.mean()),
        "ci": list(_interval((diff,), _mean, seed=seed)),
        "prob_improvement": float(probability_of_improvement(xb, xa)),
        "prob_improvement_ci": list(_interval((xb, xa), probability_of_improvement, paired=True, seed=seed)),
    }


def format_interval(s: dict, digits: int = 3) -> str:
    """``0.812 [0.774, 0.851]`` (a summary's mean and CI); one value alone is labelled ``(1 seed)``."""
    if s.get("n", 2) < 2:
        return f"{s['mean']:.{digits}f} (1 seed)"
    lo, hi = s["ci"]
    return f"{s['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
