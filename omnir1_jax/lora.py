"""LoRA for the Flax Thinker, functional over the NNX state (CrossOmni SFT: rank 16, alpha 32).

For every chosen 2-D kernel ``W [in, out]`` (default: the text decoder's attention and MLP projections) LoRA
keeps two trainable factors ``A [in, r]`` and ``B [r, out]`` and uses

    W' = W + (alpha / r) * A @ B

A starts random (``N(0, 1/in)``, so ``A @ B`` has the scale of a fresh layer once B has learned), B starts at
zero, so at initialisation ``W' = W`` exactly and the model's logits are unchanged.

How: :class:`LoraThinker` holds the base model with every ``nnx.Param`` turned into a :class:`Frozen` variable
(so optimisers and ``nnx.grad``, which follow ``nnx.Param``, never see them) and the factors as
:class:`LoraA` / :class:`LoraB` params. Its :meth:`~LoraThinker.hidden_states` splits the base into
``graphdef + state``, replaces each target kernel by ``W + s A B`` and merges a view of the model *inside the
traced loss*, so gradients reach A and B only and no merged copy outlives the call. It offers what the
policy-update code needs (``config``, ``hidden_states``, ``logits``), so
``rl.update.nll_step`` / ``grpo_step`` with ``nnx.Optimizer(lora_model, tx, wrt=nnx.Param)`` train the factors
alone. :func:`merge_lora` folds the factors into a plain Thinker at the end (for ``to_hf`` / sampling).

Shape legend: I input width, O output width, R rank.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import flax.nnx as nnx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class Frozen(nnx.Variable):
    """A base-model weight that LoRA training leaves untouched (not an ``nnx.Param``)."""


class LoraA(nnx.Param):
    """Down-projection factor ``A [I, R]``."""


class LoraB(nnx.Param):
    """Up-projection factor ``B [R, O]`` (zero at initialisation)."""


@dataclasses.dataclass(frozen=True)
class LoraSpec:
    """LoRA hyper-parameters.

    Attributes:
      rank: r (CrossOmni: 16).
      alpha: the scale numerator; the update is ``(alpha / r) A B`` (CrossOmni: 32).
      targets: names of the Linear modules to adapt (their ``kernel``).
      scope: only modules whose path contains this attribute name (the text decoder, ``language_model``).
    """

    rank: int = 16
    alpha: float = 32.0
    targets: tuple[str, ...] = DEFAULT_TARGETS
    scope: str = "language_model"

    def __post_init__(self):
        if self.rank < 1:
            raise ValueError(f"LoraSpec.rank must be >= 1, got {self.rank}")
        if not self.alpha > 0:
            raise ValueError(f"LoraSpec.alpha must be > 0, got {self.alpha}")
        object.__setattr__(self, "targets", tuple(self.targets))
        if not self.targets:
            raise ValueError("LoraSpec.targets is empty")

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


def _kernel_paths(model: nnx.Module, spec: LoraSpec) -> list[tuple]:
    """Paths (tuples of attribute names / indices) of the target kernels, in graph order."""
    paths = []
    for path, node in nnx.iter_graph(model):
        if (
            isinstance(node, nnx.Variable)
            and path
            and path[-1] == "kernel"
            and len(path) >= 2
            and path[-2] in spec.targets
            and spec.scope in path
            and node[...].ndim == 2
        ):
            paths.append(tuple(path))
    return paths


def _freeze(model: nnx.Module) -> nnx.Module:
    """The same module with every ``nnx.Param`` turned into a :class:`Frozen` variable (arrays shared)."""
    graphdef, state = nnx.split(model)
    flat = [(p, Frozen(v[...], **_axes(v)) if isinstance(v, nnx.Param) else v) for p, v in nnx.to_flat_state(state)]
    return nnx.merge(graphdef, nnx.from_flat_state(flat))


def _axes(v: nnx.Variable) -> dict:
    """The weight's ``logical_axes`` metadata (its sharding, see models.qwen2_5_omni.sharding), kept across the
    Param <-> Frozen conversions."""
    axes = v.get_metadata().get("logical_axes")
    return {} if axes is None else {"logical_axes": axes}


class LoraThinker(nnx.Module):
    """A Thinker with LoRA factors on its target kernels (see the module docstring).

    Args:
      base: the model to adapt; its Params become :class:`Frozen` (the object is consumed: use the returned
        module, or :func:`merge_lora`, from now on). It may be stored in its compute dtype (bf16): it is frozen.
      spec: rank, alpha and targets.
      seed: seed of A's initialisation.
      dtype: the dtype the factors are stored and updated in (float32: the trained parameters are float32
        masters whatever the base's dtype; the merge ``W + s A B`` is computed in float32).
    """

    def __init__(self, base: nnx.Module, spec: LoraSpec = LoraSpec(), *, seed: int = 0, dtype=jnp.float32):
        self.spec = spec
        self.config = base.config
        paths = _kernel_paths(base, spec)
        if not paths:
            raise ValueError(f"no 2-D kernel named {spec.targets} under {spec.scope!r} in {type(base).__name__}")
        self.paths = tuple(paths)
        self.base = _freeze(base)
        flat = dict(nnx.to_flat_state(nnx.state(self.base)))
        keys = jax.random.split(jax.random.key(seed), len(paths))
        a, b = [], []
        for key, p in zip(keys, paths):
            w = flat[p][...]
            fan_in, fan_out = w.shape
            a.append(LoraA((jax.random.normal(key, (fan_in, spec.rank), jnp.float32) / jnp.sqrt(fan_in)).astype(dtype)))
            b.append(LoraB(jnp.zeros((spec.rank, fan_out), dtype)))
        self.lora_a = nnx.List(a)
        self.lora_b = nnx.List(b)

    def delta(self, i: int) -> Float[Array, "I O"]:
        """``(alpha / r) A_i @ B_i`` of target ``i``."""
        a, b = self.lora_a[i][...], self.lora_b[i][...]
        return (self.spec.scaling * jnp.einsum("ir,ro->io", a.astype(jnp.float32), b.astype(jnp.float32))).astype(
            a.dtype
        )

    def merged_view(self) -> nnx.Module:
        """A module of the base's class whose target kernels are ``W + (alpha/r) A B`` (traceable; other
        arrays are shared with the base, not copied)."""
        graphdef, state = nnx.split(self.base)
        index = {p: i for i, p in enumerate(self.paths)}
        flat = []
        for p, v in nnx.to_flat_state(state):
            if p in index:
                w = v[...]
                v = Frozen((w.astype(jnp.float32) + self.delta(index[p]).astype(jnp.float32)).astype(w.dtype))
            flat.append((p, v))
        return nnx.merge(graphdef, nnx.from_flat_state(flat))

    # --- what the scorer / policy update uses -------------------------------------------------------------
    def compute_view(self) -> nnx.Module:
        """The merged view (:meth:`merged_view`) in the base's compute dtype: what the samplers and scorers run
        (the factors and the merge stay in their stored dtype, float32 by default; the cast is differentiable)."""
        view = self.merged_view()
        return view.compute_view() if hasattr(view, "compute_view") else view

    def hidden_states(self, inputs, *, remat: bool = False):
        return self.compute_view().hidden_states(inputs, remat=remat)

    def logits(self, hidden):
        # lm_head / embeddings are never adapted, so the base computes the logits directly.
        return (
            self.base.compute_view().logits(hidden) if hasattr(self.base, "compute_view") else self.base.logits(hidden)
        )

    def head_kernel(self):
        """The base's output projection [D, V] (never adapted; the scorer fuses it into the log-softmax)."""
        return self.base.head_kernel()

    def forward(self, inputs, *, remat: bool = False):
        return self.compute_view().forward(inputs, remat=remat)


