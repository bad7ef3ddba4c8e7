"""Asynchronous rewards (``grpo.overlap = "one_step"``, omnir1_jax/overlap.py) on the tiny policy.

1. A 3-step overlapped run's sampled batches, rewards, pi_old and losses equal a reference loop that applies the
   one-step lag by hand: batch k + 1 is sampled by theta_k before theta_k is updated on batch k, and the update's
   pi_old is the sampler's log-probs. Rewards are a function of the text (no bridge); the same comparison with
   the VOS task's rewards through the bridge subprocess is a slow test.
2. The metrics: the policy lag, the seconds the learner waited for the rewards and the seconds the scoring lane
   sat idle, against the times the scorer and the learner's hand-overs recorded themselves.
3. A run resumed from a checkpoint taken mid-overlap (batch 1 sampled, not yet updated on) continues exactly as
   the uninterrupted run: the same tokens, rewards, losses and final parameters; the checkpoint holds the batch.
4. A synchronous learner restored from such a checkpoint samples the batch that was in flight again (the data
   iterator and the key are set back to before it); bad settings are config errors naming the field.

Every learner starts from a clone of one policy built once (building one compiles its initialiser).
"""

from __future__ import annotations

import dataclasses
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from omnir1_jax import policy as policy_lib
from omnir1_jax.config import ConfigError, GRPOSpec
from omnir1_jax.overlap import META_KEY, read_meta
from omnir1_jax.rl.update import grpo_step
from omnir1_jax.runtime import bridge as bridge_lib
from omnir1_jax.runtime.checkpoint import key_to_data
from omnir1_jax.tasks.base import Scored
from tests.train._tiny import losses, make_learner, params_of, perturb, tiny_config, tiny_policy

STEPS, CUT = 3, 1


def _cfg(tmp, out, *, overlap="one_step", steps=STEPS, **run):
    cfg = tiny_config(str(tmp / "syn"), str(tmp / out), steps=steps, **run)
    return dataclasses.replace(cfg, grpo=dataclasses.replace(cfg.grpo, overlap=overlap))


def _text_rewards(texts) -> np.ndarray:
    """Rewards from the text alone: characters mod 7, plus a per-row offset (a random tiny policy's answers do
    not parse; all-equal rewards would make every advantage 0)."""
    return np.array([len(t) % 7 for t in texts], np.float32) + np.arange(len(texts), dtype=np.float32) * 0.25


class _Scripted:
    """The VOS task (its prompts and data) with :func:`_text_rewards`; call ``i`` sleeps ``delays[i]`` seconds
    first, and every call records when it started and ended (``time.perf_counter``)."""

    def __init__(self, task, delays=()):
        self._task, self.delays, self.calls = task, list(delays), []

    def __getattr__(self, name):
        return getattr(self._task, name)

    def score(self, batch, texts, group_size):
        t0 = time.perf_counter()
        i = len(self.calls)
        if i < len(self.delays):
            time.sleep(self.delays[i])
        r = _text_rewards(texts)
        self.calls.append((t0, time.perf_counter()))
        return Scored(r, {"length": r}, {})


class _TextBonus:
    """The VOS task's rewards through the bridge plus 0.1 x :func:`_text_rewards` (see above)."""

    def __init__(self, task):
        self._task = task

    def __getattr__(self, name):
        return getattr(self._task, name)

    def score(self, batch, texts, group_size):
        scored = self._task.score(batch, texts, group_size)
        scored.rewards = scored.rewards + _text_rewards(texts) * 0.1
        return scored


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("overlap")


@pytest.fixture(scope="module")
def base(tmp):
    """The policy every learner here starts from (moved off its reference: a non-zero KL term)."""
    policy = tiny_policy()
    perturb(policy)
    return policy


