"""Asynchronous rewards in a seed-parallel group (``run.seeds`` with ``grpo.overlap = "one_step"``).

Seed k of an overlapped 2-seed group computes what an overlapped learner of ``run.seed = k`` computes alone (the
same sampled tokens, pi_old and losses, to the rounding of batched matmuls), and a group resumed from checkpoints
taken mid-overlap continues as the uninterrupted group. Rewards are scripted from the text (no bridge). Seed k
starts from the tiny policy moved by noise of seed k (built once: every learner of seed k gets a clone of it).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from omnir1_jax.config import seed_config
from omnir1_jax.learner import Learner, grpo_stage
from omnir1_jax.policy import build_tokenizer
from omnir1_jax.seeds import SeedGroup
from omnir1_jax.tasks import make_task
from tests.train._tiny import params_of, perturb, tiny_config, tiny_policy
from tests.train.test_learner_precision import _Scripted

SEEDS, K, STEPS = (0, 1), 1, 3


def _base(tmp, out="run", **run):
    cfg = tiny_config(str(tmp / "syn"), str(tmp / out), steps=STEPS, **run)
    data = dataclasses.replace(cfg.data, synthetic_videos=6)  # 4-frame clips: one prompt shape, one compile
    return dataclasses.replace(
        cfg,
        data=data,
        grpo=dataclasses.replace(cfg.grpo, overlap="one_step"),
        run=dataclasses.replace(cfg.run, seeds=SEEDS),
    )


def _learner(cfg, policies):
    """Seed ``cfg.run.seed``'s learner, from a clone of that seed's policy."""
    tok = build_tokenizer(cfg.model)
    return Learner(
        cfg,
        _Scripted(make_task(cfg, tok)),
        grpo_stage(cfg, export=False),
        tokenizer=tok,
        policy=nnx.clone(policies[cfg.run.seed]),
    )


def _record(learner) -> list:
    seen, update = [], learner.update

    def record(ro):
        seen.append(ro)
        return update(ro)

    learner.update = record
    return seen


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("overlap_seeds")


@pytest.fixture(scope="module")
def policies():
    """Each seed's start: the tiny policy moved by noise of that seed (the seeds differ)."""
    out = {}
    for k in SEEDS:
        out[k] = tiny_policy()
        perturb(out[k], seed=100 + k)
    return out


@pytest.fixture(scope="module")
def group_run(tmp, policies):
    group = SeedGroup([_learner(seed_config(_base(tmp), k), policies) for k in SEEDS])
    try:
        steps, rollouts = [], []
        for _ in range(STEPS):
            steps.append(group.train_step())
            rollouts.append(group.learners[SEEDS.index(K)].last_rollout)
        yield steps, rollouts, params_of(group.learners[SEEDS.index(K)].model)
    finally:
        group.close()


def test_a_seed_of_an_overlapped_group_computes_what_it_computes_alone(tmp, policies, group_run):
    steps, rollouts, params = group_run
    cfg = seed_config(_base(tmp), K)
    alone = _learner(dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, out_dir=str(tmp / "alone"))), policies)
    seen = _record(alone)
    try:
        hist = [alone.train_step() for _ in range(STEPS)]
    finally:
        alone.close()
    k = SEEDS.index(K)
    assert [m[k]["overlap/policy_lag"] for m in steps] == [m["overlap/policy_lag"] for m in hist] == [0.0, 1.0, 1.0]
    for a, g in zip(seen, rollouts):
        n = min(np.shape(a.completion_ids)[1], np.shape(g.completion_ids)[1])
        mask = np.asarray(a.completion_mask)[:, :n].astype(bool)
        np.testing.assert_array_equal(np.asarray(a.lengths), np.asarray(g.lengths))
        np.testing.assert_array_equal(
            np.asarray(a.completion_ids)[:, :n][mask], np.asarray(g.completion_ids)[:, :n][mask]
        )
        np.testing.assert_allclose(
            np.asarray(g.old_logps)[:, :n][mask], np.asarray(a.old_logps)[:, :n][mask], atol=1e-5, rtol=0
        )
    assert hist[1]["loss"] != 0.0
    for m_alone, m_group in zip(hist, steps):
        for key in ("loss", "kl_mean", "grad_norm", "pg_loss", "reward/total"):
            np.testing.assert_allclose(m_group[k][key], m_alone[key], atol=1e-5, rtol=0, err_msg=key)
    diff = max(
        float(np.abs(x - y).max()) for x, y in zip(jax.tree.leaves(params_of(alone.model)), jax.tree.leaves(params))
    )
    assert diff <= 1e-5


def test_an_overlapped_group_resumes_mid_overlap_identically(tmp, policies, group_run):
    steps, _, _ = group_run
    cut = 1
    first = SeedGroup(
        [_learner(seed_config(_base(tmp, "resumed", checkpoint_every=1, resume=True), k), policies) for k in SEEDS]
    )
    try:
        first.train_step()
        for lr in first.learners:
            lr.record({})  # the checkpoint of step 1, batch 1 in flight
    finally:
        first.close()
    second = SeedGroup(
        [_learner(seed_config(_base(tmp, "resumed", checkpoint_every=1, resume=True), k), policies) for k in SEEDS]
    )
    try:
        assert second.step == cut and all(lr.overlap.inflight is not None for lr in second.learners)
        more = [second.train_step() for _ in range(STEPS - cut)]
    finally:
        second.close()
    for got, want in zip(more, steps[cut:]):
        for k in range(len(SEEDS)):
            for key in ("loss", "kl_mean", "grad_norm", "reward/total", "overlap/policy_lag"):
                assert got[k][key] == want[k][key], (k, key)
