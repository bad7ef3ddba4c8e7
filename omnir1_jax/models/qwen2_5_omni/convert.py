"""Hugging Face <-> Flax conversion of the Thinker with a declarative key table.

Flax parameter names follow transformers' module names, so the table maps a Flax path (dotted, e.g.
``language_model.layers.3.self_attn.q_proj.kernel``) to a checkpoint key plus a layout transform:

- ``linear``: torch ``weight`` [out, in] <-> Flax ``kernel`` [in, out] (transpose);
- ``conv1d``: torch [out, in, width] <-> Flax [width, in, out];
- ``patch``: torch Conv3d [D, C, t, p, p] <-> Flax [C*t*p*p, D] (stride == kernel, so it is a matmul);
- ``same``: unchanged (norm weights, biases, embeddings).

Checkpoint keys are written the way ``Qwen2_5OmniThinkerForConditionalGeneration.save_pretrained`` writes them
(``model.layers...``, ``visual...``, ``audio_tower...``, ``lm_head.weight``). On reading, keys of the full Omni
checkpoint (``thinker.`` prefix; talker / token2wav skipped) and transformers' in-memory layout
(``model.language_model.``, ``model.visual.``, ``model.audio_tower.``) are normalised to that form.

Every tensor's shape is asserted against the Flax model before use. With a mesh, each parameter is created
directly in its target sharding by :func:`jax.make_array_from_callback`; a device's callback reads only its
slice of the memory-mapped file, so no process ever holds a full host copy of the model.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from omnir1_jax.models.qwen2_5_omni.config import Qwen2_5OmniConfig
from omnir1_jax.models.qwen2_5_omni.safetensors_io import CheckpointError, SafetensorsDir, save_file
from omnir1_jax.models.qwen2_5_omni.sharding import ShardingConfig, _abstract_params, no_sharding, param_shardings
from omnir1_jax.models.qwen2_5_omni.thinker import Qwen2_5OmniThinker

# (Flax path regex, checkpoint key template, transform). First match wins.
KEY_TABLE: tuple[tuple[str, str, str], ...] = (
    (r"^language_model\.embed_tokens\.weight$", "model.embed_tokens.weight", "same"),
    (r"^language_model\.(.+)\.kernel$", r"model.\1.weight", "linear"),
    (r"^language_model\.(.+)\.(weight|bias)$", r"model.\1.\2", "same"),
    (r"^lm_head\.kernel$", "lm_head.weight", "linear"),
    (r"^visual\.patch_embed\.proj\.kernel$", "visual.patch_embed.proj.weight", "patch"),
    (r"^visual\.merger\.mlp_(\d)\.kernel$", r"visual.merger.mlp.\1.weight", "linear"),
    (r"^visual\.merger\.mlp_(\d)\.bias$", r"visual.merger.mlp.\1.bias", "same"),
    (r"^visual\.(.+)\.kernel$", r"visual.\1.weight", "linear"),
    (r"^visual\.(.+)\.(weight|bias)$", r"visual.\1.\2", "same"),
    (r"^audio_tower\.(conv\d)\.kernel$", r"audio_tower.\1.weight", "conv1d"),
    (r"^audio_tower\.(.+)\.kernel$", r"audio_tower.\1.weight", "linear"),
    (r"^audio_tower\.(.+)\.(weight|bias)$", r"audio_tower.\1.\2", "same"),
)

# Checkpoint layout -> Flax layout, and back.
_TO_FLAX: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "same": lambda w: w,
    "linear": lambda w: w.T,
    "conv1d": lambda w: w.transpose(2, 1, 0),
    "patch": lambda w: w.reshape(w.shape[0], -1).T,
}


def _to_hf(kind: str, w: np.ndarray, hf_shape: tuple[int, ...]) -> np.ndarray:
    if kind == "same":
        return w
    if kind == "linear":
        return w.T
    if kind == "conv1d":
        return w.transpose(2, 1, 0)
    return w.T.reshape(hf_shape)


def flax_name(path) -> str:
    """Dotted Flax parameter name from a pytree key path (drops Variable ``value`` wrappers)."""
    parts = []
    for k in path:
        name = getattr(k, "key", getattr(k, "name", getattr(k, "idx", None)))
        if name == "value":
            continue
        parts.append(str(name))
    return ".".join(parts)


def hf_key(name: str) -> tuple[str, str]:
    """(checkpoint key, transform) of a dotted Flax parameter name."""
    for pat, tmpl, kind in KEY_TABLE:
        if re.match(pat, name):
            return re.sub(pat, tmpl, name), kind
    raise CheckpointError(f"no checkpoint key for Flax parameter {name!r} (KEY_TABLE has no rule)")


def normalise_key(key: str) -> str | None:
    """Map a checkpoint key of any supported layout to the saved-Thinker layout; None for non-Thinker keys."""
    if key.startswith("thinker."):
        key = key[len("thinker.") :]
    elif key.startswith(("talker.", "token2wav.")):
        return None
    for pre, new in (
        ("model.language_model.", "model."),
        ("model.visual.", "visual."),
        ("model.audio_tower.", "audio_tower."),
    ):
        if key.startswith(pre):
            return new + key[len(pre) :]
    return key


def _hf_shape(kind: str, flax_shape: tuple[int, ...], cfg: Qwen2_5OmniConfig) -> tuple[int, ...]:
    if kind == "same":
        return flax_shape
    if kind == "linear":
        return flax_shape[::-1]
    if kind == "conv1d":
        return (flax_shape[2], flax_shape[1], flax_shape[0])
    v = cfg.vision
    return (flax_shape[1], v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size)


def abstract_model(
    cfg: Qwen2_5OmniConfig,
    dtype=jnp.float32,
    mesh=None,
    sharding: ShardingConfig | None = None,
    *,
    act_sharding=None,
    kv_sharding=None,
    attention: str = "chunked",
    param_dtype=None,
) -> Qwen2_5OmniThinker:
    """The model's structure with ``ShapeDtypeStruct`` leaves (no memory), e.g. for ahead-of-time compilation;
    parameters in ``param_dtype`` (default ``dtype``), computing in ``dtype``.

    With ``mesh`` (a Mesh, also one over devices this machine does not have, such as a TPU topology), every leaf
    carries its ``NamedSharding`` (``sharding``'s rules on the weights' logical axes) and the model carries its
    activation / KV-cache constraints, exactly as :func:`init_model` / :func:`from_hf` would build it.
    """
    model = nnx.eval_shape(
        lambda: Qwen2_5OmniThinker(
            cfg,
            dtype=dtype,
            rngs=nnx.Rngs(0),
            sharding=sharding,
            mesh=mesh,
            act_sharding=act_sharding,
            kv_sharding=kv_sharding,
            attention=attention,
            param_dtype=param_dtype,
        )
    )
    if mesh is None:
        return model
    graphdef, state = nnx.split(model)
    shardings = param_shardings(state, mesh, sharding)
    state = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), state, shardings)
    return nnx.merge(graphdef, state)


@functools.lru_cache(maxsize=8)
def param_shapes(cfg: Qwen2_5OmniConfig) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """(dotted Flax name, shape) of every parameter, from ``jax.eval_shape`` (cached per config; the abstract
    parameters are the ones :func:`~.sharding.memory_report` reads, traced once per configuration)."""
    state = _abstract_params(cfg)
    return tuple((flax_name(p), tuple(x.shape)) for p, x in jax.tree_util.tree_leaves_with_path(state))


def from_hf(
    path: str | os.PathLike,
    *,
    dtype=jnp.float32,
    mesh: Mesh | None = None,
    sharding: ShardingConfig | None = None,
    param_dtype=None,
) -> Qwen2_5OmniThinker:
    """Load a local Hugging Face Thinker (or full Qwen2.5-Omni) directory: ``config.json`` + ``*.safetensors``.

    Args:
      path: checkpoint directory (nothing is downloaded).
      dtype: the dtype the model computes in (e.g. ``jnp.bfloat16``).
      param_dtype: the dtype the parameters are stored in (default ``dtype``; ``jnp.float32`` for training
        with float32 master weights); tensors are cast to it on load.
      mesh / sharding: place each parameter in its ``NamedSharding`` (``sharding``'s rules on its logical axes,
        see :mod:`.sharding`) as it is read, and build the model with the activation / KV-cache constraints;
        without a mesh, parameters go to the default device.
    """
    path = os.fspath(path)
    cfg = Qwen2_5OmniConfig.from_pretrained(path)
    sharding = sharding or no_sharding()
    files = SafetensorsDir(path)
    src = {}
    for k in files:
        nk = normalise_key(k)
        if nk is not None:
            src[nk] = k
    model = abstract_model(cfg, dtype, mesh, sharding, param_dtype=param_dtype)
    graphdef, abstract = nnx.split(model)
    used = set()
    dtype = dtype if param_dtype is None else param_dtype  # what the tensors are stored in

    def load(p, leaf):
        name = flax_name(p)
        key, kind = hf_key(name)
        if key not in src:
            raise CheckpointError(f"{path}: tensor {key!r} (for {name}) not found")
        used.add(key)
        want = _hf_shape(kind, tuple(leaf.shape), cfg)
        got = files.shape(src[key])
        if tuple(got) != want:
            raise CheckpointError(f"{path}: tensor {key!r} has shape {tuple(got)}, expected {want} for {name}")
        raw = files.get(src[key])
        if mesh is None:
            return jnp.asarray(np.asarray(_TO_FLAX[kind](raw)), dtype=dtype)
        if kind == "linear":  # read only this device's slice of the [out, in] tensor
            cb = lambda idx: np.asarray(raw[idx[1], idx[0]]).T.astype(dtype)
        else:
            cb = lambda idx: np.asarray(_TO_FLAX[kind](raw)[idx]).astype(dtype)
        return jax.make_array_from_callback(tuple(leaf.shape), leaf.sharding, cb)  # from abstract_model

    state = jax.tree_util.tree_map_with_path(load, abstract)
    return nnx.merge(graphdef, state)


def stored_dtype(path: str | os.PathLike) -> str:
    """The dtype a Hugging Face directory's weights are stored in (``"bfloat16"`` for the released Qwen2.5-Omni
    checkpoints): the most common floating dtype of its safetensors tensors (read from the headers only)."""
    files = SafetensorsDir(os.fspath(path))
    counts: dict[str, int] = {}
    for k in files:
        name = files.dtype(k).name
        if name in ("float32", "bfloat16", "float16", "float64"):
            counts[name] = counts.get(name, 0) + 1
    if not counts:
        raise CheckpointError(f"{path}: no floating-point tensors")
    return max(sorted(counts), key=counts.get)


def to_hf(model: Qwen2_5OmniThinker, path: str | os.PathLike, *, dtype=None, overwrite: bool = False) -> str:
    """Write ``config.json`` + ``model.safetensors`` that ``Qwen2_5OmniThinkerForConditionalGeneration``
    loads. The directory is written to a temporary sibling first and renamed, so a failure leaves nothing.

    Args:
      dtype: optional numpy/jax dtype to cast to (default: the parameters' own dtype).
      overwrite: replace an existing ``path`` (otherwise an existing non-empty directory raises).
    """
    path = os.fspath(path)
    if os.path.exists(path) and os.listdir(path) and not overwrite:
        raise FileExistsError(f"{path}: exists and is not empty (pass overwrite=True to replace it)")
    cfg: Qwen2_5OmniConfig = model.config
    _, state = nnx.split(model, nnx.Param)
    tensors: dict[str, np.ndarray] = {}

    def put(p, leaf):
        name = flax_name(p)
        key, kind = hf_key(name)
        w = np.asarray(jax.device_get(leaf))
        if dtype is not None:
            w = w.astype(dtype)
        tensors[key] = np.ascontiguousarray(_to_hf(kind, w, _hf_shape(kind, w.shape, cfg)))
        return leaf

    jax.tree_util.tree_map_with_path(put, state)
    parent = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".to_hf_")
    try:
        save_file(tensors, os.path.join(tmp, "model.safetensors"))
        hf_cfg = cfg.to_hf_dict()
        hf_cfg["dtype"] = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}.get(
            str(next(iter(tensors.values())).dtype), "float32"
        )
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(hf_cfg, f, indent=2)
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
