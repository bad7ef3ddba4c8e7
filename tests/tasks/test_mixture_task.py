"""Omni-R1 Table 6's joint run: Ref-AVS (RefAID) and VOS prompts in every batch of one GRPO run
(data.task = "mixture", omnir1_jax.tasks.mixture), on the tiny policy, the synthetic worlds and the synthetic
bridge."""

from __future__ import annotations

import dataclasses
import math
import os

import jax
import numpy as np
import pytest

from omnir1_jax.config import ConfigError, DataSpec, ModelSpec, load_config
from omnir1_jax.data.synthetic import writer
from omnir1_jax.runtime.bridge import open_bridge
from omnir1_jax.tasks.synthetic_targets import answer_text
from tests.train._tiny import TINY_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def joint(tmp_path_factory):
    from omnir1_jax.config import BridgeSpec

    base = tmp_path_factory.mktemp("joint")
    writer.write_vos(str(base / "vos"), 5, seed=0, height=56, width=84, min_frames=4, max_frames=4)
    writer.write_avs(str(base / "avs"), 4, seed=0, height=56, width=84)
    bridge = open_bridge(
        BridgeSpec(grounder="synthetic", segmenter="synthetic", workers=1, timeout_s=120),
        str(base / "bridge"),
        wait_s=120,
    )
    yield base, bridge
    bridge.close()


def _tiny(base, bridge):
    """experiments/table6.py:avs_vos on the tiny policy: 2 Ref-AVS + 2 VOS prompts per batch, groups of 2."""
    cfg = load_config(os.path.join(ROOT, "experiments", "table6.py:avs_vos"))
    data = dataclasses.replace(
        cfg.data,
        root=str(base),
        batch_size=4,
        min_frames=4,
        max_frames=4,
        workers=0,
        s1_max_pixels=4 * 28 * 28,
        s1_min_pixels=4 * 28 * 28,
        dataset="revos",
        mixture=(),
        tasks=(("refaid", "refavs", "avs", 2), ("vos", "revos", "vos", 2)),
    )
    return dataclasses.replace(
        cfg,
        model=ModelSpec(overrides=TINY_MODEL),
        data=data,
        bridge=dataclasses.replace(
            cfg.bridge, start=False, addresses=("ipc://unused-bridge.sock",), workers=1, timeout_s=120
        ),
        grpo=dataclasses.replace(cfg.grpo, group_size=2, max_new_tokens=8),
        run=dataclasses.replace(
            cfg.run, out_dir=str(base / "run"), steps=1, checkpoint_every=0, resume=False, epoch_unit="expressions"
        ),
    )  # the tiny AVS world has few training videos


