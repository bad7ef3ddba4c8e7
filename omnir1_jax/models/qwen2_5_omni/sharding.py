"""One ShardingConfig for the Thinker: how parameters, activations and the KV cache map onto a mesh.

Mesh axes: ``data`` (pure data parallel), ``fsdp`` (data parallel + parameter sharding), ``tensor``
(Megatron-style: column-parallel in-projections, row-parallel out-projections). Spec names carry their shape
letters (D model width, F/N output features, V vocabulary, B batch, T tokens, S cache, K kv heads, H head dim).

A spec axis whose mesh size does not divide the dimension is dropped (replicated) for that parameter, so the
same rules serve the tiny test model and the 7B one. :func:`no_sharding` (everything replicated, no
activation constraints) is the default for tests; :func:`fsdp_tp` is the 3-D layout.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXES = ("data", "fsdp", "tensor")


@dataclasses.dataclass(frozen=True)
class ShardingConfig:
    """PartitionSpecs of the Thinker's parameters and activations (None everywhere = replicated)."""

    embed_vd: P = P()  # token embedding [V, D]
    in_proj_df: P = P()  # column-parallel kernels [D_in, F_out]: q/k/v, gate/up, fc1, merger fc0, lm_head
    in_bias_f: P = P()  # their biases [F_out]
    out_proj_fd: P = P()  # row-parallel kernels [F_in, D_out]: o_proj, down_proj, attn.proj, out_proj, fc2
    replicated: P = P()  # norms, conv front end, small tables
    act_btd: Optional[P] = None  # activations at decoder-block boundaries (None: no constraint)
    kv_cache_bskh: P = P()  # KV cache [B, S, K, H]
    batch_bt: P = P()  # token-level inputs [B, T]

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is not None and not isinstance(v, P):
                raise TypeError(f"ShardingConfig.{f.name} must be a PartitionSpec, got {v!r}")
            for ax in (v or ()):
                for a in (ax if isinstance(ax, tuple) else (ax,)):
                    if a is not None and a not in AXES:
                        raise ValueError(f"ShardingConfig.{f.name}: unknown mesh axis {a!r} (axes are {AXES})")


def no_sharding() -> ShardingConfig:
    """Everything replicated; the default (single device, tests)."""
    return ShardingConfig()


def fsdp_tp() -> ShardingConfig:
    """Parameters sharded over ``fsdp`` x ``tensor``; batch over ``data`` x ``fsdp``."""
    batch = ("data", "fsdp")
    return ShardingConfig(
        embed_vd=P("tensor", "fsdp"), in_proj_df=P("fsdp", "tensor"), in_bias_f=P("tensor"),
        out_proj_fd=P("tensor", "fsdp"), replicated=P(), act_btd=P(batch, None, None),
        kv_cache_bskh=P(batch, None, "tensor", None), batch_bt=P(batch, None),
    )


# Parameter-name rules (regex on the dotted Flax name) -> ShardingConfig field.
_RULES: tuple[tuple[str, str], ...] = (
    (r"embed_tokens\.weight$", "embed_vd"),
    (r"(q_proj|k_proj|v_proj|gate_proj|up_proj|fc1|mlp_0|attn\.q|attn\.k|attn\.v|lm_head|patch_embed\.proj)"
     r"\.kernel$", "in_proj_df"),
    (r"(q_proj|k_proj|v_proj|gate_proj|up_proj|fc1|mlp_0|attn\.q|attn\.k|attn\.v)\.bias$", "in_bias_f"),
    (r"(o_proj|down_proj|attn\.proj|out_proj|fc2|mlp_2|audio_tower\.proj)\.kernel$", "out_proj_fd"),
)


def make_mesh(shape: tuple[int, int, int] = (1, 1, 1), devices=None) -> Mesh:
    """A (data, fsdp, tensor) mesh with Auto axis types over the first prod(shape) devices."""
    devices = jax.devices() if devices is None else devices
    n = math.prod(shape)
    if len(devices) < n:
        raise ValueError(f"mesh shape {shape} needs {n} devices, {len(devices)} available")
    return Mesh(np.asarray(devices[:n]).reshape(shape), AXES, axis_types=(AxisType.Auto,) * 3)


