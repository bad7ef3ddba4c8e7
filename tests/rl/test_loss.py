"""grpo_loss and its gradient against an independent torch transcription of the same formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


def torch_grpo(logps, old, ref, adv, mask, eps_low, eps_high, beta, kl, agg, max_len=None):
    """Written from the formula in SPEC section 4, independently of the JAX code."""
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
        mask[i, rng.integers(1, t):] = 0.0
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
        return grpo_loss(lp, old, ref, adv, mask, epsilon_low=el, epsilon_high=eh, beta=beta, kl=kl, agg=agg,
                         max_len=max_len)[0]

    loss, grad = jax.value_and_grad(f)(jnp.asarray(logps))
    lp_t = torch.tensor(logps, dtype=torch.float64, requires_grad=True)
    ref_loss = torch_grpo(lp_t, torch.tensor(old, dtype=torch.float64), torch.tensor(ref, dtype=torch.float64),
                          torch.tensor(adv, dtype=torch.float64), torch.tensor(mask, dtype=torch.float64), el, eh,
                          beta, kl, agg, max_len)
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
    assert 0 < low and 0 < high  # the inputs do exercise both clips


def test_on_policy_gradient_is_advantage_weighted_logprob():
    from omnir1_jax.rl import grpo_loss

    logps, _, _, adv, mask = _inputs(5)
    g = jax.grad(lambda lp: grpo_loss(lp, None, None, adv, mask, beta=0.0, agg="token_mean")[0])(jnp.asarray(logps))
    np.testing.assert_allclose(np.asarray(g), -adv[:, None] * mask / mask.sum(), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="ref_logps"):
        grpo_loss(logps, None, None, adv, mask, beta=0.04)
