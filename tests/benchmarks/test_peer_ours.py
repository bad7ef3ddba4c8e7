"""Our side of the peer benchmark (``benchmarks/peer_ours.py``): its text-only task plug-in drives the real
learner, and the learner's update with the policy and optimiser bound once (``Learner._bound``,
``nnx.cached_partial``) lands the same parameters as calling ``rl.update.grpo_step`` on them every step."""

from __future__ import annotations

import functools
import os
import sys

import flax.nnx as nnx
import jax
import numpy as np
import pytest

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "benchmarks")
)
import peer_ours
import peer_task
from transformers import AutoTokenizer

from omnir1_jax.learner import Learner, grpo_stage
from omnir1_jax.models.qwen2_5_omni.qwen2 import from_hf_qwen2


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return peer_task.write_model(str(tmp_path_factory.mktemp("peer_model")))


def _learner(model_dir: str, out: str) -> Learner:
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    cfg = peer_ours.config(0, out)
    return Learner(
        cfg,
        peer_ours.ColourTask(tokenizer, 8),
        grpo_stage(cfg, export=False),
        policy=from_hf_qwen2(model_dir),
        tokenizer=tokenizer,
        records=list(peer_task.COLOURS),
    )


def _params(model) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_bound_update_equals_the_plain_step_and_sees_in_place_restores(model_dir, tmp_path):
    bound, plain = _learner(model_dir, str(tmp_path / "a")), _learner(model_dir, str(tmp_path / "b"))
    # the reference: grpo_step / nll_step called on the model and optimiser every step (nnx.jit's traversal)
    plain._bound = lambda fn: functools.partial(fn, plain.model, plain.optimizer)
    start = _params(bound.model)
    for _ in range(2):
        m_bound, m_plain = bound.train_step(), plain.train_step()
        assert m_bound["loss"] == m_plain["loss"]
    after = _params(bound.model)
    moved = sum(int(np.any(a != b)) for a, b in zip(after, start))
    assert moved > 0  # the bound step's update reached the learner's own model, not a copy
    assert all(np.array_equal(a, b) for a, b in zip(after, _params(plain.model)))
    # an in-place update (what restore does) is what the next bound call reads
    for lr in (bound, plain):
        nnx.update(lr.model, jax.tree.unflatten(jax.tree.structure(nnx.state(lr.model, nnx.Param)), start))
        lr.train_step()
    got, want = _params(bound.model), _params(plain.model)
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    assert any(np.any(a != b) for a, b in zip(got, after))  # it continued from the restored values
