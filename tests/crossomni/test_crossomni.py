"""CrossOmni QA: batches, reward glue, accuracy table, one LoRA-SFT step and one GRPO step on the tiny model."""

import dataclasses

import flax.nnx as nnx
import jax
import numpy as np
import pytest

from omnir1_jax.config import DataSpec, ExperimentConfig, GRPOSpec, ModelSpec, OptimSpec, RunSpec, SFTSpec
from omnir1_jax.crossomni import batches
from omnir1_jax.crossomni.prompts import INSTRUCTION, sft_target
from omnir1_jax.crossomni.rewards import QARewardWeights, qa_rewards
from omnir1_jax.evaluation.metrics.qa import QAAccumulator
from omnir1_jax.policy import build_policy, build_tokenizer
from omnir1_jax.rewards import COHERENCE_PROMPT, CONSISTENCY_PROMPT, extract_tag
from omnir1_jax.tasks.crossomni_judge import PerPromptJudge, make_judge
from tests.crossomni.fixtures import length_judge, write_fixture
from tests.train._tiny import TINY_MODEL


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("co"))
    write_fixture(root)
    return ExperimentConfig(
        name="co_test",
        model=ModelSpec(overrides=TINY_MODEL),
        data=DataSpec(
            dataset="crossomni",
            root=root,
            split="train",
            task="qa",
            batch_size=2,
            min_frames=4,
            max_frames=4,
            s1_max_pixels=4 * 28 * 28,
            s1_min_pixels=4 * 28 * 28,
        ),
        grpo=GRPOSpec(group_size=2, max_new_tokens=8, beta=0.04),
        optim=OptimSpec(lr=1e-3, weight_decay=0.0),
        sft=SFTSpec(lr=1e-3, batch_size=2, lora_rank=4, lora_alpha=8.0, target="rationale"),
        run=RunSpec(out_dir=str(tmp_path_factory.mktemp("run")), steps=1),
    )


def test_batch_has_video_audio_and_the_table17_prompt(cfg):
    recs = batches.read_split(cfg.data, "train")
    tok = build_tokenizer(cfg.model)
    batch = batches.qa_batch(recs[:2], tok, cfg.data)
    mi = batch["model_inputs"]
    assert mi["input_ids"].shape[0] == 2 and mi["video_grid_thw"].shape == (2, 3)
    assert mi["input_features"].shape == (2, 128, 3000) and mi["feature_attention_mask"][:, :90].all()
    assert mi["video_grid_thw"][0, 0] == 2  # 4 sampled frames / temporal patch 2
    text = tok.decode(mi["input_ids"][0][mi["attention_mask"][0] > 0])
    assert INSTRUCTION.splitlines()[0] in text and recs[0].question in text and "B. x" in text
    assert sft_target(recs[0]) == f"<think>{recs[0].rationale}</think>\nB" and sft_target(recs[3]) == "D"


def test_rewards_are_the_weighted_sum_of_the_paper_terms(cfg):
    recs = batches.read_split(cfg.data, "train")
    comps = ["<think>I saw him</think>\nB", "<think>x</think> A", "no think B", "<think>y</think>\nC"]
    prompts = []

    def judge(p):
        prompts.append(p)
        return length_judge(p)

    w = QARewardWeights(format=1.0, accuracy=2.0, consistency=0.5, coherence=0.25)
    total, c, m = qa_rewards(comps, [recs[0], recs[0], recs[0], recs[2]], make_judge(judge), w)
    np.testing.assert_array_equal(c["format"], [1, 1, 0, 1])
    np.testing.assert_array_equal(c["accuracy"], [1, 0, 1, 1])
    # the judge saw Table-18 prompts filled with each <think> (and the reference rationale for consistency)
    cons = [
        CONSISTENCY_PROMPT.format(reference=r.rationale, hypothesis=h)
        for r, h in ((recs[0], "I saw him"), (recs[0], "x"), (recs[2], "y"))
    ]
    coh = [COHERENCE_PROMPT.format(hypothesis=h) for h in ("I saw him", "x", "y")]
    assert prompts == cons + coh
    exp_cons = np.array([len(cons[0]) % 4, len(cons[1]) % 4, 0, len(cons[2]) % 4]) / 5
    exp_coh = np.array([len(coh[0]) % 4 if len(coh[0]) % 4 <= 3 else 0, len(coh[1]) % 4, 0, len(coh[2]) % 4]) / 3
    np.testing.assert_allclose(c["consistency"], exp_cons, rtol=1e-6)
    np.testing.assert_allclose(c["coherence"], exp_coh, rtol=1e-6)
    np.testing.assert_allclose(total, c["format"] + 2 * c["accuracy"] + 0.5 * exp_cons + 0.25 * exp_coh, rtol=1e-6)
    assert m["consistency/no_rationale"] == 1.0