def apply_lora(
    model: nnx.Module,
    rank: int = 16,
    alpha: float = 32.0,
    *,
    targets: Sequence[str] = DEFAULT_TARGETS,
    scope: str = "language_model",
    seed: int = 0,
    dtype=jnp.float32,
) -> LoraThinker:
    """Wrap ``model`` with LoRA factors (B = 0: the wrapped model computes exactly what ``model`` did); the factors
    are stored in ``dtype`` (float32)."""
    return LoraThinker(model, LoraSpec(rank, alpha, tuple(targets), scope), seed=seed, dtype=dtype)


def merge_lora(lora: LoraThinker) -> nnx.Module:
    """A plain model (trainable ``nnx.Param`` everywhere, as before wrapping) with the factors folded in."""
    view = lora.merged_view()
    graphdef, state = nnx.split(view)
    flat = [(p, nnx.Param(v[...], **_axes(v)) if isinstance(v, Frozen) else v) for p, v in nnx.to_flat_state(state)]
    return nnx.merge(graphdef, nnx.from_flat_state(flat))


def lora_parameter_count(lora: LoraThinker) -> tuple[int, int]:
    """``(trainable LoRA parameters, frozen base parameters)``."""
    n_lora = sum(x.size for x in jax.tree.leaves(nnx.state(lora, nnx.Param)))
    n_base = sum(x.size for x in jax.tree.leaves(nnx.state(lora.base, Frozen)))
    return int(n_lora), int(n_base)