def test_the_joint_run_takes_a_grpo_step_with_both_tasks_in_one_batch(joint):
    from tests.train._tiny import make_learner, perturb

    base, bridge = joint
    cfg = _tiny(base, bridge)
    assert cfg.data.task == "mixture" and cfg.grpo.rewards.alpha_k == 1.0 and cfg.grpo.rewards.alpha_g == 1.0
    tr = make_learner(cfg, bridge)
    try:
        perturb(tr.policy)
        state = tr.data_iter.get_state()
        batch = next(tr.data_iter)
        avs, vos = batch["parts"]
        assert avs["dataset"] == ["refavs", "refavs"] and vos["dataset"] == ["revos", "revos"]
        # one prompt batch: rows 0-1 carry the Ref-AVS image + audio, rows 2-3 the VOS video
        mi = tr.task.model_inputs(tr.policy.config, batch)
        t = mi.input_ids.shape[1]
        rows = lambda f: set((np.asarray(f) // t).tolist())
        assert rows(mi.audio_positions) == {0, 1} and rows(mi.image_positions) == {0, 1}
        assert rows(mi.video_positions) == {2, 3}
        # each group is scored by its own task: a well-formed answer of each kind vs junk
        fps = batch["parts"][1]["fps_s1"]
        texts = []
        for e in avs["expression"]:
            texts += [f"<think>the sound</think><answer>{e}</answer>", "junk"]
        for e in vos["expression"]:
            texts += [answer_text([0], e, fps), "junk"]
        scored = tr.task.score(batch, texts, 2)
        assert {"refaid/format", "refaid/alignment", "vos/format", "vos/keyframe", "vos/grounding"} <= set(
            scored.components
        ) and all(k.split("/")[0] in ("refaid", "vos") for k in scored.components)
        assert all(len(v) == 4 for v in scored.components.values())
        np.testing.assert_array_equal(scored.components["refaid/format"], [1, 0, 1, 0])
        np.testing.assert_array_equal(scored.components["vos/format"], [1, 0, 1, 0])
        np.testing.assert_array_equal(scored.rewards[1::2], 0.0)
        assert np.all(scored.rewards[0::2] >= 1.0)
        # the mixed iterator's state restores the same batch
        tr.data_iter.set_state(state)
        again = next(tr.data_iter)
        keys = lambda b: [(v, e) for p in b["parts"] for v, e in zip(p["video_id"], p["exp_id"])]
        assert keys(again) == keys(batch)
        # and the learner takes one GRPO step on it
        tr.data_iter.set_state(state)
        (m,) = tr.train(1, progress=False)
        assert math.isfinite(m["loss"]) and m["loss"] != 0.0
        assert {"reward/refaid/format", "reward/refaid/alignment", "reward/vos/grounding"} <= set(m)
        assert len(tr.last_texts) == 8
    finally:
        tr.close()


def test_mixture_configuration_errors_name_the_entry():
    ok = dict(task="mixture", batch_size=4)
    with pytest.raises(ConfigError, match=r"data.tasks give 3 prompts per batch, data.batch_size is 4"):
        DataSpec(**ok, tasks=(("refaid", "refavs", "avs", 1), ("vos", "revos", "vos", 2)))
    with pytest.raises(ConfigError, match=r"data.tasks\[1\]: task 'vos' reads .* not 'refavs'"):
        DataSpec(**ok, tasks=(("refaid", "refavs", "avs", 2), ("vos", "refavs", "vos", 2)))
    with pytest.raises(ConfigError, match=r"data.tasks\[0\]: task 'qa' cannot be mixed"):
        DataSpec(**ok, tasks=(("qa", "crossomni", "co", 4),))
    with pytest.raises(ConfigError, match=r"data.tasks\[1\]: directory '\.\./x' must be a relative path"):
        DataSpec(**ok, tasks=(("refaid", "refavs", "avs", 2), ("vos", "revos", "../x", 2)))
    with pytest.raises(ConfigError, match="needs data.tasks"):
        DataSpec(**ok)
    spec = DataSpec(**ok, root="data", tasks=(("refaid", "refavs", "avs", 2), ("vos", "revos", "vos", 2)))
    parts = spec.task_parts()
    assert [(t, s.dataset, s.root, s.batch_size, k) for t, s, k in parts] == [
        ("refaid", "refavs", os.path.join("data", "avs"), 2, 2),
        ("vos", "revos", os.path.join("data", "vos"), 2, 2),
    ]
    assert jax.tree.leaves([s.tasks for _, s, _ in parts]) == []


def test_the_table1_sft_baseline_supervises_the_refaid_format_with_the_expression(joint):
    """experiments/table1_sft_refavs.py: its SFT targets are RefAID answers whose description is the record's own
    expression, which the RefAID format reward accepts (R_fmt = 1) and the description parser reads back."""
    from omnir1_jax.learner import sft_stage
    from omnir1_jax.rewards import format_reward, parse_description
    from tests.train._tiny import make_learner

    base, bridge = joint
    cfg = load_config(os.path.join(ROOT, "experiments", "table1_sft_refavs.py"))
    assert (cfg.sft.target, cfg.sft.steps * cfg.sft.batch_size, cfg.data.task) == ("expression", 1600, "refaid")
    cfg = dataclasses.replace(
        cfg,
        model=ModelSpec(overrides=TINY_MODEL),
        data=dataclasses.replace(
            cfg.data,
            root=str(base / "avs"),
            batch_size=2,
            workers=0,
            s1_max_pixels=4 * 28 * 28,
            s1_min_pixels=4 * 28 * 28,
        ),
        sft=dataclasses.replace(cfg.sft, batch_size=2, steps=1),
        run=dataclasses.replace(cfg.run, out_dir=str(base / "sft_run"), resume=False),
    )
    tr = make_learner(cfg, bridge, stage=sft_stage(cfg))
    try:
        batch = next(tr.data_iter)
        texts = tr.task.sft_targets(batch)
        assert [parse_description(t) for t in texts] == list(batch["expression"])
        np.testing.assert_array_equal(format_reward(texts), [1.0, 1.0])
        (m,) = tr.train(1, progress=False)
        assert math.isfinite(m["loss"]) and m["loss"] > 0
    finally:
        tr.close()