def _learner(cfg, policy, wrap, bridge=None):
    from omnir1_jax.learner import Learner, grpo_stage
    from omnir1_jax.tasks import make_task

    tok = policy_lib.build_tokenizer(cfg.model)
    task = wrap(make_task(cfg, tok, bridge=(lambda: bridge.client) if bridge is not None else None))
    return Learner(cfg, task, grpo_stage(cfg, export=False), policy=nnx.clone(policy), tokenizer=tok)


def _recording(learner) -> list:
    """Every rollout the learner updates on, in order."""
    seen, update = [], learner.update

    def record(ro):
        seen.append(ro)
        return update(ro)

    learner.update = record
    return seen


def _hand_overs(learner) -> list:
    """When each of the learner's hand-overs to the scoring lane returned (``time.perf_counter``)."""
    times, hand_over = [], learner.overlap.hand_over

    def timed(fl):
        hand_over(fl)
        times.append(time.perf_counter())

    learner.overlap.hand_over = timed
    return times


def _train(cfg, policy, wrap, steps=None, bridge=None):
    tr = _learner(cfg, policy, wrap, bridge)
    seen = _recording(tr)
    handed = _hand_overs(tr) if tr.overlap is not None else []
    try:
        history = tr.train(steps, progress=False)
    finally:
        tr.close()
    return tr, seen, history, handed


def _by_hand(cfg, policy, wrap, bridge=None):
    """The reference: a synchronous learner's pieces driven with the one-step lag by hand. Returns, per update,
    (prompt ids, completion ids, rewards, pi_old, loss, ratio metrics)."""
    ref = _learner(dataclasses.replace(cfg, grpo=dataclasses.replace(cfg.grpo, overlap="off")), policy, wrap, bridge)
    g, n = ref.cfg.grpo, ref.cfg.grpo.group_size

    def sample():  # the next batch and key, as every learner draws them, sampled by ref's policy as it is now
        batch = next(ref.data_iter)
        ref.key, sk = jax.random.split(ref.key)
        comp = policy_lib.complete(
            ref.model,
            ref.tokenizer,
            ref._prompt_of(batch),
            max_new_tokens=g.max_new_tokens,
            greedy=False,
            num_samples=n,
            key=sk,
            temperature=g.temperature,
            eos_ids=ref.eos_ids,
        )
        return batch, comp

    out = []
    try:
        pending = sample()  # batch 0, by theta_0
        for _ in range(cfg.run.steps):
            nxt = sample()  # batch k + 1, by theta_k: before theta_k is updated on batch k
            batch, comp = pending
            scored = ref.task.score(batch, comp.texts, n)
            ro = ref.assemble(ref._prompt_of(batch), comp.tokens, comp.lengths, comp.texts, scored)
            ids, mask = ro.completion_ids, ro.completion_mask
            old = jnp.asarray(comp.logprobs[:, : ids.shape[1]])  # pi_old: the sampler's log-probs
            ref_lp = ref._score_reference(ro.prompt, ids, mask)
            m = grpo_step(
                ref.model,
                ref.optimizer,
                ro.prompt,
                ids,
                mask,
                old,
                ref_lp,
                ro.advantages,
                scorer=ref.scorer,
                spec=ref.loss_spec,
            )
            out.append(
                {
                    "prompt": np.asarray(ro.prompt.input_ids),
                    "ids": np.asarray(ids),
                    "rewards": scored.rewards,
                    "old": np.asarray(old),
                    "loss": float(m["loss"]),
                    "ratio": (float(m["ratio_min"]), float(m["ratio_max"])),
                }
            )
            pending = nxt
    finally:
        ref.close()
    return out


