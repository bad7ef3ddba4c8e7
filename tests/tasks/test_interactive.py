"""Multi-turn System 1 <-> System 2 rollouts (task vos_interactive): a 2-turn trajectory's re-scored
log-probs equal the sampler's; the loss mask is exactly the answer tokens; max_turns = 1 is today's VOS step;
the learner takes a 2-turn GRPO step. Tiny policy, synthetic world, synthetic bridge."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omnir1_jax.config import ConfigError
from omnir1_jax.runtime.bridge import open_bridge
from omnir1_jax.runtime.records import read_records
from omnir1_jax.tasks.synthetic_targets import answer_text


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from omnir1_jax.config import BridgeSpec

    base = tmp_path_factory.mktemp("interactive")
    bridge = open_bridge(
        BridgeSpec(grounder="synthetic", segmenter="synthetic", workers=1, timeout_s=120),
        str(base / "bridge"),
        data_roots=(str(base / "world"),),
        wait_s=120,
    )
    yield base, bridge
    bridge.close()


def _cfg(base, turns, out="run"):
    from tests.train._tiny import tiny_config

    cfg = tiny_config(str(base / "world"), str(base / out), steps=2)
    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, task="vos_interactive"),
        grpo=dataclasses.replace(
            cfg.grpo, max_turns=turns, num_keyframes=2, rewards=dataclasses.replace(cfg.grpo.rewards, alpha_g=1.0)
        ),
    )


def test_two_turn_trajectory_logprobs_equal_the_samplers_and_the_mask_is_the_answers(world):
    from omnir1_jax.models.qwen2_5_omni import completion_logprobs, generate, prepare_inputs, trajectory_logprobs
    from omnir1_jax.rl.loss import grpo_loss
    from omnir1_jax.tasks.interactive import trajectory_inputs
    from tests.train._tiny import make_learner

    base, bridge = world
    tr = make_learner(_cfg(base, 2), bridge)
    try:
        task, policy, pad = tr.task, tr.policy, tr.pad_id
        batch = next(tr.data_iter)
        n = 2
        trajs = task.start(batch, n)
        prompt = prepare_inputs(policy.config, **dict(batch["model_inputs"].items()))
        # turn 1: well-formed answers naming two keyframes (teacher-forced), so System 2 finds boxes and the
        # feedback carries images; their log-probs from the completion scorer (equal to the sampler's, see
        # tests/models/test_qwen2_5_omni_parity.py::test_group_sampling_logprobs_equal_scoring)
        texts = [answer_text([0, 2], e, batch["fps_s1"]) for e in batch["expression"] for _ in range(n)]
        ids1 = [
            np.asarray(tr.tokenizer(t, add_special_tokens=False)["input_ids"] + [task.eos_id], np.int32) for t in texts
        ]
        width = max(len(x) for x in ids1)
        a1 = np.zeros((len(ids1), width), np.int32)
        m1 = np.zeros_like(a1)
        for i, x in enumerate(ids1):
            a1[i, : len(x)], m1[i, : len(x)] = x, 1
        from omnir1_jax.models.qwen2_5_omni import repeat_prompt

        lp1 = np.asarray(completion_logprobs(policy, repeat_prompt(prompt, n), a1, m1)).sum(axis=1)
        task.add_answers(trajs, a1, m1.sum(axis=1), texts)
        stats = task.add_feedback(batch, trajs, n)
        assert stats["interactive/feedback_keyframes"] == 2 * len(trajs) and all(len(t.images) == 2 for t in trajs)
        # turn 2: sampled from the re-prefilled conversation (prompt + answer + feedback with its images)
        turn2, _ = trajectory_inputs(policy.config, trajs, pad)
        out = generate(
            policy, turn2, max_new_tokens=10, key=jax.random.key(5), num_samples=1, eos_token_id=[task.eos_id]
        )
        tok2, len2 = np.asarray(out.tokens), np.asarray(out.lengths)
        task.add_answers(trajs, tok2, len2, ["x"] * len(trajs))
        full, mask = trajectory_inputs(policy.config, trajs, pad)
        got = np.asarray(trajectory_logprobs(policy, full, full.input_ids, mask))
        np.testing.assert_allclose(got.sum(axis=1), lp1 + np.asarray(out.logprobs).sum(axis=1), atol=1e-5)
        # the mask is 1 exactly on the two answers: by hand from the segment lengths (left padding first)
        ids = np.asarray(full.input_ids)
        image_id = tr.tokenizer.convert_tokens_to_ids("<|IMAGE|>")
        for r, t in enumerate(trajs):
            lens = [len(t.prompt_ids)] + [len(s) for s, _ in t.segments]
            start = ids.shape[1] - sum(lens)
            want = np.zeros(ids.shape[1], np.int32)
            a = start + lens[0]
            want[a : a + lens[1]] = 1  # answer 1
            f = a + lens[1]
            want[f + lens[2] : f + lens[2] + lens[3]] = 1  # answer 2, after the feedback
            np.testing.assert_array_equal(mask[r], want)
            assert mask[r].sum() == len(ids1[r]) + len2[r]
            assert np.all(mask[r][ids[r] == image_id] == 0) and (ids[r][f : f + lens[2]] == image_id).sum() > 0
        # the GRPO loss does not depend on the feedback tokens' log-probs: zero gradient there, non-zero on answers
        adv = jnp.asarray(np.linspace(-1, 1, len(trajs)), jnp.float32)
        lp = jnp.asarray(got)
        grad = np.asarray(jax.grad(lambda x: grpo_loss(x, lp, lp, adv, jnp.asarray(mask))[0])(lp))
        assert np.all(grad[mask == 0] == 0) and np.all(grad[mask == 1] != 0)
    finally:
        tr.close()


def test_one_turn_is_the_vos_step_bit_for_bit(world):
    from tests.train._tiny import make_learner, perturb

    base, bridge = world
    losses = {}
    for kind in ("vos", "vos_interactive"):
        cfg = _cfg(base, 1, out=f"run1_{kind}")
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, task=kind))
        tr = make_learner(cfg, bridge)
        try:
            perturb(tr.policy)
            losses[kind] = [m["loss"] for m in tr.train(2, progress=False)]
        finally:
            tr.close()
    assert losses["vos"] == losses["vos_interactive"] and losses["vos"][0] != 0.0


def test_the_learner_takes_a_two_turn_grpo_step(world):
    from tests.train._tiny import make_learner, perturb

    base, bridge = world
    tr = make_learner(_cfg(base, 2, out="run2"), bridge)
    try:
        perturb(tr.policy)
        batch = next(tr.data_iter)
        ro = tr.rollout(batch, jax.random.key(1))
        trajs = ro.trajectories
        assert all(len(t.answers) == 2 and [a for _, a in t.segments] == [True, False, True] for t in trajs)
        # the update's mask counts each trajectory's answer tokens, both turns
        counts = [sum(len(s) for s, a in t.segments if a) for t in trajs]
        np.testing.assert_array_equal(np.asarray(ro.completion_mask).sum(axis=1), counts)
        m = tr.update(ro)
        assert math.isfinite(m["loss"]) and m["loss"] != 0.0
        assert ro.stats["interactive/feedback_keyframes"] >= 0 and "revisions" in ro.components
    finally:
        tr.close()


def test_per_turn_summary_by_hand():
    from omnir1_jax.evaluation.loop import per_turn_summary

    rows = [
        {"J": 0.5, "F": 0.7, "turns": [{"turn": 1, "J": 0.1, "F": 0.3}], "revised": True},
        {"J": 0.2, "F": 0.2, "turns": [{"turn": 1, "J": 0.2, "F": 0.2}], "revised": False},
        {"J": 0.9, "F": 0.9},
    ]  # a one-turn row is not counted
    got = per_turn_summary(rows)
    assert got["J&F_by_turns"] == pytest.approx({"1": (0.2 + 0.2) / 2, "2": (0.6 + 0.2) / 2})
    assert got["revised_fraction"] == 0.5 and per_turn_summary([{"J": 0.1, "F": 0.2}]) == {}


def test_evaluation_reports_jf_per_turn_count_and_revisions(world, tmp_path):
    import json
    import os

    from omnir1_jax.evaluation.loop import evaluate_segmentation
    from omnir1_jax.evaluation.two_system import TwoSystemPredictor
    from tests.train._tiny import make_learner

    base, bridge = world
    cfg = _cfg(base, 2, out="eval_run")
    tr = make_learner(cfg, bridge)
    try:
        records = read_records(cfg.data, "valid")[:2]
        cfg = dataclasses.replace(cfg, grpo=dataclasses.replace(cfg.grpo, max_new_tokens=12))
        pred = TwoSystemPredictor(cfg, tr.policy, tr.tokenizer, bridge.client)
        out = str(tmp_path / "eval")
        res = evaluate_segmentation(records, pred, out, overlays=1, progress=False)
    finally:
        tr.close()
    rows = [json.loads(x) for x in open(os.path.join(out, "results.jsonl"))]
    assert len(rows) == 2 and all(len(r["turns"]) == 1 and len(r["earlier_answers"]) == 1 for r in rows)
    want1 = np.mean([(r["turns"][0]["J"] + r["turns"][0]["F"]) / 2 for r in rows])
    want2 = np.mean([(r["J"] + r["F"]) / 2 for r in rows])
    assert res["J&F_by_turns"] == pytest.approx({"1": want1, "2": want2})
    assert res["revised_fraction"] == np.mean([r["revised"] for r in rows])
    assert "J&F by System 1's answers" in open(os.path.join(out, "summary.md")).read()
    names = sorted(os.listdir(os.path.join(out, "overlays")))
    assert len(names) == 2 and names[1].endswith("_turn1.png")


def test_system1_rationale_goes_to_system2_only_when_asked(world):
    """bridge.s2_context: each answer's <think> text, cut to bridge.s2_context_chars, is what the task sends
    as System 2's context; off by default."""
    from tests.train._tiny import make_learner

    base, bridge = world
    cfg = _cfg(base, 2, out="ctx_run")
    tr = make_learner(cfg, bridge)
    try:
        assert tr.task.contexts(["<think>a b</think><answer>[]</answer>"]) is None
        tr.task.cfg = dataclasses.replace(
            cfg, bridge=dataclasses.replace(cfg.bridge, s2_context=True, s2_context_chars=12)
        )
        got = tr.task.contexts(["<think>the red circle appears  second</think><answer>x</answer>", "no tags"])
        assert got == ["the red circ", ""]  # whitespace collapsed, the first 12 characters; no <think>: empty
    finally:
        tr.close()