def test_the_rewards_take_the_judge_as_a_value_and_the_task_builds_it(cfg):
    """crossomni.rewards never reaches a bridge; the task turns a spec or a callable into the batched judge the
    rewards take, and scores with it."""
    import ast
    import inspect

    from omnir1_jax.crossomni import rewards
    from omnir1_jax.tasks.crossomni_qa import CrossOmniQATask

    tree = ast.parse(inspect.getsource(rewards))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m.startswith(("sam2_bridge", "omnir1_jax.tasks")) for m in imported), imported
    assert make_judge(None) is None
    per_prompt = make_judge(length_judge)
    assert isinstance(per_prompt, PerPromptJudge) and per_prompt(["ab", "abcde"]) == ["2", "1"]
    assert make_judge(per_prompt) is per_prompt  # already batched: used as is
    spec = make_judge("python:tests.crossomni.fixtures:length_judge")
    assert isinstance(spec, PerPromptJudge) and spec.fn is length_judge
    with pytest.raises(ValueError, match="python:MODULE:FUNCTION, bridge:ADDRESS or hf:PATH"):
        make_judge("openai:gpt")
    recs = batches.read_split(cfg.data, "train")
    task = CrossOmniQATask(cfg, tokenizer=None, judge="python:tests.crossomni.fixtures:length_judge")
    texts = ["<think>I saw him</think>\nB", "no think B"]
    scored = task.score({"records": [recs[0]]}, texts, group_size=2)
    total, comps, _ = qa_rewards(texts, [recs[0], recs[0]], make_judge(length_judge))
    np.testing.assert_array_equal(scored.rewards, total)
    assert comps["format"].tolist() == [1.0, 0.0] and scored.stats["judge/consistency/judge_calls"] == 1.0
    task.close()


def test_accuracy_table_pools_questions_like_table7():
    acc = QAAccumulator()
    rows = [("a", "Vi->Te", "B", "B"), ("b", "Vi->Te", "A", "B"), ("c", "Au->Au", "A", "A"), ("d", "Te->Vi", None, "C")]
    for r in rows:
        acc.add(*r)
    s = acc.summary()
    assert s["Vi->Te"]["accuracy"] == 0.5 and s["Au->Au"]["accuracy"] == 1.0 and s["Te->Vi"]["accuracy"] == 0.0
    assert s["single"]["accuracy"] == 1.0 and s["cross"]["accuracy"] == pytest.approx(1 / 3)
    assert s["overall"]["accuracy"] == 0.5  # pooled: 2 of 4 (the mean of the task columns would be 0.5 too here)
    with pytest.raises(ValueError, match="already"):
        acc.add("a", "Vi->Te", "B", "B")
    with pytest.raises(ValueError, match="task"):
        acc.add("e", "Au->Im", "B", "B")


def _learner(cfg, stage: str, *, policy=None, judge=None, out: str | None = None, resume: bool = False):
    """The one learner on the ``crossomni_qa`` task (what ``python -m omnir1_jax.crossomni.train`` runs)."""
    from omnir1_jax.learner import Learner, grpo_stage, sft_stage
    from omnir1_jax.tasks.crossomni_qa import CrossOmniQATask

    run = dataclasses.replace(cfg.run, out_dir=out or cfg.run.out_dir, resume=resume, checkpoint_every=1)
    cfg = dataclasses.replace(cfg, run=run)
    tok = build_tokenizer(cfg.model)
    recs = batches.read_split(cfg.data, "train")
    st = sft_stage(cfg, num_records=len(recs)) if stage == "sft" else grpo_stage(cfg, export=False)
    policy = policy if policy is not None else build_policy(cfg.model, seed=0)
    return Learner(cfg, CrossOmniQATask(cfg, tok, judge), st, policy=policy, tokenizer=tok, records=recs)


