"""How the Thinker maps onto a mesh: logical axis names on every weight, one rules table, activation constraints.

Every parameter is created with its *logical* axis names as ``nnx.Param`` metadata (``logical_axes``), e.g.
``("vocab", "embed")`` for the token embedding, ``("embed", "heads")`` for q/k/v, ``("mlp", "embed")`` for
a down projection (see :data:`LOGICAL_AXES`). A :class:`ShardingConfig` holds the one rules table that maps
logical names to mesh axes (``data``: pure data parallel, ``fsdp``: data parallel + parameter sharding,
``tensor``: Megatron-style column / row parallel) and the logical layout of the activations at decoder-block
boundaries and of the KV cache. Nothing is matched by parameter name.

A mesh axis that does not divide the dimension is dropped (replicated) for that array, so the same rules serve
the tiny test model and the 7B one. :func:`no_sharding` (everything replicated, no activation constraints) is
the default; :func:`fsdp_tp` is the 3-D layout.

Entry points: :func:`param_partition_specs` / :func:`param_shardings` (the spec pytree of a model's state,
used for jit ``out_shardings``, optimiser state and checkpoint restore targets), :func:`shard_model`
(re-place an existing model), :func:`memory_report`. ``init_model`` / ``abstract_model`` / ``from_hf`` take
``mesh=`` and ``sharding=`` and build the model directly in this layout.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

AXES = ("data", "fsdp", "tensor")

# Logical axis names used by the model (None in a ``logical_axes`` tuple = never sharded).
LOGICAL_AXES = (
    "vocab",  # vocabulary rows of the embedding / columns of lm_head
    "embed",  # model width on the weight side (input of column-parallel, output of row-parallel kernels)
    "heads",  # attention projection features (N*H or K*H; output of q/k/v, input of o_proj)
    "mlp",  # MLP hidden features (gate/up/fc1 output, down/fc2 input)
    "patch",  # flattened pixel patch of the vision embedding
    "batch",  # rows of activations and of the KV cache
    "cache_heads",  # key/value heads of the KV cache
    "length",  # token axis of activations: takes the batch axes that the rows could not (e.g. 8 prompts on 64 chips)
    "act_embed",  # model width of activations (None in the layouts below: the residual stream is not split)
)

MeshAxes = None | str | tuple


def _check_mesh_axes(where: str, ax) -> None:
    for a in ax if isinstance(ax, tuple) else (ax,):
        if a is not None and a not in AXES:
            raise ValueError(f"{where}: unknown mesh axis {a!r} (axes are {AXES})")


@dataclasses.dataclass(frozen=True)
class ShardingConfig:
    """The rules table (logical axis name -> mesh axes) and the logical layout of activations / KV cache.

    Attributes:
      rules: ``((logical_name, mesh_axes), ...)``; mesh_axes is a mesh axis name, a tuple of them or None.
        A logical name without a rule is replicated.
      act_btd: logical names of the [B, T, D] activations constrained at every decoder-block boundary
        (None: no constraint); the flattened [B*T or patches, D] activations of the encoders use its first
        and last names.
      kv_cache_bskh: logical names of the KV cache in [B, S, K, H] order (None: no constraint).
      batch_bt: logical names of token-level inputs [B, T].
      decode_gather: mesh axes over which ``generate`` all-gathers the text decoder's and lm_head's weights once,
        before its token loop (e.g. ``("fsdp",)``): each step then reads local weights instead of gathering
        them again (per chip: the decoder's bytes / the tensor axis, ~15 GB for 7B on a tensor-1 mesh). Empty:
        the weights stay sharded while decoding.
      optimizer_axes: mesh axes that further split the optimiser's state (ZeRO stage 1, e.g. ``("data",)``):
        each AdamW moment is sharded as its weight is, plus these axes on the first weight dimension they
        divide (:meth:`optimizer_layout`). The weights stay as they are (replicated over ``data``); each chip
        then updates only its slice of every moment and the updates are gathered. Empty: the moments are
        sharded exactly as the weights.
    """

    rules: tuple = ()
    act_btd: tuple | None = None
    kv_cache_bskh: tuple | None = None
    batch_bt: tuple = ()
    decode_gather: tuple = ()
    optimizer_axes: tuple = ()

    def __post_init__(self):
        seen = set()
        for rule in self.rules:
            if not (isinstance(rule, tuple) and len(rule) == 2):
                raise TypeError(f"ShardingConfig.rules: each rule is (logical_name, mesh_axes), got {rule!r}")
            name, ax = rule
            if name not in LOGICAL_AXES:
                raise ValueError(f"ShardingConfig.rules: unknown logical axis {name!r} (known: {LOGICAL_AXES})")
            if name in seen:
                raise ValueError(f"ShardingConfig.rules: logical axis {name!r} has two rules")
            seen.add(name)
            _check_mesh_axes(f"ShardingConfig.rules[{name!r}]", ax)
        _check_mesh_axes("ShardingConfig.decode_gather", tuple(self.decode_gather))
        _check_mesh_axes("ShardingConfig.optimizer_axes", tuple(self.optimizer_axes))
        for field in ("act_btd", "kv_cache_bskh", "batch_bt"):
            for name in getattr(self, field) or ():
                if name is not None and name not in LOGICAL_AXES:
                    raise ValueError(f"ShardingConfig.{field}: unknown logical axis {name!r}")

    def mesh_axes(self, logical: str | None) -> MeshAxes:
        """The mesh axes of one logical name (None: replicated)."""
        if logical is None:
            return None
        for name, ax in self.rules:
            if name == logical:
                return ax
        return None

    def logical_to_spec(self, logical_axes) -> PartitionSpec:
        """PartitionSpec of a tuple of logical names (not fitted to a shape)."""
        return PartitionSpec(*(self.mesh_axes(a) for a in logical_axes))

    def spec(self, logical_axes, shape: tuple[int, ...], mesh) -> PartitionSpec:
        """PartitionSpec of an array with these logical names and shape on ``mesh`` (non-dividing axes dropped)."""
        if not logical_axes:
            return PartitionSpec()
        if len(logical_axes) != len(shape):
            raise ValueError(f"logical axes {logical_axes} do not match an array of shape {shape}")
        return fit_spec(self.logical_to_spec(logical_axes), tuple(shape), mesh_shape_of(mesh))

    def act_spec(self) -> PartitionSpec | None:
        return None if self.act_btd is None else self.logical_to_spec(self.act_btd)

    def flat_act_spec(self) -> PartitionSpec | None:
        """[N, D] activations (encoder patches / frames): rows over the batch axes."""
        if self.act_btd is None:
            return None
        return self.logical_to_spec((self.act_btd[0], self.act_btd[-1]))

    def kv_spec(self) -> PartitionSpec | None:
        return None if self.kv_cache_bskh is None else self.logical_to_spec(self.kv_cache_bskh)

    def decode_layout(self) -> ShardingConfig | None:
        """These rules with the ``decode_gather`` axes removed (the weights' layout while decoding); None
        without ``decode_gather``."""
        if not self.decode_gather:
            return None
        drop = set(self.decode_gather)

        def keep(ax):
            if isinstance(ax, tuple):
                ax = tuple(a for a in ax if a not in drop)
                return ax or None
            return None if ax in drop else ax

        return dataclasses.replace(self, rules=tuple((n, keep(ax)) for n, ax in self.rules), decode_gather=())

    def optimizer_layout(self) -> ShardingConfig:
        """The optimiser state's layout: these rules with ``optimizer_axes`` appended to every weight axis
        (``vocab``, ``embed``, ``heads``, ``mlp``, ``patch``; a weight axis without a rule gets them alone).
        :func:`fit_spec` gives a mesh axis to the first dimension it divides and never twice, so each moment
        gains the extra split once, on its first dimension that takes it. Without ``optimizer_axes``: ``self``."""
        if not self.optimizer_axes:
            return self
        extra = tuple(a for a in self.optimizer_axes if a is not None)
        weight_axes = ("vocab", "embed", "heads", "mlp", "patch")

        def grow(ax):
            base = () if ax is None else (ax if isinstance(ax, tuple) else (ax,))
            return base + tuple(a for a in extra if a not in base)

        rules = dict(self.rules)
        for name in weight_axes:
            rules[name] = grow(rules.get(name))
        ordered = tuple((n, rules[n]) for n, _ in self.rules) + tuple(
            (n, rules[n]) for n in weight_axes if n not in dict(self.rules)
        )
        return dataclasses.replace(self, rules=ordered, optimizer_axes=())


def no_sharding() -> ShardingConfig:
    """Everything replicated, no activation constraints; the default (single device, tests)."""
    return ShardingConfig()


def fsdp_tp(decode_gather: tuple = (), optimizer_axes: tuple = ()) -> ShardingConfig:
    """Weights: model width over ``fsdp``, heads / MLP / vocabulary over ``tensor``; batch over ``data`` x ``fsdp``.
    ``decode_gather=("fsdp",)``: decoding gathers the decoder's weights once; ``optimizer_axes=("data",)``: the
    AdamW moments are split over ``data`` too (ZeRO stage 1; see :class:`ShardingConfig`)."""
    return ShardingConfig(
        rules=(
            ("vocab", "tensor"),
            ("embed", "fsdp"),
            ("heads", "tensor"),
            ("mlp", "tensor"),
            ("batch", ("data", "fsdp")),
            ("length", ("data", "fsdp")),
            ("cache_heads", "tensor"),
        ),
        act_btd=("batch", "length", None),
        kv_cache_bskh=("batch", None, "cache_heads", None),
        batch_bt=("batch", None),
        decode_gather=tuple(decode_gather),
        optimizer_axes=tuple(optimizer_axes),
    )


def make_mesh(shape: tuple[int, int, int] = (1, 1, 1), devices=None) -> Mesh:
    """A (data, fsdp, tensor) mesh with Auto axis types over the first prod(shape) devices."""
    devices = jax.devices() if devices is None else devices
    n = math.prod(shape)
    if len(devices) < n:
        raise ValueError(f"mesh shape {shape} needs {n} devices, {len(devices)} available")
    return Mesh(np.asarray(devices[:n]).reshape(shape), AXES, axis_types=(AxisType.Auto,) * 3)


def mesh_shape_of(mesh) -> dict[str, int]:
    """Axis sizes of a Mesh / AbstractMesh, or a copy of an axis-size mapping."""
    if isinstance(mesh, Mapping):
        return {k: int(v) for k, v in mesh.items()}
    return {k: int(v) for k, v in dict(mesh.shape).items()}


def _axis_size(mesh_shape: Mapping[str, int], ax) -> int:
    axes = ax if isinstance(ax, tuple) else (ax,)
    return math.prod(mesh_shape.get(a, 1) for a in axes if a is not None)


def fit_spec(spec: PartitionSpec, shape: tuple[int, ...], mesh_shape: Mapping[str, int]) -> PartitionSpec:
    """Fit ``spec`` to an array: trim to its rank; drop mesh axes the mesh lacks, of size 1, or already used;
    for a tuple entry keep the longest prefix whose size divides the dimension (so a batch of 8 rows over
    ``("data", "fsdp")`` = 2 x 8 still splits over ``data``), for a single axis drop it if it does not divide."""
    out, used = [], set()
    for i, ax in enumerate(list(spec)[: len(shape)]):
        axes = [
            a
            for a in (ax if isinstance(ax, tuple) else (ax,))
            if a is not None and mesh_shape.get(a, 1) > 1 and a not in used
        ]
        while axes and shape[i] % _axis_size(mesh_shape, tuple(axes)):
            axes.pop()
        used.update(axes)
        if not axes:
            out.append(None)
        elif isinstance(ax, tuple):
            out.append(tuple(axes))
        else:
            out.append(axes[0])
    return PartitionSpec(*out)


@dataclasses.dataclass(frozen=True)
class Constraint:
    """A spec on a mesh, fitted to each array it constrains (:func:`fit_spec`); what a model built for a mesh
    stores. Unlike a NamedSharding it may name a mesh axis for several dimensions (e.g. ``("batch", "length")``
    both over ``data x fsdp``): the fit gives each axis to the first dimension it divides."""

    mesh: Mesh
    spec: PartitionSpec


def constrain(x, spec):
    """``with_sharding_constraint`` fitted to ``x`` (see :func:`fit_spec`); ``spec`` None is a no-op.

    ``spec`` is a :class:`Constraint` / NamedSharding (the model was built for a mesh) or a PartitionSpec, which
    applies under the current ``jax.set_mesh`` mesh and is a no-op without one.
    """
    if spec is None:
        return x
    if isinstance(spec, (Constraint, NamedSharding)):
        return jax.lax.with_sharding_constraint(
            x, NamedSharding(spec.mesh, fit_spec(spec.spec, x.shape, mesh_shape_of(spec.mesh)))
        )
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return x
    return jax.lax.with_sharding_constraint(x, fit_spec(spec, x.shape, mesh_shape_of(mesh)))


def activation_shardings(sharding: ShardingConfig | None, mesh=None):
    """(decoder activation [B, T, D], KV-cache, encoder activation [N, D]) constraints the model stores:
    NamedShardings on ``mesh``, PartitionSpecs (applied under ``jax.set_mesh``) without one, None where the
    config has no constraint."""
    sharding = sharding or no_sharding()
    specs = sharding.act_spec(), sharding.kv_spec(), sharding.flat_act_spec()
    if mesh is None:
        return specs
    return tuple(None if s is None else Constraint(mesh, s) for s in specs)


def _is_variable(x) -> bool:
    return isinstance(x, nnx.Variable)


def param_partition_specs(model_or_state, mesh, sharding: ShardingConfig | None = None):
    """PartitionSpec of every variable of a model (or ``nnx.State`` / abstract state), same tree structure.

    Specs come from each variable's ``logical_axes`` metadata through ``sharding``'s rules (default
    :func:`no_sharding`), fitted to the array's shape on ``mesh`` (a Mesh, AbstractMesh or axis-size mapping).
    A variable without that metadata (e.g. one added by user code) is replicated. The result has the layout of
    ``nnx.state(model)`` (each Variable holding a PartitionSpec, like ``nnx.get_partition_spec``), so it
    can be passed wherever that state's structure is expected (jit shardings, optimiser state, Orbax targets).
    """
    sharding = sharding or no_sharding()
    state = nnx.state(model_or_state) if isinstance(model_or_state, nnx.Module) else model_or_state
    mesh_shape = mesh_shape_of(mesh)

    def one(v):
        if _is_variable(v):
            axes = v.get_metadata().get("logical_axes")
            return v.replace(sharding.spec(axes, tuple(v.shape), mesh_shape))
        return sharding.spec(None, tuple(np.shape(v)), mesh_shape)

    return jax.tree.map(one, state, is_leaf=_is_variable)


def param_shardings(model_or_state, mesh: Mesh, sharding: ShardingConfig | None = None):
    """:func:`param_partition_specs` as ``NamedSharding(mesh, spec)`` leaves."""
    specs = param_partition_specs(model_or_state, mesh, sharding)
    return jax.tree.map(lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda x: isinstance(x, PartitionSpec))


def state_specs(state, sharding: ShardingConfig, mesh):
    """Deprecated name of :func:`param_partition_specs` (argument order ``state, sharding, mesh``)."""
    return param_partition_specs(state, mesh, sharding)


def shard_model(model, mesh: Mesh, sharding: ShardingConfig):
    """Re-place an existing model on ``mesh`` by its weights' logical axes and set its activation / KV-cache
    constraints; returns the model (the object passed in is updated in place, as its constraints are)."""
    model.act_sharding, model.kv_sharding, model.flat_sharding = activation_shardings(sharding, mesh)
    state = nnx.state(model)
    shardings = param_shardings(state, mesh, sharding)
    nnx.update(model, jax.tree.map(jax.device_put, state, shardings))
    return model


@functools.lru_cache(maxsize=4)
def _abstract_params(config) -> nnx.State:
    """The parameters' shapes of ``config``'s model (tracing a 7B model's construction takes seconds; reports for
    several meshes or dtypes of one configuration share it). Configurations are frozen dataclasses."""
    # not at the top: convert imports this module
    from omnir1_jax.models.qwen2_5_omni.convert import abstract_model

    return nnx.split(abstract_model(config), nnx.Param)[1]


def memory_report(
    config,
    mesh_shape: Mapping[str, int],
    sharding: ShardingConfig | None = None,
    *,
    param_dtype=jnp.float32,
    opt_dtype=jnp.float32,
) -> dict[str, float]:
    """Per-device bytes of parameters and AdamW moments (``jax.eval_shape``, nothing allocated); the defaults are
    the training precision policy: float32 master weights and moments (a bf16 frozen reference, half the
    parameters' bytes, comes on top during GRPO).

    Uses the same logical axes and rules as the model's placement (default :func:`fsdp_tp`). Returns a dict
    with ``params`` (total count), ``param_bytes``, ``adam_bytes`` (two moments in ``opt_dtype``, sharded
    like the parameters), ``total_bytes`` and ``total_gib`` per device.
    """
    sharding = sharding or fsdp_tp()
    mesh_shape = {a: int(mesh_shape.get(a, 1)) for a in AXES}
    state = _abstract_params(config)
    specs = jax.tree.leaves(
        param_partition_specs(state, mesh_shape, sharding), is_leaf=lambda x: isinstance(x, PartitionSpec)
    )
    shapes = jax.tree.leaves(state)
    count = 0
    pbytes = abytes = 0.0
    p_item, o_item = jnp.dtype(param_dtype).itemsize, jnp.dtype(opt_dtype).itemsize
    for leaf, spec in zip(shapes, specs):
        n = math.prod(leaf.shape)
        div = math.prod(_axis_size(mesh_shape, ax) for ax in spec if ax is not None)
        count += n
        pbytes += n / div * p_item
        abytes += 2 * n / div * o_item
    total = pbytes + abytes
    return {
        "params": count,
        "param_bytes": pbytes,
        "adam_bytes": abytes,
        "total_bytes": total,
        "total_gib": total / 2**30,
    }
