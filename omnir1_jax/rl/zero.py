"""ZeRO stage 1 inside one jit program: an ``nnx.Optimizer`` whose state is split more finely than the weights.

With plain data parallelism every ``data`` replica holds the same AdamW moments and runs the same update on
them. :class:`ShardedOptimizer` stores each moment in ``sharding.optimizer_layout()`` (the weight's own layout
plus the ``optimizer_axes``, e.g. ``data``, on its first dimension they divide) and runs the whole update on
those slices: each chip reads its slice of the weight (a local slice, no communication), of the gradient (XLA
reduces the gradient straight into it: a reduce-scatter where plain data parallelism all-reduces), and of both
moments, writes its slice of the new weight and moments, and the new weights are all-gathered into their own
layout. The state's memory and the optimiser's bytes per chip drop by the size of ``data``; the values are those
of ``nnx.Optimizer`` (the same arithmetic on the same numbers, up to the order of the gradient's reduction).

The layouts are held with sharding constraints inside :meth:`ShardedOptimizer.update`, so the step needs no
``out_shardings``: the weights keep their layout step after step, and the moments theirs.

    opt = ShardedOptimizer(model, tx, wrt=nnx.Param, mesh=mesh, sharding=fsdp_tp(optimizer_axes=("data",)))
    opt.update(model, grads)  # inside nnx.jit, like nnx.Optimizer

``mesh.shard_optimizer = true`` makes the learner build one (``learner.Learner``).
"""

from __future__ import annotations

from typing import Any

import flax.nnx as nnx
import jax
import optax
from jax.sharding import NamedSharding

__all__ = ["ShardedOptimizer", "optimizer_layouts"]


def _is_var(x) -> bool:
    return isinstance(x, nnx.Variable)


def _named(mesh, rules):
    # models.qwen2_5_omni.param_shardings does this for a model's state, but rl sits below models (the layer
    # order): the rules object (a ShardingConfig) is duck-typed here instead of imported
    def one(v):
        axes = v.get_metadata().get("logical_axes") if _is_var(v) else None
        return NamedSharding(mesh, rules.spec(axes, tuple(v.shape), mesh))

    return one


def optimizer_layouts(params, opt_state, mesh, sharding) -> tuple[Any, Any, Any]:
    """``(weights, weights_split, state)``: trees of ``NamedSharding`` on ``mesh``, each shaped like ``nnx.as_pure``
    of its tree: the weights (``params``, an ``nnx.State`` of Variables) in their own layout (``sharding``'s
    rules on each weight's logical axes), the same weights in the optimiser's layout
    (``sharding.optimizer_layout()``), and the optax state ``opt_state`` (Variables, as ``nnx.Optimizer`` holds
    it) in the optimiser's layout. Works on concrete and on abstract (``nnx.eval_shape``) trees; a variable
    without logical axes is replicated."""
    fine = sharding.optimizer_layout()
    own = jax.tree.map(_named(mesh, sharding), params, is_leaf=_is_var)
    split = jax.tree.map(_named(mesh, fine), params, is_leaf=_is_var)
    state = jax.tree.map(_named(mesh, fine), opt_state, is_leaf=_is_var)
    return own, split, state


class _Static:
    """A value nnx keeps as static graph data (hashed by identity: one object per optimiser)."""

    def __init__(self, value):
        self.value = value


def _hold(tree, layout):
    return jax.tree.map(jax.lax.with_sharding_constraint, tree, layout)


class ShardedOptimizer(nnx.Optimizer):
    """``nnx.Optimizer`` with its state in ``sharding.optimizer_layout()`` on ``mesh`` and its update run on those
    slices (module docstring). ``sharding`` is the model's :class:`~omnir1_jax.models.qwen2_5_omni.ShardingConfig`
    with ``optimizer_axes`` set (without them this is ``nnx.Optimizer`` with its layouts held).

    The state is moved into its layout at construction by one jit program (global arrays of several processes
    included: no process gathers a whole moment)."""

    def __init__(self, model, tx: optax.GradientTransformation, *, wrt, mesh, sharding):
        super().__init__(model, tx, wrt=wrt)
        own, split, state = optimizer_layouts(nnx.state(model, wrt), self.opt_state, mesh, sharding)
        moved = jax.jit(lambda s: s, out_shardings=state)(nnx.as_pure(self.opt_state))
        nnx.update(self.opt_state, nnx.state(moved))
        self.layouts = _Static((own, split, state))

    def update(self, model, grads, /, **kwargs):
        """One optimiser step, as ``nnx.Optimizer.update``: the weights taken to the optimiser's layout (a local
        slice), the update computed there, the new weights gathered back into their own layout."""
        own, split, state = self.layouts.value
        params = _hold(nnx.as_pure(nnx.state(model, self.wrt)), split)
        grad_arrays = nnx.as_pure(nnx.state(grads, self.wrt))
        updates, new_state = self.tx.update(grad_arrays, nnx.as_pure(self.opt_state), params, **nnx.as_pure(kwargs))
        new_params = optax.apply_updates(params, _hold(updates, split))
        nnx.update(model, _hold(new_params, own))
        nnx.update(self.opt_state, nnx.state(_hold(new_state, state)))
        self.step[...] += 1
        return updates
