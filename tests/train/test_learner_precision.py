"""The learner under the precision policy: bf16 compute with float32 masters (``model.dtype = bfloat16``,
``model.param_dtype = float32``), a bf16 reference, exact resume of the float32 masters, the export's dtype and
Dr. GRPO's constant divisor.

The task's rewards are scripted (no bridge): a row's reward is a function of its text, so the advantages are
non-zero and the update moves the policy.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omnir1_jax.config import ModelSpec
from omnir1_jax.learner import Learner, grpo_stage
from omnir1_jax.policy import build_policy, build_tokenizer, export_dtype
from omnir1_jax.tasks import make_task
from omnir1_jax.tasks.base import Scored
from tests.train._tiny import params_of, tiny_config


class _Scripted:
    """The VOS task with a scripted reward: characters of the text mod 7, plus a per-row offset."""

    def __init__(self, task):
        self._task = task

    def __getattr__(self, name):
        return getattr(self._task, name)

    def score(self, batch, texts, group_size):
        r = np.array([len(t) % 7 for t in texts], np.float32) + np.arange(len(texts), dtype=np.float32) * 0.25
        return Scored(r, {"length": r}, {})


def _cfg(tmp, out, **model):
    cfg = tiny_config(str(tmp / "syn"), str(tmp / out), steps=2, checkpoint_every=1, resume=True)
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dtype="bfloat16", **model))


def _learner(cfg, seed=0):
    tok = build_tokenizer(cfg.model)
    policy = None if seed == 0 else build_policy(cfg.model, seed=seed)
    return Learner(cfg, _Scripted(make_task(cfg, tok)), grpo_stage(cfg, export=True), policy=policy, tokenizer=tok)


def _dtypes(model):
    return {x.dtype for x in jax.tree.leaves(nnx.state(model, nnx.Param))}


def _safetensors_dtypes(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return {v["dtype"] for k, v in header.items() if k != "__metadata__"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("precision")
    cfg = _cfg(tmp, "a", export_dtype="bfloat16")
    learner = _learner(cfg)
    try:
        history = learner.train(progress=False)
        final = params_of(learner.model)
        assert _dtypes(learner.model) == {jnp.dtype(jnp.float32)}
        assert _dtypes(learner.reference) == {jnp.dtype(jnp.bfloat16)}
        assert learner.loss_spec.max_len == cfg.grpo.max_new_tokens  # Dr. GRPO's budget, not the padded width
        moments = [
            x for x in jax.tree.leaves(nnx.state(learner.optimizer)) if jnp.issubdtype(x.dtype, jnp.floating) and x.ndim
        ]
        assert {x.dtype for x in moments} == {jnp.dtype(jnp.float32)}
    finally:
        learner.close()
    return tmp, cfg, history, final


def test_bf16_compute_learner_trains_float32_masters(trained):
    _, _, history, final = trained
    assert len(history) == 2 and all(np.isfinite(m["loss"]) for m in history)
    assert any(m["loss"] != 0 for m in history)
    assert {x.dtype for x in jax.tree.leaves(final)} == {np.dtype(np.float32)}


def test_resume_restores_float32_masters_bit_for_bit(trained):
    tmp, cfg, _, final = trained
    resumed = _learner(cfg, seed=99)  # built from another policy: everything must come from the checkpoint
    try:
        assert resumed.step == 2
        got = params_of(resumed.model)
        jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), got, final)
        assert {x.dtype for x in jax.tree.leaves(got)} == {np.dtype(np.float32)}
        assert _dtypes(resumed.reference) == {jnp.dtype(jnp.bfloat16)}
    finally:
        resumed.close()


def test_export_writes_the_dtype_asked_for(trained):
    tmp, cfg, _, final = trained
    hf = os.path.join(cfg.run.out_dir, "hf")
    assert _safetensors_dtypes(os.path.join(hf, "model.safetensors")) == {"BF16"}
    with open(os.path.join(hf, "config.json")) as f:
        assert json.load(f)["dtype"] == "bfloat16"
    # "auto" keeps the dtype the checkpoint was stored in (here: the bf16 export), float32 for a preset
    assert export_dtype(ModelSpec(checkpoint=hf)) == "bfloat16"
    assert export_dtype(ModelSpec()) == "float32"
    assert export_dtype(ModelSpec(checkpoint=hf, export_dtype="float32")) == "float32"
