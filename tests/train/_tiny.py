"""Shared tiny run configuration for the trainer reliability tests (and their subprocess workers).

The tiniest policy the trainer runs (hidden 32, one layer), 4-frame clips of a 56x84 synthetic world, groups
of 2 and 12 new tokens: a step costs well under a second once compiled, and every run built from these
helpers compiles the same shapes, so the jit caches stay warm inside one pytest process.
"""

from __future__ import annotations

import functools

import flax.nnx as nnx
import jax
import numpy as np

from omnir1_jax.config import BridgeSpec, DataSpec, ExperimentConfig, GRPOSpec, ModelSpec, OptimSpec, RunSpec
from omnir1_jax.rewards import RewardWeights

# The suite's tiny policy (``model.overrides``): one text layer, one vision block, one audio layer. The tiny preset's
# encoders have two of each; with one, XLA compiles about a fifth less for every program of a learner test (the
# encoders are in prefill, scoring and the update), and no test here is about encoder depth.
TINY_MODEL = (("hidden_size", 32), ("num_layers", 1), ("vision_depth", 1), ("audio_layers", 1))


def tiny_config(
    data_root: str,
    out_dir: str,
    *,
    steps: int = 4,
    checkpoint_every: int = 0,
    resume: bool = False,
    seed: int = 0,
    batch_size: int = 2,
    grounder_bridge: bool = True,
) -> ExperimentConfig:
    """A whole experiment on the tiny policy and synthetic bridge (R_A on, so every group queries System 2)."""
    return ExperimentConfig(
        model=ModelSpec(overrides=TINY_MODEL),
        data=DataSpec(
            root=data_root,
            synthetic_videos=5,
            synthetic_size=(56, 84),
            batch_size=batch_size,
            min_frames=4,
            max_frames=4,
            s1_max_pixels=4 * 28 * 28,
            s1_min_pixels=4 * 28 * 28,
        ),
        bridge=BridgeSpec(grounder="synthetic", segmenter="synthetic", workers=1, timeout_s=120),
        grpo=GRPOSpec(
            group_size=2,
            max_new_tokens=12,
            beta=0.04,
            rewards=RewardWeights(alpha_a=1.0) if grounder_bridge else RewardWeights(alpha_g=0.0),
        ),
        optim=OptimSpec(lr=1e-3, weight_decay=0.0),
        run=RunSpec(out_dir=out_dir, steps=steps, checkpoint_every=checkpoint_every, resume=resume, seed=seed),
    )


@functools.cache
def _tiny_policy(seed: int) -> nnx.Module:
    from omnir1_jax.policy import build_policy

    return build_policy(tiny_config("data", "run").model, seed=seed)  # (the paths are not used)


def tiny_policy(seed: int = 0) -> nnx.Module:
    """A copy of what a learner on :func:`tiny_config` builds (``build_policy(cfg.model, seed=seed)``), built once
    per process: building one compiles its initialiser (10-15 s on 2 cores), cloning costs nothing."""
    return nnx.clone(_tiny_policy(seed))


def perturb(model: nnx.Module, seed: int = 7, scale: float = 0.05) -> None:
    """Move ``model`` away from its frozen reference in place (deterministically).

    A freshly initialised policy equals its reference, samples unparseable text (every reward 0, advantages 0)
    and so has a zero GRPO loss and gradient; after this the KL term gives a non-zero loss that depends on the
    sampled tokens, the data, the parameters and the optimiser state — everything a resume must restore."""
    state = nnx.state(model, nnx.Param)
    leaves, treedef = jax.tree.flatten(state)
    rng = np.random.default_rng(seed)
    out = []
    for x in leaves:
        noise = (scale * rng.standard_normal(x.shape)).astype(x.dtype)
        # laid out like the parameter (a global array on a multi-process mesh: each process its own shards)
        out.append(x + jax.make_array_from_callback(x.shape, x.sharding, lambda idx, n=noise: n[idx]))
    nnx.update(model, jax.tree.unflatten(treedef, out))


def params_of(model: nnx.Module):
    """The model's parameters as a pytree of numpy arrays (a copy)."""
    return jax.tree.map(np.array, nnx.state(model, nnx.Param))


def losses(history) -> np.ndarray:
    return np.array([m["loss"] for m in history], np.float64)


def make_learner(cfg: ExperimentConfig, bridge, *, policy=None, records=None, stage=None):
    """The one learner on ``cfg``'s task with System 2 reached through ``bridge`` (a ``setup.Bridge``)."""
    from omnir1_jax.learner import Learner, grpo_stage
    from omnir1_jax.policy import build_tokenizer
    from omnir1_jax.tasks import make_task

    tok = build_tokenizer(cfg.model)
    task = make_task(cfg, tok, bridge=(lambda: bridge.client) if bridge is not None else None)
    return Learner(cfg, task, stage or grpo_stage(cfg, export=False), policy=policy, tokenizer=tok, records=records)
