"""The seed axis: several independent models' states, prompts and samples stacked on a leading axis, and the
sampler vmapped over it (one program samples every seed; :mod:`omnir1_jax.seeds` trains with it and
:mod:`omnir1_jax.evaluation.seeds` evaluates with it)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from omnir1_jax.models.qwen2_5_omni import blocks
from omnir1_jax.models.qwen2_5_omni.sampling import generate_seeds


def stack(trees: Sequence[Any]):
    """Pytrees of equal structure stacked on a new leading axis (the seed axis)."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


@functools.partial(jax.jit, static_argnums=1)
def unstack_all(tree, n: int) -> list:
    """Every element of the leading axis (of size ``n``) of every leaf, as ``n`` pytrees, in one program: the
    seed group writes its states back after every update, and slicing leaf by leaf costs one dispatch per leaf
    and seed (~0.35 s a step for the CPU demo's five seeds, against ~0.1 s here)."""
    return [jax.tree.map(lambda x: x[i], tree) for i in range(n)]


def stack_prompts(model_config, prompts: Sequence[Any], pad_id: int = 0):
    """Prepared prompt batches (one ``ModelInputs`` per seed, host arrays, possibly of different shapes) padded
    to common sizes and stacked on a leading seed axis: token rows left-padded, encoder inputs given inert
    filler (:func:`~omnir1_jax.models.qwen2_5_omni.blocks.pad_block`), so every real token's logits are those
    of its own batch."""
    sizes = blocks.common_sizes([blocks.block_sizes(p) for p in prompts])
    padded = [blocks.pad_block(model_config, p, sizes, block=0, num_blocks=1, pad_id=pad_id) for p in prompts]
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *padded)


def pad_columns(arrays: Sequence[np.ndarray], fill) -> np.ndarray:
    """``[rows, width_k]`` arrays right-padded with ``fill`` to the widest and stacked: ``[N, rows, width]``."""
    width = max(np.shape(a)[1] for a in arrays)
    return np.stack(
        [np.pad(np.asarray(a), ((0, 0), (0, width - np.shape(a)[1])), constant_values=fill) for a in arrays]
    )


_SAMPLE_STATIC = (
    "graphdef",
    "shared_inputs",
    "max_new_tokens",
    "num_samples",
    "greedy",
    "temperature",
    "top_k",
    "top_p",
    "eos",
    "pad_token_id",
    "suppress",
)


@functools.partial(jax.jit, static_argnames=_SAMPLE_STATIC)
def sample_seeds(
    states,
    inputs,
    keys,
    *,
    graphdef,
    shared_inputs: bool = False,
    max_new_tokens: int,
    num_samples: int,
    greedy: bool,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    eos: tuple = (),
    pad_token_id: int = 0,
    suppress: tuple = (),
):
    """Every seed's completions in one program: ``states`` (a model state stacked on the seed axis, split with
    ``graphdef``), ``inputs`` (stacked prompts, or one batch for every seed with ``shared_inputs``), ``keys``
    (one PRNG key per seed). Returns a ``SampleOutput`` whose leaves have a leading seed axis."""
    return generate_seeds(
        graphdef,
        states,
        inputs,
        keys,
        shared_inputs=shared_inputs,
        max_new_tokens=max_new_tokens,
        num_samples=num_samples,
        greedy=greedy,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        eos=eos,
        pad_token_id=pad_token_id,
        suppress=suppress,
    )
