"""grpo_loss and its gradient against an independent torch transcription of the same formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


def torch_grpo(logps, old, ref, adv, mask, eps_low, eps_high, beta, kl, agg, max_len=None):
    """Written from the formulas of docs/design.md §4.3–4.5, independently of the JAX code."""
    ratio = torch.exp(torch.clamp(logps - old, -20.0, 20.0))
    a = adv.unsqueeze(1)
    surrogate = torch.minimum(ratio * a, torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * a)
    per_tok = -surrogate
    if beta > 0:
        d = ref - logps
        k = {"k3": torch.exp(d) - d - 1, "k1": -d, "k2": 0.5 * d * d}[kl]
        per_tok = per_tok + beta * k
    if agg == "seq_mean_token_mean":
        return ((per_tok * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
    if agg == "token_mean":
        return (per_tok * mask).sum() / mask.sum().clamp(min=1)
    length = mask.shape[1] if max_len is None else max_len
    return (per_tok * mask).sum() / (mask.shape[0] * length)


def _inputs(seed, b=6, t=11):
    rng = np.random.default_rng(seed)
    logps = rng.normal(-2.0, 1.0, (b, t)).astype(np.float32)
    old = (logps + rng.normal(0, 0.3, (b, t))).astype(np.float32)  # ratios well outside [0.8, 1.2] for many tokens
    ref = (logps + rng.normal(0, 0.5, (b, t))).astype(np.float32)
    adv = rng.normal(size=b).astype(np.float32)
    mask = np.ones((b, t), np.float32)
    for i in range(b):
        mask[i, rng.integers(1, t) :] = 0.0
    return logps, old, ref, adv, mask


CASES = [
    ("seq_mean_token_mean", 0.2, 0.2, 0.04, "k3", None),
    ("token_mean", 0.2, 0.28, 0.04, "k3", None),
    ("seq_mean_token_sum_norm", 0.1, 0.3, 0.0, "k3", None),
    ("seq_mean_token_sum_norm", 0.2, 0.2, 0.04, "k1", 20),
    ("token_mean", 0.2, 0.2, 0.5, "k2", None),
    ("seq_mean_token_mean", 0.3, 0.1, 0.0, "k1", None),
]


@pytest.mark.parametrize("agg, el, eh, beta, kl, max_len", CASES)
def test_loss_and_gradient_match_torch(agg, el, eh, beta, kl, max_len):
    from omnir1_jax.rl import grpo_loss

    logps, old, ref, adv, mask = _inputs(hash((agg, el, eh, beta, kl)) % 1000)

    def f(lp):
        return grpo_loss(
            lp, old, ref, adv, mask, epsilon_low=el, epsilon_high=eh, beta=beta, kl=kl, agg=agg, max_len=max_len
        )[0]

    loss, grad = jax.value_and_grad(f)(jnp.asarray(logps))
    lp_t = torch.tensor(logps, dtype=torch.float64, requires_grad=True)
    ref_loss = torch_grpo(
        lp_t,
        torch.tensor(old, dtype=torch.float64),
        torch.tensor(ref, dtype=torch.float64),
        torch.tensor(adv, dtype=torch.float64),
        torch.tensor(mask, dtype=torch.float64),
        el,
        eh,
        beta,
        kl,
        agg,
        max_len,
    )
    ref_loss.backward()
    np.testing.assert_allclose(float(loss), ref_loss.item(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(grad), lp_t.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_metrics_clip_fractions_and_kl():
    from omnir1_jax.rl import grpo_loss

    logps, old, ref, adv, mask = _inputs(3)
    old = (logps + np.random.default_rng(9).normal(0, 0.6, logps.shape)).astype(np.float32)
    adv = np.array([1.0, -1.0, 0.7, -0.4, 0.5, -1.5], np.float32)
    _, m = grpo_loss(logps, old, ref, adv, mask, epsilon_low=0.2, epsilon_high=0.28)
    ratio = np.exp(logps - old)
    a = np.broadcast_to(adv[:, None], ratio.shape)
    sel = mask > 0
    low = ((ratio < 0.8) & (a < 0))[sel].mean()
    high = ((ratio > 1.28) & (a > 0))[sel].mean()
    d = ref - logps
    assert float(m["clip_frac_low"]) == pytest.approx(low, abs=1e-6)
    assert float(m["clip_frac_high"]) == pytest.approx(high, abs=1e-6)
    assert float(m["kl_mean"]) == pytest.approx((np.exp(d) - d - 1)[sel].mean(), rel=1e-5)
    assert float(m["ratio_min"]) == pytest.approx(ratio[sel].min(), rel=1e-5)
    assert float(m["ratio_max"]) == pytest.approx(ratio[sel].max(), rel=1e-5)
    assert float(m["num_tokens"]) == sel.sum()
    assert low > 0 and high > 0  # the inputs do exercise both clips


def test_on_policy_gradient_is_advantage_weighted_logprob():
    from omnir1_jax.rl import grpo_loss

    logps, _, _, adv, mask = _inputs(5)
    g = jax.grad(lambda lp: grpo_loss(lp, None, None, adv, mask, beta=0.0, agg="token_mean")[0])(jnp.asarray(logps))
    np.testing.assert_allclose(np.asarray(g), -adv[:, None] * mask / mask.sum(), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="ref_logps"):
        grpo_loss(logps, None, None, adv, mask, beta=0.04)


def _k3_unclamped(logp, ref):
    d = ref - logp
    return jnp.exp(d) - d - 1.0


@pytest.mark.parametrize("delta", [-30.0, -3.0, 0.0, 0.5, 5.0, 19.5])
def test_k3_gradient_below_the_clamp_is_autograd_of_the_exact_formula(delta):
    from omnir1_jax.rl import kl_estimate

    logp = jnp.float32(-1.0)
    ref = logp + delta
    got = jax.grad(lambda x: kl_estimate(x[None, None], ref[None, None], "k3")[0, 0])(logp)
    want = jax.grad(_k3_unclamped)(logp, ref)  # the unclamped formula, finite here
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    assert float(want) == pytest.approx(1.0 - np.exp(delta), rel=1e-4)  # d/dlogp of k3 by hand
    value = kl_estimate(logp[None, None], ref[None, None], "k3")[0, 0]
    assert float(value) == pytest.approx(np.expm1(delta) - delta, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("delta", [20.5, 25.0, 60.0, 200.0])
def test_k3_gradient_past_the_clamp_keeps_the_true_sign(delta):
    # At ref - logp = 25 the old code gave +1 while the true gradient is 1 - e^25 ~ -7.2e10.
    from omnir1_jax.rl import LOG_RATIO_CLAMP, kl_estimate

    logp = jnp.float32(-1.0)
    ref = logp + delta
    got = float(jax.grad(lambda x: kl_estimate(x[None, None], ref[None, None], "k3")[0, 0])(logp))
    want = float(jax.grad(_k3_unclamped)(logp, ref))
    if np.isfinite(want):  # e^25, e^60 fit float32 ... e^200 overflows: the sign is then known by hand (negative)
        assert np.sign(got) == np.sign(want) == -1.0
        assert abs(got) <= abs(want)
    assert got < 0.0
    # The tangent continuation's slope: 1 - e^C, C = 20 (hand: 1 - 4.85165195e8)
    assert LOG_RATIO_CLAMP == 20.0
    assert got == pytest.approx(1.0 - 4.85165195e8, rel=1e-5)
    # The value stays finite and is continuous at the clamp
    v = float(kl_estimate(logp[None, None], ref[None, None], "k3")[0, 0])
    assert np.isfinite(v) and v == pytest.approx(np.exp(20.0) * (1 + delta - 20.0) - delta - 1.0, rel=1e-5)
