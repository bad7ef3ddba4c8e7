"""Multi-seed statistics (omnir1_jax.evaluation.metrics.stats): intervals are scipy's bootstrap's own, the point
statistics are hand-computed, and the paired comparison finds a known shift and no shift where there is none."""

import numpy as np
import pytest
from scipy import stats as st

from omnir1_jax.evaluation.metrics.stats import (
    format_interval,
    iqm,
    paired_difference,
    probability_of_improvement,
    summarize,
)


def test_mean_interval_is_the_librarys_percentile_bootstrap():
    x = np.array([0.61, 0.72, 0.68, 0.80, 0.75])
    got = summarize(x, seed=3)
    lib = st.bootstrap(
        (x,), np.mean, confidence_level=0.95, n_resamples=10_000, method="percentile", rng=np.random.default_rng(3)
    )
    assert got["ci"] == pytest.approx([lib.confidence_interval.low, lib.confidence_interval.high], abs=1e-12)
    assert got["mean"] == pytest.approx(0.712)  # (0.61 + 0.72 + 0.68 + 0.80 + 0.75) / 5
    assert got["n"] == 5 and got["min"] == 0.61 and got["max"] == 0.80


def test_interval_of_a_known_normal_sample_has_the_textbook_width():
    x = np.random.default_rng(0).normal(0.0, 1.0, 400)
    lo, hi = summarize(x)["ci"]
    assert lo < 0.0 < hi
    # the normal-theory 95 % interval of a mean of 400 N(0, 1) draws is +-1.96 / 20 = +-0.098
    assert (hi - lo) == pytest.approx(2 * 1.96 / 20, rel=0.12)


def test_iqm_is_the_mean_of_the_middle_half():
    assert float(iqm([1, 2, 3, 4, 5, 6, 7, 8])) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert float(iqm([100, 2, 3, 4, 5, 6, 7, -50])) == pytest.approx(4.5)  # outliers cut


def test_probability_of_improvement_counts_pairs_and_half_ties():
    # pairs (x_i, y_j): 1>0; 2=2 twice (1/2 each), 2>0; 3>2, 3>2, 3>0 -> (5 + 2 * 0.5) / 9
    assert float(probability_of_improvement([1, 2, 3], [2, 2, 0])) == pytest.approx(6 / 9)
    assert float(probability_of_improvement([5, 6], [1, 2])) == 1.0


def test_paired_difference_detects_a_known_shift_and_not_a_null_one():
    rng = np.random.default_rng(1)
    a = rng.normal(0.6, 0.1, 8)  # per-seed values that vary a lot from seed to seed
    shifted = paired_difference(a, a + 0.05 + rng.normal(0, 0.005, 8))
    assert shifted["ci"][0] > 0.0 and shifted["ci"][0] < 0.05 < shifted["ci"][1]
    assert shifted["mean"] == pytest.approx(0.05, abs=0.01)
    null = paired_difference(a, a + rng.normal(0, 0.005, 8))
    assert null["ci"][0] < 0.0 < null["ci"][1]
    # unpaired, the same shift is hidden in the seed-to-seed spread: P(b > a) stays near one half
    assert 0.3 < shifted["prob_improvement"] < 0.9
    lib = st.bootstrap(
        (a + 0.05, a),
        probability_of_improvement,
        paired=True,
        vectorized=True,
        n_resamples=10_000,
        method="percentile",
        rng=np.random.default_rng(0),
    )
    same = paired_difference(a, a + 0.05)
    assert same["prob_improvement_ci"] == pytest.approx([lib.confidence_interval.low, lib.confidence_interval.high])


def test_one_seed_is_labelled_as_one():
    s = summarize([0.7])
    assert s["ci"] == [0.7, 0.7] and format_interval(s) == "0.700 (1 seed)"
    with pytest.raises(ValueError):
        paired_difference([0.1, 0.2], [0.3])
