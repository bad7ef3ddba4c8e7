"""Run length derived from the data: one epoch over the videos or the expressions."""

import dataclasses
import os

import pytest

from omnir1_jax.config import ConfigError, ExperimentConfig, RunSpec, derive_steps, load_config
from omnir1_jax.data import readers
from omnir1_jax.runtime.records import one_expression_per_video, resolve_steps


def test_derive_steps_by_hand():
    videos = RunSpec(steps=0, epoch_unit="videos")
    # the paper: one epoch over 2,600 videos at batch 8 -> 2600 / 8 = 325
    assert derive_steps(videos, num_expressions=9000, num_videos=2600, global_batch=8) == 325
    assert derive_steps(videos, num_expressions=9000, num_videos=2601, global_batch=8) == 326  # ceil
    assert derive_steps(RunSpec(steps=0), num_expressions=9000, num_videos=2600, global_batch=8) == 1125
    assert (
        derive_steps(
            RunSpec(steps=0, epochs=2.0, epoch_unit="videos"), num_expressions=1, num_videos=2600, global_batch=8
        )
        == 650
    )
    assert derive_steps(RunSpec(steps=0, epochs=0.1), num_expressions=30, num_videos=1, global_batch=3) == 1
    assert derive_steps(RunSpec(steps=7), num_expressions=0, num_videos=0, global_batch=8) == 7  # explicit wins
    with pytest.raises(ConfigError, match="cannot derive"):
        derive_steps(videos, num_expressions=0, num_videos=0, global_batch=8)
    with pytest.raises(ConfigError, match="epoch_unit"):
        RunSpec(epoch_unit="frames")
    with pytest.raises(ConfigError, match="run.steps"):
        RunSpec(steps=-1)


def test_resolve_steps_and_one_expression_per_video(revos_tree):
    root, _ = revos_tree
    recs = readers.read_revos(root, "train")  # 2 videos: UVO/... with expressions 0 and 1, plain_vid with 0
    cfg = ExperimentConfig(run=RunSpec(steps=0, epoch_unit="videos"))
    assert resolve_steps(cfg, recs, global_batch=1) == 2
    assert resolve_steps(dataclasses.replace(cfg, run=RunSpec(steps=0)), recs, global_batch=2) == 2  # 3 / 2
    picked = one_expression_per_video(recs, seed=0)
    assert [r.video_id for r in picked] == ["UVO/all/-CiPki3XuVI", "plain_vid"]
    assert one_expression_per_video(recs, seed=0) == picked  # seeded
    # across epochs the two-expression video's pick varies (both expressions appear within 20 epochs)
    seen = {one_expression_per_video(recs, seed=0, epoch=e)[0].exp_id for e in range(20)}
    assert seen == {"0", "1"}


def test_omni_r1_7b_vos_is_one_epoch_over_videos():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cfg = load_config(os.path.join(root, "experiments", "omni_r1_7b_vos.py"))
    assert (cfg.run.steps, cfg.run.epochs, cfg.run.epoch_unit, cfg.data.mixture_videos) == (0, 1.0, "videos", 2600)
    assert derive_steps(cfg.run, num_expressions=10_000, num_videos=2600, global_batch=cfg.data.batch_size) == 325
