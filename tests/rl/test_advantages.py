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
