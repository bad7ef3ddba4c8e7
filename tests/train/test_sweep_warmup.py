"""A sweep's arms that differ only after the SFT warm-up share it: which arms share, and that a shared warm-up is
the source arm's policy, optimiser state and step when the arm's learner resumes it."""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np
import pytest

from omnir1_jax.config import SFTSpec, load_config
from omnir1_jax.data.synthetic import writer
from omnir1_jax.learner import Learner, sft_stage
from omnir1_jax.policy import build_tokenizer
from omnir1_jax.runtime.records import read_records
from omnir1_jax.sweep import share_warmup, warmup_key
from omnir1_jax.tasks import make_task
from tests.train._tiny import params_of, perturb, tiny_config, tiny_policy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TABLE4 = os.path.join(ROOT, "experiments", "synthetic_cpu_table4.py")


def test_the_table4_rows_share_one_warmup_and_other_changes_do_not():
    rows = [load_config(f"{TABLE4}:{v}") for v in ("rk", "rk_ra", "rk_rg", "rk_ra_rg")]
    assert len({r.grpo.rewards for r in rows}) == 4  # the rows differ ...
    assert all(warmup_key(r) == warmup_key(rows[0]) for r in rows)  # ... only after the warm-up
    base = rows[0]
    for change in ("optim.lr=1e-4", "optim.warmup_steps=3", "run.steps=7", "grpo.overlap=one_step"):
        assert warmup_key(load_config(f"{TABLE4}:rk", [change])) == warmup_key(base), change
    for change in (
        "sft.lr=3e-3",
        "sft.steps=10",
        "sft.think_weight=1.0",
        "data.batch_size=2",
        "grpo.max_new_tokens=60",
        "grpo.beta=0.1",  # GRPO-only, but not one of the fields the key leaves out: conservatively not shared
        "run.seed=3",
    ):
        assert warmup_key(load_config(f"{TABLE4}:rk", [change])) != warmup_key(base), change
    other_model = dataclasses.replace(base, model=dataclasses.replace(base.model, overrides=(("hidden_size", 64),)))
    assert warmup_key(other_model) != warmup_key(base)
    assert warmup_key(load_config(f"{TABLE4}:rk", ["run.resume=false"])) is None
    assert warmup_key(load_config(f"{TABLE4}:rk", ["sft.steps=0"])) is None


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("warmup")
    root = writer.write_vos(str(tmp / "w"), 5, seed=2, height=56, width=84, min_frames=4, max_frames=4)
    return tmp, root


def _learner(root, arm_dir, seed):
    cfg = tiny_config(root, os.path.join(arm_dir, f"seed{seed}"), resume=True, seed=seed)
    cfg = dataclasses.replace(cfg, sft=SFTSpec(steps=2, batch_size=2))
    tok = build_tokenizer(cfg.model)
    records = read_records(cfg.data, "train")
    return Learner(cfg, make_task(cfg, tok), sft_stage(cfg), policy=tiny_policy(seed), tokenizer=tok, records=records)


def test_a_shared_warmup_resumes_as_the_source_arm_left_it(world):
    tmp, root = world
    src, dst = str(tmp / "arm_a"), str(tmp / "arm_b")
    # the source arm's warm-up of seed 0, as a finished run leaves it: its policy moved away from the
    # initialisation, checkpointed at the warm-up's last step
    a = _learner(root, src, 0)
    perturb(a.model, seed=3)
    a.step = 2
    a.save()
    trained = params_of(a.model)
    # seed 1's warm-up stopped at step 1 (unfinished): not shared
    b1 = _learner(root, src, 1)
    b1.step = 1
    b1.save()
    a.close()
    b1.close()

    assert share_warmup(src, dst, (0, 1), steps=2) == [0]
    assert not os.path.exists(os.path.join(dst, "seed1", "sft"))
    sft_dir = os.path.join(dst, "seed0", "sft")
    assert sorted(os.listdir(os.path.dirname(sft_dir))) == ["sft"]  # nothing half-written beside it
    with open(os.path.join(sft_dir, "shared_from.json")) as f:
        assert json.load(f) == {"arm": "arm_a", "seed": 0, "step": 2}

    b = _learner(root, dst, 0)  # resumes the copy: the step and the trained parameters, not the initialisation
    try:
        assert b.step == 2
        fresh = params_of(tiny_policy(0))
        got = params_of(b.model)
        jax.tree.map(np.testing.assert_array_equal, got, trained)
        assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(fresh)))
        assert b.train(progress=False) == []  # no warm-up step is run again
    finally:
        b.close()
    # a second call finds the warm-up there and copies nothing
    assert share_warmup(src, dst, (0, 1), steps=2) == []
