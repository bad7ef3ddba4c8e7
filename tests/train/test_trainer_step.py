"""One full GRPO step of the one learner (tiny policy, VOS task) against a real (synthetic-backend) bridge
subprocess, and the learner's own advantage + update path on non-zero rewards."""

import flax.nnx as nnx
import jax
import numpy as np
import pytest

from omnir1_jax.config import BridgeSpec, DataSpec, ExperimentConfig, GRPOSpec, ModelSpec, OptimSpec, RunSpec
from omnir1_jax.rewards import RewardWeights
from omnir1_jax.rl import grpo_loss
from omnir1_jax.rl.update import score
from omnir1_jax.runtime.bridge import open_bridge
from omnir1_jax.tasks.base import Scored
from tests.train._tiny import TINY_MODEL, make_learner

pytestmark = pytest.mark.torch  # the bridge subprocess runs PyTorch


def _cfg(tmp_path, **run):
    return ExperimentConfig(
        model=ModelSpec(overrides=TINY_MODEL),
        data=DataSpec(
            root=str(tmp_path / "syn"),
            synthetic_videos=5,
            synthetic_size=(56, 84),
            batch_size=2,
            min_frames=4,
            max_frames=4,
            s1_max_pixels=4 * 28 * 28,
            s1_min_pixels=4 * 28 * 28,
        ),
        bridge=BridgeSpec(grounder="synthetic", segmenter="synthetic", workers=1, timeout_s=120),
        grpo=GRPOSpec(group_size=2, max_new_tokens=12, beta=0.04, rewards=RewardWeights(alpha_a=1.0)),
        optim=OptimSpec(lr=1e-3, weight_decay=0.0),
        run=RunSpec(out_dir=str(tmp_path / "run"), steps=1, checkpoint_every=0, resume=False, **run),
    )


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    cfg = _cfg(tmp)
    bridge = open_bridge(cfg.bridge, cfg.run.out_dir, data_roots=[cfg.data.root], wait_s=120)
    tr = make_learner(cfg, bridge)
    yield tr
    tr.close()
    bridge.close()


def _params(model):
    return jax.tree.map(np.array, nnx.state(model, nnx.Param))


def test_full_step_metrics_finite_and_reference_frozen(trainer):
    ref_before = _params(trainer.reference)
    m = trainer.train_step()
    assert trainer.step == 1
    for key in (
        "loss",
        "kl_mean",
        "clip_frac_low",
        "clip_frac_high",
        "entropy",
        "response_length",
        "zero_variance_groups",
        "reward/total",
        "reward/format",
        "reward/keyframe",
        "reward/grounding",
        "reward/alignment",
        "time/rollout",
        "time/reward",
        "time/update",
        "tokens_per_s",
    ):
        assert key in m, key
    assert all(np.isfinite(v) for v in m.values()), {k: v for k, v in m.items() if not np.isfinite(v)}
    jax.tree.map(np.testing.assert_array_equal, ref_before, _params(trainer.reference))
    # every rollout of the batch was scored: one reward per (prompt, sample)
    assert len(trainer.last_texts) == trainer.cfg.data.batch_size * trainer.cfg.grpo.group_size


class _LengthReward:
    """Wraps the VOS task: the reward of a row is the number of characters of its text mod 7 (non-zero,
    varying within groups), so the learner's own advantage path runs on non-zero rewards."""

    name = "scripted"

    def __init__(self, task):
        self.task = task

    def __getattr__(self, name):  # everything else is the VOS task's
        return getattr(self.task, name)

    def score(self, batch, texts, group_size):
        r = np.array([len(t) % 7 for t in texts], np.float32) + np.arange(len(texts), dtype=np.float32) * 0.25
        return Scored(r, {"length": r}, {})


def test_update_applies_the_grpo_loss_gradient_with_the_learners_advantages(trainer):
    batch = next(trainer.data_iter)
    real_task = trainer.task
    trainer.task = _LengthReward(real_task)
    try:
        ro = trainer.rollout(batch, jax.random.key(1))
    finally:
        trainer.task = real_task
    n = trainer.cfg.grpo.group_size
    r = np.asarray(ro.rewards, np.float64).reshape(-1, n)
    # docs/design.md §4.2, transcribed: (r - group mean) / (unbiased group std + 1e-4)
    expected_adv = ((r - r.mean(1, keepdims=True)) / (r.std(1, ddof=1, keepdims=True) + 1e-4)).reshape(-1)
    np.testing.assert_allclose(np.asarray(ro.advantages), expected_adv, rtol=1e-5, atol=1e-5)
    assert np.abs(expected_adv).max() > 0.5  # the groups are not constant
    args = (ro.prompt, ro.completion_ids, ro.completion_mask)
    logps = score(trainer.policy, *args, scorer=trainer.scorer)
    ref = score(trainer.reference, *args, scorer=trainer.scorer)
    expected_loss, _ = grpo_loss(logps, None, ref, ro.advantages, ro.completion_mask, beta=0.04)
    before = _params(trainer.policy)
    m = trainer.update(ro)
    assert m["loss"] == pytest.approx(float(expected_loss), rel=1e-5, abs=1e-6)
    after = _params(trainer.policy)
    changed = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after))]
    assert any(changed) and m["grad_norm"] > 0
    new_logps = score(trainer.policy, *args, scorer=trainer.scorer)
    adv = np.asarray(ro.advantages)[:, None]
    mask = np.asarray(ro.completion_mask) > 0
    # the step raised the log-probs of positive-advantage rows relative to negative ones
    delta = np.where(mask, np.asarray(new_logps - logps), 0.0).sum(1)
    assert np.sum(delta * adv[:, 0]) > 0
