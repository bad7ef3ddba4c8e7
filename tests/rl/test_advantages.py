"""group_advantages against numpy."""

import jax.numpy as jnp
import numpy as np
import pytest

from omnir1_jax.rl import group_advantages, zero_variance_fraction


@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_group_advantages_against_numpy(scale, unbiased):
    rng = np.random.default_rng(0)
    g, n = 8, 4
    r = rng.normal(size=g * n).astype(np.float32)
    r[:g] = 0.5  # a zero-variance group
    grouped = r.reshape(n, g).astype(np.float64)
    ddof = 1 if unbiased else 0
    centred = grouped - grouped.mean(1, keepdims=True)
    if scale == "group":
        expected = centred / (grouped.std(1, ddof=ddof, keepdims=True) + 1e-4)
    elif scale == "batch":
        expected = centred / (r.astype(np.float64).std(ddof=ddof) + 1e-4)
    else:
        expected = centred
    got = np.asarray(group_advantages(jnp.asarray(r), g, scale, unbiased=unbiased))
    np.testing.assert_allclose(got, expected.reshape(-1), rtol=1e-5, atol=1e-5)
    assert np.all(got[:g] == 0.0)


def test_group_advantages_errors_and_zero_variance_fraction():
    with pytest.raises(ValueError, match="multiple"):
        group_advantages(jnp.ones(7), 4)
    with pytest.raises(ValueError, match="scale"):
        group_advantages(jnp.ones(8), 4, scale="bogus")
    with pytest.raises(ValueError, match="group_size >= 2"):
        group_advantages(jnp.ones(4), 1)
    r = jnp.asarray([1.0, 1.0, 0.0, 1.0, 2.0, 2.0])
    assert float(zero_variance_fraction(r, 2)) == pytest.approx(2 / 3)


@pytest.mark.parametrize("eps", [1e-4, 1e-6])
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_constant_group_gets_exactly_zero_advantage(eps, scale):
    # float32 mean(0.7 * 16) != 0.7, which used to give 1.19e-3 (eps 1e-4) / 0.106 (eps 1e-6).
    # A constant group carries no signal: the advantage is 0.0 exactly, for every eps and scale.
    r = np.concatenate([np.full(16, 0.7, np.float32), np.linspace(0.0, 1.0, 16, dtype=np.float32)])
    got = np.asarray(group_advantages(jnp.asarray(r), 16, scale, eps=eps))
    assert np.all(got[:16] == 0.0)
    assert np.any(got[16:] != 0.0)  # the other group is still scored


def test_near_constant_group_keeps_its_exact_differences():
    # 15 rewards of 0.7 and one of 0.7 + 2**-20 (exact in float32): the population std is (2**-20)*sqrt(15)/16
    # and the centred values are -2**-20/16 and 15 * 2**-20 / 16; with eps = 0 the advantages are
    # -1/sqrt(15) and sqrt(15), computed here in float64 by hand.
    d = 2.0**-20
    r = np.full(16, 0.7, np.float32)
    r[3] = np.float32(np.float32(0.7) + np.float32(d))
    assert float(r[3]) - float(r[0]) == d
    got = np.asarray(group_advantages(jnp.asarray(r), 16, "group", eps=0.0, unbiased=False))
    expected = np.full(16, -1 / np.sqrt(15))
    expected[3] = np.sqrt(15)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
