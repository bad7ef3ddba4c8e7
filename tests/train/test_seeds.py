"""Seed-parallel training: seed k trained inside a 3-seed program equals seed k trained alone.

The seeds draw clips of 4 to 6 frames, so their prompt batches differ in shape and the group pads them to
common sizes. Rewards are scripted from the text (no bridge), so every step has non-zero advantages.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from omnir1_jax.config import seed_config
from omnir1_jax.learner import Learner, grpo_stage
from omnir1_jax.policy import build_tokenizer
from omnir1_jax.seeds import SeedGroup
from omnir1_jax.tasks import make_task
from tests.train._tiny import params_of, tiny_config
from tests.train.test_learner_precision import _Scripted

# Seed 6's clips give its two batches the same prompt shape, and the group's padded shape is the same on both
# steps, while within each step the seeds' shapes differ (test_the_seeds_pad_to_common_sizes): the group pads
# on every step, and each program compiles once instead of once per step.
SEEDS, K, STEPS = (6, 0, 2), 6, 2


def _base(tmp):
    cfg = tiny_config(str(tmp / "syn"), str(tmp / "run"), steps=STEPS)
    data = dataclasses.replace(cfg.data, min_frames=4, max_frames=6, synthetic_videos=6)
    return dataclasses.replace(cfg, data=data, run=dataclasses.replace(cfg.run, seeds=SEEDS))


class _Recorded(_Scripted):
    """The scripted task, recording the pixel shape of each prompt it prepares (before the group pads it)."""

    def __init__(self, task):
        super().__init__(task)
        self.shapes = []

    def model_inputs(self, config, batch):
        out = self._task.model_inputs(config, batch)
        self.shapes.append(np.shape(out.pixel_values_videos))
        return out


def _learner(cfg, stage_fn=grpo_stage):
    tok = build_tokenizer(cfg.model)
    stage = stage_fn(cfg, export=False) if stage_fn is grpo_stage else stage_fn(cfg, num_records=8)
    return Learner(cfg, _Recorded(make_task(cfg, tok)), stage, tokenizer=tok)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seeds")
    base = _base(tmp)
    alone = _learner(
        dataclasses.replace(
            seed_config(base, K), run=dataclasses.replace(seed_config(base, K).run, out_dir=str(tmp / "alone"))
        )
    )
    group = SeedGroup([_learner(seed_config(base, k)) for k in SEEDS])
    try:
        first_alone = alone.train_step()
        ro_alone = alone.last_rollout
        first_group = group.train_step()
        ro_group = group.learners[SEEDS.index(K)].last_rollout
        second_alone, second_group = alone.train_step(), group.train_step()
        shapes = {"alone": alone.task.shapes, "group": [one.task.shapes for one in group.learners]}
        yield dict(
            alone=(first_alone, second_alone),
            group=(first_group, second_group),
            ro=(ro_alone, ro_group),
            params=(params_of(alone.model), params_of(group.learners[SEEDS.index(K)].model)),
            shapes=shapes,
        )
    finally:
        alone.close()
        group.close()


def test_seed_in_a_group_samples_the_tokens_it_samples_alone(runs):
    ro_alone, ro_group = runs["ro"]
    n = min(np.shape(ro_alone.completion_ids)[1], np.shape(ro_group.completion_ids)[1])
    np.testing.assert_array_equal(np.asarray(ro_alone.lengths), np.asarray(ro_group.lengths))
    mask = np.asarray(ro_alone.completion_mask)[:, :n].astype(bool)
    np.testing.assert_array_equal(
        np.asarray(ro_alone.completion_ids)[:, :n][mask], np.asarray(ro_group.completion_ids)[:, :n][mask]
    )
    assert ro_alone.texts == ro_group.texts
    np.testing.assert_allclose(np.asarray(ro_alone.advantages), np.asarray(ro_group.advantages), atol=1e-6)


def test_seed_in_a_group_has_the_losses_it_has_alone(runs):
    k = SEEDS.index(K)
    # step 1 is on-policy at the reference: its loss is -mean(A) = 0 and its KL 0, its gradient is not
    assert runs["alone"][1]["loss"] != 0.0 and runs["alone"][0]["grad_norm"] > 0
    for alone, group in zip(runs["alone"], runs["group"]):
        for key in ("loss", "kl_mean", "grad_norm", "pg_loss"):
            np.testing.assert_allclose(group[k][key], alone[key], atol=1e-5, rtol=0, err_msg=key)
    a, g = runs["params"]
    diff = max(float(np.abs(x - y).max()) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(g)))
    assert diff <= 1e-5


def test_the_seeds_differ(runs):
    losses = [m["grad_norm"] for m in runs["group"][0]]
    assert len(set(np.round(losses, 6))) == len(SEEDS)  # independent runs, not copies


def test_the_seeds_pad_to_common_sizes(runs):
    group = runs["shapes"]["group"]
    assert runs["shapes"]["alone"] == group[SEEDS.index(K)]  # the same clips alone and in the group
    for step in zip(*group):  # the seeds' own prompts differ in shape on every step: the group padded them
        assert len(set(step)) > 1, group