def test_multi_turn_sft_targets_every_answer_after_real_feedback(world):
    """The K-turn warm-up: each answer of a 2-turn conversation is a target of the NLL (the mask covers both
    answers, nothing else), the second after System 2's feedback on the first; one NLL step on it lowers its loss."""
    from omnir1_jax.learner import sft_stage
    from tests.train._tiny import make_learner

    base, bridge = world
    cfg = _cfg(base, 2, out="sft2")
    cfg = dataclasses.replace(cfg, sft=dataclasses.replace(cfg.sft, steps=2, batch_size=2, lr=1e-2))
    tr = make_learner(cfg, bridge, stage=sft_stage(cfg))
    try:
        batch = next(tr.data_iter)
        ro = tr.supervised(batch)
        ids, mask = np.asarray(ro.completion_ids), np.asarray(ro.completion_mask)
        eos = tr.task.eos_id
        for r in range(ids.shape[0]):
            runs = np.flatnonzero(np.diff(np.concatenate([[0], mask[r], [0]])))  # starts / ends of masked runs
            assert len(runs) == 4  # exactly two answers
            for _a, b in zip(runs[::2], runs[1::2]):
                assert ids[r, b - 1] == eos  # each target answer ends with its EOS
        before = float(tr.update(ro)["loss"])  # the loss before this NLL step on the batch
        after = float(tr.update(ro)["loss"])  # ... and before the next: after the first
        assert math.isfinite(before) and after < before
    finally:
        tr.close()
    # sft.think_weight weighs a one-turn answer's think: a multi-turn warm-up refuses it when the learner is built
    weighted = dataclasses.replace(cfg, sft=dataclasses.replace(cfg.sft, think_weight=2.0))
    with pytest.raises(ConfigError, match=r"sft\.think_weight=2\.0 is for one-turn answers, not turns=2"):
        make_learner(weighted, bridge, stage=sft_stage(weighted))