@pytest.mark.slow
def test_one_lora_sft_step_changes_only_decoder_projections(cfg):
    policy = build_policy(cfg.model, seed=0)
    before = jax.tree.map(np.array, nnx.state(policy, nnx.Param))
    learner = _learner(cfg, "sft", policy=policy)
    hist = learner.train(1, progress=False)
    learner.close()
    merged = learner.policy
    assert np.isfinite(hist[0]["loss"]) and hist[0]["grad_norm"] > 0
    after = jax.tree.map(np.array, nnx.state(merged, nnx.Param))
    flat_b = dict(jax.tree_util.tree_leaves_with_path(before))
    changed = {
        jax.tree_util.keystr(k)
        for k, v in jax.tree_util.tree_leaves_with_path(after)
        if not np.array_equal(v, flat_b[k])
    }
    # LoRA changed exactly the decoder projection kernels (B moved off zero), nothing else
    assert changed and all("language_model" in k and "kernel" in k and "proj" in k for k in changed)


def test_one_grpo_step_with_a_judge(cfg, tmp_path):
    calls = []

    def judge(p):
        calls.append(p)
        return length_judge(p)

    g = _learner(cfg, "grpo", judge=make_judge(judge), out=str(tmp_path / "grpo"))
    ref = jax.tree.map(np.array, nnx.state(g.reference, nnx.Param))
    m = g.train_step()
    g.close()
    assert np.isfinite(m["loss"]) and len(g.last_texts) == cfg.data.batch_size * cfg.grpo.group_size
    for k in ("reward/format", "reward/accuracy", "reward/consistency", "reward/coherence", "kl_mean"):
        assert k in m
    # the judge is called once per completion with a non-empty <think> for each of the two judge terms
    n_think = sum(bool((extract_tag(t, "think") or "").strip()) for t in g.last_texts)
    assert len(calls) == 2 * n_think
    if n_think == 0:
        assert m["reward/consistency"] == 0.0 and m["reward/coherence"] == 0.0
    jax.tree.map(np.testing.assert_array_equal, ref, jax.tree.map(np.array, nnx.state(g.reference, nnx.Param)))


def test_grpo_killed_and_resumed_continues_with_equal_losses(cfg, tmp_path):
    """Like VOS GRPO: 1 step + checkpoint, then a new learner built from another random policy restores and
    trains 2 more; its losses equal an uninterrupted 3-step run's (<= 1e-6)."""
    from tests.train._tiny import losses, perturb

    judge = make_judge(length_judge)

    def moved(learner):
        perturb(learner.policy)  # away from the frozen reference: a non-zero KL loss that depends on every array
        return learner

    a = moved(_learner(cfg, "grpo", judge=judge, out=str(tmp_path / "a")))
    whole = losses(a.train(3, progress=False))
    a.close()
    assert np.all(whole != 0) and len(set(whole.tolist())) == 3
    b1 = moved(_learner(cfg, "grpo", judge=judge, out=str(tmp_path / "b"), resume=True))
    first = losses(b1.train(1, progress=False))
    b1.close()
    b2 = _learner(
        cfg, "grpo", policy=build_policy(cfg.model, seed=9), judge=judge, out=str(tmp_path / "b"), resume=True
    )
    assert b2.step == 1
    rest = losses(b2.train(3, progress=False))
    b2.close()
    np.testing.assert_allclose(np.concatenate([first, rest]), whole, rtol=0, atol=1e-6)


def test_missing_split_file_names_it(cfg):
    from omnir1_jax.config import ConfigError

    with pytest.raises(ConfigError, match="nope.jsonl"):
        batches.read_split(cfg.data, "nope")
