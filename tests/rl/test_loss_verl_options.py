"""verl's dual clip (``clip_ratio_c``) and the empty-row divisor of ``seq_mean_token_mean`` (``empty_rows``):
values and gradients worked out by hand in the comments, micro-batch weights, config validation and the learner's
wiring (BENCHMARKS.md "Peers")."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omnir1_jax.config import ConfigError, GRPOSpec
from omnir1_jax.rl.loss import aggregate, grpo_loss
from omnir1_jax.rl.update import LossSpec, _share, loss_weight
from tests.train._tiny import TINY_MODEL

# Row 0 has A = -1 and ratios 5, 2, 0.5; row 1 has A = +1 and ratios 5, 1, 1 (eps 0.2, beta 0).
RATIOS = np.array([[5.0, 2.0, 0.5], [5.0, 1.0, 1.0]], np.float32)
ADV = np.array([-1.0, 1.0], np.float32)
MASK = np.ones((2, 3), np.float32)


def _loss(logps, c=None, **kw):
    old = jnp.zeros_like(logps)
    return grpo_loss(logps, old, None, ADV, MASK, epsilon_low=0.2, epsilon_high=0.2, beta=0.0, clip_ratio_c=c, **kw)


def test_dual_clip_values_by_hand():
    logps = jnp.log(jnp.asarray(RATIOS))
    # plain clip, A = -1: -min(rho A, clip(rho) A) = max(rho, clip(rho)) -> 5, 2, 0.8; A = +1: -min(rho, clip(rho))
    # -> -1.2, -1, -1. seq-mean-token-mean: ((5 + 2 + 0.8) / 3 + (-1.2 - 1 - 1) / 3) / 2 = (7.8 - 3.2) / 6
    plain, m0 = _loss(logps)
    assert float(plain) == pytest.approx((7.8 - 3.2) / 6, abs=1e-6)
    assert float(m0["clip_frac_dual"]) == 0.0
    # dual clip c = 3, A = -1: min(5, 3) = 3, min(2, 3) = 2, min(0.8, 3) = 0.8; A = +1 unchanged
    dual, m1 = _loss(logps, c=3.0)
    assert float(dual) == pytest.approx((5.8 - 3.2) / 6, abs=1e-6)
    assert float(m1["clip_frac_dual"]) == pytest.approx(1 / 6)  # one of the six tokens is held at -c A
    assert float(m1["pg_loss"]) == pytest.approx(float(dual), abs=1e-7)
    # c = 6 is above every such loss: no change
    assert float(_loss(logps, c=6.0)[0]) == pytest.approx(float(plain), abs=1e-7)


def test_dual_clip_gradient_by_hand():
    logps = jnp.log(jnp.asarray(RATIOS))
    # d/dlogp of the row-0 token 0 loss: plain, -rho A = rho = 5, times 1/(3 * 2) from the aggregation; with the dual
    # clip it is the constant -c A: 0. Token 1 (rho = 2, unclipped): 2 / 6 either way. Token 2 (rho = 0.5 < 0.8:
    # the clipped branch is the max, a constant): 0.
    g_plain = jax.grad(lambda lp: _loss(lp)[0])(logps)
    g_dual = jax.grad(lambda lp: _loss(lp, c=3.0)[0])(logps)
    np.testing.assert_allclose(np.asarray(g_plain[0]), [5 / 6, 2 / 6, 0.0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(g_dual[0]), [0.0, 2 / 6, 0.0], atol=1e-6)
    # A = +1 rows are untouched by the dual clip: rho = 5 is clipped (0), rho = 1 gives -rho A / 6 = -1/6
    np.testing.assert_allclose(np.asarray(g_dual[1]), np.asarray(g_plain[1]), atol=1e-7)
    np.testing.assert_allclose(np.asarray(g_dual[1]), [0.0, -1 / 6, -1 / 6], atol=1e-6)


@pytest.mark.parametrize("c", [1.0, 0.5, -3.0])
def test_dual_clip_bound_must_exceed_one(c):
    with pytest.raises(ValueError, match=rf"clip_ratio_c must be > 1 \(or None\), got {c}"):
        _loss(jnp.zeros((2, 3)), c=c)
    with pytest.raises(ConfigError, match="grpo.clip_ratio_c must be a number > 1"):
        GRPOSpec(clip_ratio_c=c)


# Per-token values: row 0 [1, 3] (mean 2), row 1 [4] (mean 4), row 2 empty, row 3 [6] (mean 6).
VALUES = np.array([[1.0, 3.0], [4.0, 9.0], [7.0, 7.0], [6.0, 8.0]], np.float32)
ROWMASK = np.array([[1, 1], [1, 0], [0, 0], [1, 0]], np.float32)


def test_empty_rows_divisor_by_hand():
    # batch (TRL): (2 + 4 + 0 + 6) / 4 = 3; nonempty (verl, tunix): 12 / 3 = 4
    assert float(aggregate(jnp.asarray(VALUES), jnp.asarray(ROWMASK), "seq_mean_token_mean")) == pytest.approx(3.0)
    got = aggregate(jnp.asarray(VALUES), jnp.asarray(ROWMASK), "seq_mean_token_mean", empty_rows="nonempty")
    assert float(got) == pytest.approx(4.0)
    # no row has a token: 0 either way (the divisor is at least 1)
    zero = jnp.zeros((2, 2))
    assert float(aggregate(jnp.ones((2, 2)), zero, "seq_mean_token_mean", empty_rows="nonempty")) == 0.0
    # the other modes do not look at empty_rows: token_mean (1 + 3 + 4 + 6) / 4 = 3.5
    assert float(aggregate(jnp.asarray(VALUES), jnp.asarray(ROWMASK), "token_mean", empty_rows="nonempty")) == 3.5
    with pytest.raises(ValueError, match="empty_rows must be 'batch' or 'nonempty', got 'all'"):
        aggregate(jnp.asarray(VALUES), jnp.asarray(ROWMASK), "seq_mean_token_mean", empty_rows="all")


def test_empty_rows_in_grpo_loss_on_policy():
    # on-policy, beta 0: every token's loss is -A; advantages 1, 2, 5, 3 -> row means -1, -2, (empty), -3
    adv = np.array([1.0, 2.0, 5.0, 3.0], np.float32)
    lp = jnp.zeros((4, 2))
    kw = dict(beta=0.0)
    batch, _ = grpo_loss(lp, None, None, adv, ROWMASK, **kw)
    nonempty, _ = grpo_loss(lp, None, None, adv, ROWMASK, empty_rows="nonempty", **kw)
    assert float(batch) == pytest.approx(-6 / 4)
    assert float(nonempty) == pytest.approx(-6 / 3)


def test_micro_batch_weights_of_nonempty_rows():
    # slices of two rows: [row 0, row 1] (2 non-empty rows) and [row 2, row 3] (1); 3 non-empty in all.
    # Slice losses (nonempty): (2 + 4) / 2 = 3 and 6 / 1 = 6; weighted 2/3 * 3 + 1/3 * 6 = 4 = the full loss.
    mask = jnp.asarray(ROWMASK)
    w1, w2 = (
        float(_share(mask[:2], mask, "seq_mean_token_mean", "nonempty")),
        float(_share(mask[2:], mask, "seq_mean_token_mean", "nonempty")),
    )
    assert (w1, w2) == pytest.approx((2 / 3, 1 / 3))
    assert w1 * 3.0 + w2 * 6.0 == pytest.approx(4.0)
    assert float(_share(mask[:2], mask, "seq_mean_token_mean")) == 0.5  # "batch": the share of rows
    spec = LossSpec(empty_rows="nonempty")
    assert loss_weight(mask, spec) == 3.0 and loss_weight(mask, LossSpec()) == 4.0


def test_config_validates_empty_rows_and_accepts_both():
    assert GRPOSpec(empty_rows="nonempty").empty_rows == "nonempty"
    assert GRPOSpec(clip_ratio_c=3).clip_ratio_c == 3
    with pytest.raises(ConfigError, match="grpo.empty_rows must be batch or nonempty, got 'rows'"):
        GRPOSpec(empty_rows="rows")


def test_learner_threads_both_options_into_its_loss(tmp_path):
    from omnir1_jax.config import DataSpec, ExperimentConfig, ModelSpec, OptimSpec, RunSpec
    from omnir1_jax.learner import Learner, grpo_stage
    from omnir1_jax.tasks.base import RecordBatches
    from omnir1_jax.tasks.base import Task as BaseTask

    class Task(BaseTask):
        name = "null"

        def batches(self, records, *, batch_size, seed, sft=False, share=(0, 1)):
            return RecordBatches(records, lambda chunk: {}, batch_size=batch_size, seed=seed, share=share)

    cfg = ExperimentConfig(
        model=ModelSpec(overrides=TINY_MODEL),
        data=DataSpec(batch_size=1),
        optim=OptimSpec(weight_decay=0.0),
        grpo=GRPOSpec(group_size=2, clip_ratio_c=3.0, empty_rows="nonempty"),
        run=RunSpec(out_dir=str(tmp_path), steps=1, resume=False),
    )
    learner = Learner(cfg, Task(), grpo_stage(cfg, export=False), records=["a", "b"])
    try:
        assert learner.loss_spec.clip_ratio_c == 3.0 and learner.loss_spec.empty_rows == "nonempty"
        assert learner.loss_spec.beta == 0.04 and learner.loss_spec.agg == "seq_mean_token_mean"
    finally:
        learner.close()
