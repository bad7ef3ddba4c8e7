"""Exact resume, bridge death in the middle of a run, and NaN divergence.

Run A trains 4 steps uninterrupted; run B trains 1 step, checkpoints, and a new trainer object (built from a
*different* random policy, so everything must come from the checkpoint) restores and trains 3 more; run C is
run A again with the bridge server process SIGKILLed in the middle. All runs share the seed, so their losses
must agree exactly.
"""

from __future__ import annotations

import math
import os
import signal

import jax
import numpy as np
import pytest

from omnir1_jax.learner import TrainingDivergedError
from omnir1_jax.policy import build_policy
from omnir1_jax.runtime.bridge import open_bridge
from tests.train._tiny import losses, make_learner, params_of, perturb, tiny_config

pytestmark = pytest.mark.torch  # the bridge subprocess runs PyTorch

N, MORE = 1, 3


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    cfg = tiny_config(str(tmp / "syn"), str(tmp / "shared_bridge"))
    bridge = open_bridge(cfg.bridge, cfg.run.out_dir, data_roots=[cfg.data.root], wait_s=120)
    yield tmp, bridge
    bridge.close()


@pytest.fixture(scope="module")
def run_a(world):
    tmp, bridge = world
    cfg = tiny_config(str(tmp / "syn"), str(tmp / "a"), steps=N + MORE)
    tr = make_learner(cfg, bridge)
    perturb(tr.policy)
    try:
        history = tr.train(progress=False)
    finally:
        tr.close()
    return history


def test_resumed_run_matches_uninterrupted_run(world, run_a):
    tmp, bridge = world
    a = losses(run_a)
    # the runs are not trivially equal: the loss is non-zero and changes from step to step
    assert np.all(a != 0) and len(set(a.tolist())) == len(a)
    cfg = tiny_config(str(tmp / "syn"), str(tmp / "b"), steps=N + MORE, checkpoint_every=100, resume=True)
    first = make_learner(cfg, bridge)
    perturb(first.policy)
    try:
        h1 = first.train(N, progress=False)  # train() saves the final step
    finally:
        first.close()
    assert first.checkpointer.latest_step() == N
    np.testing.assert_array_equal(losses(h1), a[:N])

    other = build_policy(cfg.model, seed=99)  # not the policy the run started from
    second = make_learner(cfg, bridge, policy=other)
    try:
        assert second.step == N
        h2 = second.train(progress=False)
    finally:
        second.close()
    assert second.step == N + MORE and len(h2) == MORE
    np.testing.assert_allclose(losses(h2), a[N:], rtol=0, atol=1e-6)
    for key in ("reward/total", "kl_mean", "response_length", "entropy"):
        np.testing.assert_allclose([m[key] for m in h2], [m[key] for m in run_a[N:]], rtol=0, atol=1e-6, err_msg=key)


def test_bridge_server_killed_mid_run_is_restarted_and_no_step_is_lost(world, run_a):
    tmp, _ = world
    cfg = tiny_config(str(tmp / "syn"), str(tmp / "c"), steps=N + MORE)
    bridge = open_bridge(cfg.bridge, cfg.run.out_dir, data_roots=[cfg.data.root], wait_s=120)  # its own server
    tr = make_learner(cfg, bridge)
    perturb(tr.policy)
    killed = []
    try:
        client, server = bridge.client, bridge.server
        submit = client.submit_group

        def submit_killing_once(clip, rollouts, deadline_s=None):
            # step 2, first group: SIGKILL the whole server process, then query it (the query is in flight
            # while the client notices the death, restarts the server and re-sends)
            if tr.step == 1 and not killed:
                pid = server.proc.pid
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            return submit(clip, rollouts, deadline_s)

        client.submit_group = submit_killing_once
        history = tr.train(progress=False)
        new_pid = server.proc.pid
    finally:
        tr.close()
        bridge.close()
    assert killed and server.restarts == 1 and new_pid != killed[0]
    assert tr.step == N + MORE and len(history) == N + MORE
    assert all(math.isfinite(v) for m in history for v in m.values())
    # the retried step (and every later one) is the step an undisturbed run computes
    np.testing.assert_allclose(losses(history), losses(run_a), rtol=0, atol=1e-6)
    np.testing.assert_allclose([m["reward/total"] for m in history], [m["reward/total"] for m in run_a], atol=1e-6)


def test_nan_loss_stops_naming_the_step_and_leaves_the_last_checkpoint_restorable(world):
    tmp, bridge = world
    cfg = tiny_config(str(tmp / "syn"), str(tmp / "nan"), steps=3, checkpoint_every=1, resume=True)
    tr = make_learner(cfg, bridge)
    perturb(tr.policy)
    try:
        tr.train(1, progress=False)
        saved = params_of(tr.policy)
        norm = tr.policy.language_model.norm.weight  # one parameter poisoned -> NaN logits -> NaN loss
        norm[...] = norm[...] * np.nan
        with pytest.raises(TrainingDivergedError) as err:
            tr.train(progress=False)
    finally:
        tr.close()
    msg = str(err.value)
    assert "step 2" in msg and "loss" in msg and tr.checkpointer.directory in msg and "(step 1)" in msg
    assert tr.step == 1 and tr.checkpointer.latest_step() == 1
    fresh = make_learner(cfg, bridge, policy=build_policy(cfg.model, seed=5))
    try:
        assert fresh.step == 1
        restored = params_of(fresh.policy)
    finally:
        fresh.close()
    jax.tree.map(np.testing.assert_array_equal, restored, saved)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(restored))