def _assert_equal_to_reference(seen, history, expect):
    assert len(seen) == len(history) == len(expect) == STEPS
    for k, (ro, e) in enumerate(zip(seen, expect)):
        np.testing.assert_array_equal(np.asarray(ro.prompt.input_ids), e["prompt"], err_msg=f"step {k}")
        np.testing.assert_array_equal(np.asarray(ro.completion_ids), e["ids"], err_msg=f"step {k}")
        np.testing.assert_array_equal(ro.rewards, e["rewards"], err_msg=f"step {k}")
        np.testing.assert_array_equal(np.asarray(ro.old_logps), e["old"], err_msg=f"step {k}")
        assert history[k]["loss"] == e["loss"], k
    # not trivially equal: the rewards vary, and the lagged updates are off-policy (the ratio to pi_old moves
    # away from 1 after step 0, which is on-policy up to the sampler's and the scorer's rounding)
    assert all(np.std(e["rewards"]) > 0 for e in expect)
    assert max(abs(r - 1.0) for r in expect[0]["ratio"]) < 1e-3
    assert all(max(abs(r - 1.0) for r in e["ratio"]) > 1e-3 for e in expect[1:])


# the scorer's delays: batch 0 takes a second (the learner waits for it in step 0), later batches none (the lane
# has scored batch 1 before batch 2 comes: it sits idle)
DELAYS = (1.0, 0.0, 0.0, 0.0)


@pytest.fixture(scope="module")
def run_a(tmp, base):
    wrap = lambda task: _Scripted(task, DELAYS)
    tr, seen, history, handed = _train(_cfg(tmp, "a"), base, wrap)
    return {"seen": seen, "history": history, "handed": handed, "calls": tr.task.calls, "params": params_of(tr.policy)}


def test_overlapped_run_equals_a_reference_loop_with_the_lag_by_hand(tmp, base, run_a):
    assert [m["overlap/policy_lag"] for m in run_a["history"]] == [0.0, 1.0, 1.0]
    expect = _by_hand(_cfg(tmp, "by_hand"), base, _Scripted)
    _assert_equal_to_reference(run_a["seen"], run_a["history"], expect)


def test_the_metrics_record_the_lag_and_the_time_each_side_waits(run_a):
    """Batch k is handed over at ``handed[k]``; in step k the learner waits from handing over batch k + 1 until
    the scorer's call k ends; the lane is idle from call k - 1's end until it can start call k."""
    hist, handed, calls = run_a["history"], run_a["handed"], run_a["calls"]
    assert len(handed) == len(calls) == STEPS + 1  # batch 3 was sampled, handed over and scored too (drained)
    for k, m in enumerate(hist):
        waited = max(0.0, calls[k][1] - handed[k + 1])
        idle = 0.0 if k == 0 else max(0.0, calls[k][0] - calls[k - 1][1])
        assert m["time/reward_wait"] == pytest.approx(waited, abs=0.1), k
        assert m["time/reward_idle"] == pytest.approx(idle, abs=0.1), k
        assert m["time/reward"] == pytest.approx(calls[k][1] - calls[k][0], abs=0.1), k
    # step 0 waits for the slow batch 0 (a second, less the time batch 1 took to sample); batch 2 comes after
    # batch 1 was scored: the lane waited for it (the learner's update of step 0 and sampling in step 1)
    assert hist[0]["time/reward_wait"] > 0.1
    assert calls[2][0] - calls[1][1] > 0 and hist[2]["time/reward_idle"] > 0


@pytest.fixture(scope="module")
def halfway(tmp, base):
    """An overlapped run stopped after CUT steps (train() saves the final step: batch CUT is in flight), and a
    copy of its run directory for the synchronous restore."""
    cfg = _cfg(tmp, "b", checkpoint_every=100, resume=True)
    first, _, hist, _ = _train(cfg, base, _Scripted, steps=CUT)
    shutil.copytree(tmp / "b", tmp / "c")
    return cfg, first, hist


