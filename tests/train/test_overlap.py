"""Asynchronous rewards (``grpo.overlap = "one_step"``, omnir1_jax/overlap.py) on the tiny policy with the bridge.

1. A 3-step overlapped run's sampled batches, rewards, pi_old and losses equal a reference loop that applies the
   one-step lag by hand: batch k + 1 is sampled by theta_k before theta_k is updated on batch k, and the update's
   pi_old is the sampler's log-probs.
2. A run resumed from a checkpoint taken mid-overlap (batch 2 sampled, not yet updated on) continues exactly as
   the uninterrupted run: the same tokens, rewards, losses and final parameters.
3. A synchronous learner restored from such a checkpoint samples the batch that was in flight again (the data
   iterator and the key are set back to before it); bad settings are config errors naming the field.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omnir1_jax import policy as P
from omnir1_jax.config import ConfigError, GRPOSpec
from omnir1_jax.overlap import META_KEY, read_meta
from omnir1_jax.rl.update import grpo_step
from omnir1_jax.runtime import setup as S
from omnir1_jax.runtime.checkpoint import key_to_data
from tests.train._tiny import losses, make_learner, params_of, perturb, tiny_config

pytestmark = pytest.mark.torch  # the bridge subprocess runs PyTorch

STEPS = 3


def _cfg(tmp, out, *, overlap="one_step", steps=STEPS, **run):
    cfg = tiny_config(str(tmp / "syn"), str(tmp / out), steps=steps, **run)
    return dataclasses.replace(cfg, grpo=dataclasses.replace(cfg.grpo, overlap=overlap))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("overlap")
    cfg = _cfg(tmp, "shared_bridge")
    bridge = S.open_bridge(cfg.bridge, cfg.run.out_dir, data_roots=[cfg.data.root], wait_s=120)
    yield tmp, bridge
    bridge.close()


class _TextBonus:
    """The VOS task (its bridge queries and rewards) plus a reward term that depends on the text (characters mod
    7, x 0.1): a random tiny policy's answers do not parse, and all-zero rewards would make the comparison
    trivial."""

    def __init__(self, task):
        self._task = task

    def __getattr__(self, name):
        return getattr(self._task, name)

    def score(self, batch, texts, group_size):
        scored = self._task.score(batch, texts, group_size)
        scored.rewards = scored.rewards + np.array([len(t) % 7 for t in texts], np.float32) * 0.1
        return scored


def _learner(cfg, bridge, policy=None):
    from omnir1_jax.learner import Learner, grpo_stage
    from omnir1_jax.tasks import make_task

    tok = P.build_tokenizer(cfg.model)
    task = _TextBonus(make_task(cfg, tok, bridge=lambda: bridge.client))
    return Learner(cfg, task, grpo_stage(cfg, export=False), policy=policy, tokenizer=tok)


def _recording(learner) -> list:
    """Every rollout the learner updates on, in order."""
    seen, update = [], learner.update

    def record(ro):
        seen.append(ro)
        return update(ro)

    learner.update = record
    return seen


def _train(cfg, bridge, steps=None, policy=None):
    tr = _learner(cfg, bridge, policy=policy)
    if policy is None:
        perturb(tr.policy)
    seen = _recording(tr)
    try:
        history = tr.train(steps, progress=False)
    finally:
        tr.close()
    return tr, seen, history


def test_overlapped_run_equals_a_reference_loop_with_the_lag_by_hand(world):
    tmp, bridge = world
    _, seen, history = _train(_cfg(tmp, "overlap"), bridge)
    assert [m["overlap/policy_lag"] for m in history] == [0.0, 1.0, 1.0]

    ref = _learner(_cfg(tmp, "by_hand", overlap="off"), bridge)
    perturb(ref.policy)
    g, n = ref.cfg.grpo, ref.cfg.grpo.group_size

    def sample():  # the next batch and key, as every learner draws them, sampled by ref's policy as it is now
        batch = next(ref.data_iter)
        ref.key, sk = jax.random.split(ref.key)
        comp = P.complete(ref.model, ref.tokenizer, ref._prompt_of(batch), max_new_tokens=g.max_new_tokens,
                          greedy=False, num_samples=n, key=sk, temperature=g.temperature, eos_ids=ref.eos_ids)
        return batch, comp

    expect = []
    try:
        pending = sample()  # batch 0, by theta_0
        for _ in range(STEPS):
            nxt = sample()  # batch k + 1, by theta_k: before theta_k is updated on batch k
            batch, comp = pending
            scored = ref.task.score(batch, comp.texts, n)
            ro = ref.assemble(ref._prompt_of(batch), comp.tokens, comp.lengths, comp.texts, scored)
            ids, mask = ro.completion_ids, ro.completion_mask
            old = jnp.asarray(comp.logprobs[:, :ids.shape[1]])  # pi_old: the sampler's log-probs
            ref_lp = ref._score_reference(ro.prompt, ids, mask)
            m = grpo_step(ref.model, ref.optimizer, ro.prompt, ids, mask, old, ref_lp, ro.advantages,
                          scorer=ref.scorer, spec=ref.loss_spec)
            expect.append((np.asarray(ids), scored.rewards, old, float(m["loss"])))
            pending = nxt
    finally:
        ref.close()
    for k, (ro, (ids, rewards, old, loss)) in enumerate(zip(seen, expect)):
        np.testing.assert_array_equal(np.asarray(ro.completion_ids), ids, err_msg=f"step {k}")
        np.testing.assert_array_equal(ro.rewards, rewards, err_msg=f"step {k}")
        np.testing.assert_array_equal(np.asarray(ro.old_logps), np.asarray(old), err_msg=f"step {k}")
        assert history[k]["loss"] == loss, k
    # not trivially equal: rewards vary, and the lagged steps are off-policy (a synchronous run's mu = 1 ratio
    # is exactly 1 and gives other losses)
    assert all(np.std(e[1]) > 0 for e in expect)
    _, _, sync = _train(_cfg(tmp, "sync", overlap="off"), bridge)
    assert losses(sync)[0] == history[0]["loss"] or abs(losses(sync)[0] - history[0]["loss"]) < 1e-6
    assert np.all(losses(sync)[1:] != losses(history)[1:])


def test_resume_from_a_checkpoint_taken_mid_overlap_continues_identically(world):
    tmp, bridge = world
    total, cut = 4, 2
    _, seen_a, hist_a = _train(_cfg(tmp, "a", steps=total), bridge)

    cfg = _cfg(tmp, "b", steps=total, checkpoint_every=100, resume=True)
    first, _, h1 = _train(cfg, bridge, steps=cut)  # train() saves the final step: batch 2 is in flight
    assert first.checkpointer.latest_step() == cut
    np.testing.assert_array_equal(losses(h1), losses(hist_a)[:cut])
    meta = first.checkpointer.restore(first._state())[2]
    inflight = read_meta(meta[META_KEY])
    assert inflight["version"] == cut - 1  # sampled by theta_1 (before the update of step 2)

    other = S.build_policy(cfg.model, seed=99)  # not the policy the run started from: all from the checkpoint
    second, seen_b, h2 = _train(cfg, bridge, policy=other)
    assert second.step == total and len(h2) == total - cut
    np.testing.assert_array_equal(np.asarray(seen_b[0].completion_ids), np.asarray(seen_a[cut].completion_ids))
    for a, b in zip(seen_a[cut:], seen_b):
        np.testing.assert_array_equal(np.asarray(b.completion_ids), np.asarray(a.completion_ids))
        np.testing.assert_array_equal(b.rewards, a.rewards)
        np.testing.assert_array_equal(np.asarray(b.old_logps), np.asarray(a.old_logps))
    np.testing.assert_array_equal(losses(h2), losses(hist_a)[cut:])
    assert [m["overlap/policy_lag"] for m in h2] == [1.0] * (total - cut)
    a_final = _learner(_cfg(tmp, "a", steps=total, resume=True), bridge)
    try:
        ref_params = params_of(a_final.policy)
    finally:
        a_final.close()
    jax.tree.map(np.testing.assert_array_equal, params_of(second.policy), ref_params)


def test_a_synchronous_restore_samples_the_batch_in_flight_again(world):
    tmp, bridge = world
    cfg = _cfg(tmp, "c", steps=1, checkpoint_every=100, resume=True)
    first, _, _ = _train(cfg, bridge)
    fl = first.overlap.inflight
    sync = _learner(dataclasses.replace(cfg, grpo=dataclasses.replace(cfg.grpo, overlap="off")), bridge)
    try:
        assert sync.overlap is None and sync.step == 1
        np.testing.assert_array_equal(key_to_data(sync.key), fl.key)
        again = next(sync.data_iter)
        for k in ("input_ids", "pixel_values_videos"):
            np.testing.assert_array_equal(np.asarray(again["model_inputs"][k]), np.asarray(fl.batch["model_inputs"][k]))
    finally:
        sync.close()


def test_overlap_settings_are_config_errors_naming_the_field(world):
    tmp, bridge = world
    with pytest.raises(ConfigError, match=r"grpo\.overlap must be off or one_step, got 'two_steps'"):
        GRPOSpec(overlap="two_steps")
    cfg = _cfg(tmp, "turns")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, task="vos_interactive"),
                              grpo=dataclasses.replace(cfg.grpo, max_turns=2))
    with pytest.raises(ConfigError, match=r"grpo\.overlap='one_step' needs single-turn rollouts"):
        make_learner(cfg, bridge)