def _axis_size(mesh_shape: Mapping[str, int], ax) -> int:
    axes = ax if isinstance(ax, tuple) else (ax,)
    return math.prod(mesh_shape.get(a, 1) for a in axes if a is not None)


def fit_spec(spec: P, shape: tuple[int, ...], mesh_shape: Mapping[str, int]) -> P:
    """Drop spec entries whose mesh size does not divide the dimension; trim to the array rank."""
    entries = list(spec)[: len(shape)]
    out = []
    for i, ax in enumerate(entries):
        out.append(ax if ax is not None and shape[i] % _axis_size(mesh_shape, ax) == 0 else None)
    return P(*out)


def constrain(x, spec: Optional[P]):
    """``with_sharding_constraint`` under the current mesh (``jax.set_mesh``); no-op without one or spec None.

    Entries whose mesh size does not divide the dimension are dropped (e.g. a prefill batch of 1 prompt).
    """
    if spec is None:
        return x
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return x
    return jax.lax.with_sharding_constraint(x, fit_spec(spec, x.shape, dict(mesh.shape)))


def param_spec(name: str, shape: tuple[int, ...], sharding: ShardingConfig, mesh) -> P:
    """PartitionSpec of parameter ``name`` (dotted Flax path) for ``mesh`` (a Mesh or an axis-size mapping)."""
    mesh_shape = dict(mesh.shape) if hasattr(mesh, "shape") and not isinstance(mesh, Mapping) else dict(mesh)
    field = "replicated"
    for pat, f in _RULES:
        if re.search(pat, name):
            field = f
            break
    return fit_spec(getattr(sharding, field), tuple(shape), mesh_shape)


def state_specs(state, sharding: ShardingConfig, mesh):
    """PartitionSpec pytree matching an ``nnx.State`` of parameters."""
    from omnir1_jax.models.qwen2_5_omni.convert import flax_name

    return jax.tree_util.tree_map_with_path(
        lambda p, leaf: param_spec(flax_name(p), leaf.shape, sharding, mesh), state)


def shard_model(model, mesh: Mesh, sharding: ShardingConfig):
    """Return ``model`` with every parameter placed by ``sharding`` on ``mesh`` (activations constrained too)."""
    from flax import nnx

    from omnir1_jax.models.qwen2_5_omni.convert import flax_name

    model.act_sharding = sharding.act_btd
    model.kv_sharding = sharding.kv_cache_bskh
    graphdef, state = nnx.split(model)
    state = jax.tree_util.tree_map_with_path(
        lambda p, x: jax.device_put(x, NamedSharding(mesh, param_spec(flax_name(p), x.shape, sharding, mesh))),
        state)
    return nnx.merge(graphdef, state)


def memory_report(config, mesh_shape: Mapping[str, int], sharding: Optional[ShardingConfig] = None, *,
                  param_dtype=jnp.bfloat16, opt_dtype=jnp.float32) -> dict[str, float]:
    """Per-device bytes of parameters and AdamW moments (``jax.eval_shape``, nothing allocated).

    Returns a dict with ``params`` (total count), ``param_bytes``, ``adam_bytes`` (two moments in
    ``opt_dtype``, sharded like the parameters), ``total_bytes`` and ``total_gib`` per device.
    """
    from omnir1_jax.models.qwen2_5_omni.convert import param_shapes

    sharding = sharding or fsdp_tp()
    mesh_shape = {a: int(mesh_shape.get(a, 1)) for a in AXES}
    count = 0
    pbytes = abytes = 0.0
    p_item, o_item = jnp.dtype(param_dtype).itemsize, jnp.dtype(opt_dtype).itemsize
    for name, shape in param_shapes(config):
        n = math.prod(shape)
        spec = param_spec(name, shape, sharding, mesh_shape)
        div = math.prod(_axis_size(mesh_shape, ax) for ax in spec if ax is not None)
        count += n
        pbytes += n / div * p_item
        abytes += 2 * n / div * o_item
    total = pbytes + abytes
    return {"params": count, "param_bytes": pbytes, "adam_bytes": abytes, "total_bytes": total,
            "total_gib": total / 2**30}