def test_resume_from_a_checkpoint_taken_mid_overlap_continues_identically(tmp, base, run_a, halfway):
    cfg, first, h1 = halfway
    seen_a, hist_a = run_a["seen"], run_a["history"]
    assert first.checkpointer.latest_step() == CUT
    np.testing.assert_array_equal(losses(h1), losses(hist_a)[:CUT])
    # the checkpoint holds the batch in flight: batch CUT, sampled by theta_{CUT - 1}, the tokens run a updated on
    inflight = read_meta(first.checkpointer.restore(first._state())[2][META_KEY])
    assert inflight["version"] == CUT - 1
    ids = np.asarray(seen_a[CUT].completion_ids)
    np.testing.assert_array_equal(inflight["tokens"][:, : ids.shape[1]], ids)
    np.testing.assert_array_equal(inflight["logprobs"][:, : ids.shape[1]], np.asarray(seen_a[CUT].old_logps))

    other = nnx.clone(base)  # not the policy the run started from: all of it must come from the checkpoint
    perturb(other, seed=99)
    second, seen_b, h2, _ = _train(cfg, other, _Scripted)
    assert second.step == STEPS and len(h2) == STEPS - CUT
    for a, b in zip(seen_a[CUT:], seen_b):
        np.testing.assert_array_equal(np.asarray(b.prompt.input_ids), np.asarray(a.prompt.input_ids))
        np.testing.assert_array_equal(np.asarray(b.completion_ids), np.asarray(a.completion_ids))
        np.testing.assert_array_equal(b.rewards, a.rewards)
        np.testing.assert_array_equal(np.asarray(b.old_logps), np.asarray(a.old_logps))
    np.testing.assert_array_equal(losses(h2), losses(hist_a)[CUT:])
    assert [m["overlap/policy_lag"] for m in h2] == [1.0] * (STEPS - CUT)
    jax.tree.map(np.testing.assert_array_equal, params_of(second.policy), run_a["params"])


def test_a_synchronous_restore_samples_the_batch_in_flight_again(tmp, base, halfway):
    cfg, first, _ = halfway
    fl = first.overlap.inflight
    cfg = dataclasses.replace(
        cfg, grpo=dataclasses.replace(cfg.grpo, overlap="off"), run=dataclasses.replace(cfg.run, out_dir=str(tmp / "c"))
    )
    sync = _learner(cfg, base, _Scripted)
    try:
        assert sync.overlap is None and sync.step == CUT
        np.testing.assert_array_equal(key_to_data(sync.key), fl.key)
        again = next(sync.data_iter)
        for k in ("input_ids", "pixel_values_videos"):
            np.testing.assert_array_equal(np.asarray(again["model_inputs"][k]), np.asarray(fl.batch["model_inputs"][k]))
    finally:
        sync.close()


def test_overlap_settings_are_config_errors_naming_the_field(tmp, base):
    with pytest.raises(ConfigError, match=r"grpo\.overlap must be off or one_step, got 'two_steps'"):
        GRPOSpec(overlap="two_steps")
    cfg = _cfg(tmp, "turns")
    cfg = dataclasses.replace(
        cfg, data=dataclasses.replace(cfg.data, task="vos_interactive"), grpo=dataclasses.replace(cfg.grpo, max_turns=2)
    )
    with pytest.raises(ConfigError, match=r"grpo\.overlap='one_step' needs single-turn rollouts"):
        make_learner(cfg, None, policy=nnx.clone(base))


@pytest.mark.slow
@pytest.mark.torch  # the bridge subprocess runs PyTorch
def test_overlapped_run_with_the_bridge_equals_the_reference_loop(tmp, base):
    """As the first test, with the VOS task's rewards (System 2 and SAM2 through the bridge, on the lane)."""
    cfg = _cfg(tmp, "bridge")
    bridge = bridge_lib.open_bridge(cfg.bridge, cfg.run.out_dir, data_roots=[cfg.data.root], wait_s=120)
    try:
        _, seen, history, _ = _train(cfg, base, _TextBonus, bridge=bridge)
        assert [m["overlap/policy_lag"] for m in history] == [0.0, 1.0, 1.0]
        expect = _by_hand(_cfg(tmp, "bridge_by_hand"), base, _TextBonus, bridge=bridge)
    finally:
        bridge.close()
    _assert_equal_to_reference(seen, history, expect)
