"""The GRPO policy update: jit-compiled scoring and optimiser steps on a Flax NNX policy.

Shape legend: R = prompts x group_size rows, C completion tokens.

The model-specific part is a *scorer* ``score(model, prompt, completion_ids, completion_mask) -> [R, C]``
float32 log-probs (for the Qwen2.5-Omni Thinker: ``completion_logprobs``); everything else is generic.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import optax

from omnir1_jax.rl.loss import KL, Agg, EmptyRows, grpo_loss

Scorer = Callable[..., jax.Array]


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """The loss hyper-parameters (docs/design.md §4.3–4.5); hashable, so it can be a static jit argument."""

    epsilon_low: float = 0.2
    epsilon_high: float = 0.2
    beta: float = 0.04
    kl: KL = "k3"
    agg: Agg = "seq_mean_token_mean"
    # Dr. GRPO's constant divisor (``seq_mean_token_sum_norm``): the answer-token budget, never the padded width
    max_len: int | None = None
    micro_batches: int = 1  # gradient accumulation: rows split into this many equal slices, one at a time
    clip_ratio_c: float | None = None  # verl's dual clip on negative-advantage tokens (rl.loss); None = off
    empty_rows: EmptyRows = "batch"  # seq_mean_token_mean's divisor: "batch" (TRL) or "nonempty" (verl, tunix)
    # Benchmarks only (benchmarks/aot_scale.py): > 0 runs just the first ``cost_slices`` micro-batches, unrolled,
    # so that XLA's cost analysis (which counts a loop body once) sees each of them; the gradient is then
    # not the batch's. 0 = the real update.
    cost_slices: int = 0


def resolve_micro_batches(requested: int, rows: int, devices: int, group: int = 1) -> int:
    """The number of micro-batches of an update over ``rows`` rows on ``devices`` devices, each slice holding
    whole groups of ``group`` rows (the group scorer runs each prompt once per group).

    ``requested`` >= 1 is taken as it is (it must divide ``rows`` into slices of whole groups); 0 picks the fewest
    slices that leave each device at most one row per slice (or one group, when a group has more rows than there
    are devices): 64 rows in groups of 8 on 64 devices: 1; on 8: 8; on 16: 4; on one device: 8 (one group each).
    """
    if requested < 0 or rows < 1 or devices < 1 or group < 1 or rows % group:
        raise ValueError(
            f"micro_batches={requested}, rows={rows}, devices={devices}, group={group}: need >= 0, "
            f">= 1, >= 1 and a group size >= 1 that divides the rows"
        )
    if requested:
        if rows % requested or (rows // requested) % group:
            raise ValueError(
                f"micro_batches={requested} must divide the batch of {rows} rows into slices of whole groups of {group}"
            )
        return requested
    return next(
        n for n in range(1, rows + 1) if rows % n == 0 and (rows // n) % group == 0 and rows // n <= max(devices, group)
    )


def _leaf_name(path) -> str:
    """The attribute name of a parameter from its pytree path (``kernel``, ``bias``, ``weight``, ...): the last
    named key, skipping an nnx Variable's ``value``."""
    for k in reversed(path):
        name = getattr(k, "key", getattr(k, "name", None))
        if isinstance(name, str) and name != "value":
            return name
    return ""


def decay_mask(params, *, embeddings: bool = True):
    """Where AdamW's weight decay applies (a pytree of bools shaped like ``params``), as transformers' and TRL's
    trainers choose: every weight matrix and convolution kernel (ndim >= 2) decays; biases and norm scales
    (every 1-D parameter of the Thinker is one of those) never do. With ``embeddings=False`` the embedding tables
    (2-D parameters named ``weight``: the model's ``Embed`` modules; linear and conv weights are named ``kernel``)
    do not decay either."""

    def leaf(path, x):
        if jnp.ndim(x) < 2:
            return False
        return embeddings or _leaf_name(path) != "weight"

    return jax.tree_util.tree_map_with_path(leaf, params)


def _as_float32(tree):
    return jax.tree.map(lambda x: x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def float32_state(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """``inner`` run in float32 whatever the parameters' dtype: its state (AdamW's moments) is created from a
    float32 view of the parameters and every update is computed from float32 gradients, then cast to the
    gradients' dtype. With float32 parameters (the default precision policy) it changes nothing; with bfloat16
    parameters it keeps the moments out of bfloat16, where b2 = 0.999 rounds to 1.0 and the second moment would
    never decay."""

    def init(params):
        return inner.init(_as_float32(params))

    def update(updates, state, params=None):
        new, state = inner.update(_as_float32(updates), state, None if params is None else _as_float32(params))
        return jax.tree.map(lambda n, u: n.astype(u.dtype), new, updates), state

    return optax.GradientTransformation(init, update)


def make_optimizer(
    lr: float,
    *,
    weight_decay: float = 0.01,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    warmup_steps: int = 0,
    grad_clip: float = 0.0,
    decay: str = "matrices",
    decay_embeddings: bool = True,
) -> optax.GradientTransformation:
    """AdamW (paper: lr 1e-6, weight decay 0.01) with optional linear warm-up and global-norm clipping; moments
    in float32 (:func:`float32_state`).

    ``decay``: ``"matrices"`` applies the weight decay through :func:`decay_mask` (biases and norm scales
    excluded; embeddings too with ``decay_embeddings=False``), ``"all"`` to every parameter."""
    if decay not in ("matrices", "all"):
        raise ValueError(f"decay must be 'matrices' or 'all', got {decay!r}")
    schedule = optax.linear_schedule(0.0, lr, warmup_steps) if warmup_steps > 0 else lr
    mask = functools.partial(decay_mask, embeddings=decay_embeddings) if decay == "matrices" else None
    tx = optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=mask)
    if grad_clip and grad_clip > 0:
        tx = optax.chain(optax.clip_by_global_norm(grad_clip), tx)
    return float32_state(tx)


def _global_norm(tree) -> jax.Array:
    leaves = [jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)]
    return jnp.sqrt(sum(leaves)) if leaves else jnp.float32(0.0)


def slice_rows(tree, start, size: int):
    """Rows ``start .. start + size`` of a batch pytree (``start`` may be traced): objects with a
    ``slice_rows`` method (the Thinker's ``ModelInputs``) slice themselves, other array leaves on axis 0."""
    if tree is None:
        return None
    if hasattr(tree, "slice_rows"):
        return tree.slice_rows(start, size)
    return jax.tree.map(lambda x: jax.lax.dynamic_slice_in_dim(jnp.asarray(x), start, size, 0), tree)


def _accumulate(
    model, n: int, rows: int, loss_fn, prompt=None, scorer=None, cost_slices: int = 0
) -> tuple[Any, jax.Array]:
    """Sum over ``n`` micro-batches of the gradient of ``loss_fn(model, prompt, start, size) -> (weighted loss,
    aux)``, one micro-batch at a time (``lax.scan``: one compiled body, activations of one slice alive).

    Encoders once per step: a row slice keeps every prompt's pixels (``ModelInputs.slice_rows``), so scoring it
    would run the vision / audio encoders on all of them in every micro-batch. When ``scorer`` can split them off
    (``scorer.features(model, prompt)`` / ``scorer.with_features(prompt, features)``, as
    ``models.qwen2_5_omni.CompletionScorer``) and the prompt has media, the encoders run once, before the scan,
    under ``jax.vjp``; each micro-batch's loss reads their outputs attached to the prompt, and its gradient with
    respect to them is summed (float32) next to the parameters'; one pullback of that sum after the scan gives
    the encoders' parameter gradient. The same sum as encoding in every slice (a slice's loss does not depend on
    the features of other slices' rows), at 1 / n of the encoder work (docs/design.md §9.3).

    Returns ``(grads, aux stacked on a leading [n] axis)``; the gradient is accumulated in float32 and cast back to
    each parameter's dtype, like the one-batch gradient. ``cost_slices``: see :class:`LossSpec` (benchmarks).
    """
    if n < 1 or rows % n:
        raise ValueError(f"micro_batches={n} must be >= 1 and divide the batch of {rows} rows")
    size = rows // n
    graphdef, params, *rest = nnx.split(model, nnx.Param, ...)
    merged = lambda p: nnx.merge(graphdef, p, *rest)
    features: dict[str, Any] = {}
    pullback: Any = None
    if prompt is not None and hasattr(scorer, "features") and hasattr(scorer, "with_features"):
        features, pullback = jax.vjp(lambda p: scorer.features(merged(p), prompt), params)

    def piece(p, f, i):
        return loss_fn(merged(p), scorer.with_features(prompt, f) if f else prompt, i * size, size)

    def body(acc, i):
        (_, aux), g = jax.value_and_grad(piece, argnums=(0, 1), has_aux=True)(params, features, i)
        return jax.tree.map(lambda a, b: a + b.astype(jnp.float32), acc, g), aux

    zeros = lambda t: jax.tree.map(lambda x: jnp.zeros(x.shape, jnp.float32), t)
    slices, unroll = (jnp.arange(cost_slices), True) if cost_slices else (jnp.arange(n), 1)
    (acc, acc_features), aux = jax.lax.scan(body, (zeros(params), zeros(features)), slices, unroll=unroll)
    if features:
        (enc,) = pullback(jax.tree.map(lambda a, x: a.astype(x.dtype), acc_features, features))
        acc = jax.tree.map(lambda a, b: a + b.astype(jnp.float32), acc, enc)
    return jax.tree.map(lambda a, x: a.astype(x.dtype), acc, params), aux


def _share(mask_piece, mask, agg: str, empty_rows: str = "batch") -> jax.Array:
    """A micro-batch's weight in the full-batch loss: its share of rows, or of tokens for ``token_mean``, or of
    non-empty rows for ``seq_mean_token_mean`` with ``empty_rows="nonempty"`` (each aggregation mode is then a
    weighted sum of per-slice losses, see rl.loss.aggregate)."""
    if agg == "token_mean":
        return mask_piece.sum() / jnp.maximum(mask.sum(), 1.0)
    if agg == "seq_mean_token_mean" and empty_rows == "nonempty":
        rows = lambda m: (m.sum(-1) > 0).sum().astype(jnp.float32)
        return rows(mask_piece) / jnp.maximum(rows(mask), 1.0)
    return jnp.float32(mask_piece.shape[0] / mask.shape[0])


def _grpo_grads(
    model, prompt, completion_ids, completion_mask, old_logps, ref_logps, advantages, scorer, spec: LossSpec
) -> tuple[Any, dict[str, jax.Array]]:
    """Gradient and metrics (the loss's, plus ``loss`` and an entropy estimate) of the GRPO loss (traced inside
    :func:`grpo_step` / :func:`grpo_grads`). With ``spec.micro_batches > 1`` the rows are processed in that many
    slices and the gradients summed with the weights that make them equal to the full batch's; the metrics are
    then those of the full batch's log-probs."""
    if spec.micro_batches > 1:
        return _grpo_grads_accumulated(
            model, prompt, completion_ids, completion_mask, old_logps, ref_logps, advantages, scorer, spec
        )

    def loss_fn(m):
        logps = scorer(m, prompt, completion_ids, completion_mask)
        loss, metrics = grpo_loss(
            logps,
            old_logps,
            ref_logps,
            advantages,
            completion_mask,
            epsilon_low=spec.epsilon_low,
            epsilon_high=spec.epsilon_high,
            beta=spec.beta,
            kl=spec.kl,
            agg=spec.agg,
            max_len=spec.max_len,
            clip_ratio_c=spec.clip_ratio_c,
            empty_rows=spec.empty_rows,
        )
        return loss, (metrics, logps)

    (loss, (metrics, logps)), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    mask = completion_mask.astype(jnp.float32)
    metrics = dict(metrics)
    metrics["loss"] = loss
    metrics["entropy"] = -jnp.sum(logps * mask) / jnp.maximum(mask.sum(), 1.0)
    return grads, metrics


def _grpo_grads_accumulated(
    model, prompt, completion_ids, completion_mask, old_logps, ref_logps, advantages, scorer, spec: LossSpec
):
    mask = completion_mask.astype(jnp.float32)
    loss_of = functools.partial(
        grpo_loss,
        epsilon_low=spec.epsilon_low,
        epsilon_high=spec.epsilon_high,
        beta=spec.beta,
        kl=spec.kl,
        agg=spec.agg,
        max_len=spec.max_len,
        clip_ratio_c=spec.clip_ratio_c,
        empty_rows=spec.empty_rows,
    )

    def piece(m, pr, start, size):
        cut = lambda x: slice_rows(x, start, size)
        logps = scorer(m, cut(pr), cut(completion_ids), cut(completion_mask))
        loss, _ = loss_of(logps, cut(old_logps), cut(ref_logps), cut(advantages), cut(mask))
        return loss * _share(cut(mask), mask, spec.agg, spec.empty_rows), logps

    grads, logps = _accumulate(
        model, spec.micro_batches, completion_ids.shape[0], piece, prompt, scorer, spec.cost_slices
    )
    if spec.cost_slices:  # a cost-analysis program (aot_scale): the rows it did not score count as zeros
        logps = jnp.concatenate([logps] + [jnp.zeros_like(logps[:1])] * (spec.micro_batches - spec.cost_slices))
    logps = jax.lax.stop_gradient(logps.reshape(completion_ids.shape))
    loss, metrics = loss_of(logps, old_logps, ref_logps, advantages, mask)
    metrics = dict(metrics)
    metrics["loss"] = loss
    metrics["entropy"] = -jnp.sum(logps * mask) / jnp.maximum(mask.sum(), 1.0)
    return grads, metrics


def _nll_grads(
    model, prompt, completion_ids, completion_mask, scorer, micro_batches: int = 1, weights=None
) -> tuple[Any, jax.Array]:
    """Gradient and value of the token-mean negative log-likelihood of the completions (optionally accumulated
    over ``micro_batches`` row slices, each weighted by its share of the tokens). ``weights`` (float [R, C], None =
    1): per-token loss weights; the loss is then ``sum(w * nll) / sum(w)`` over the masked tokens."""
    w_all = completion_mask.astype(jnp.float32)
    if weights is not None:
        w_all = w_all * weights.astype(jnp.float32)
    if micro_batches > 1:
        total = jnp.maximum(w_all.sum(), 1e-6 if weights is not None else 1.0)

        def piece(m, pr, start, size):
            ids, cmask = slice_rows(completion_ids, start, size), slice_rows(completion_mask, start, size)
            logps = scorer(m, slice_rows(pr, start, size), ids, cmask)
            nll = -jnp.sum(logps * slice_rows(w_all, start, size)) / total
            return nll, nll

        grads, parts = _accumulate(model, micro_batches, completion_ids.shape[0], piece, prompt, scorer)
        return grads, parts.sum()

    def loss_fn(m):
        logps = scorer(m, prompt, completion_ids, completion_mask)
        return -jnp.sum(logps * w_all) / jnp.maximum(w_all.sum(), 1e-6 if weights is not None else 1.0)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    return grads, loss


@nnx.jit(static_argnames=("scorer", "spec"))
def grpo_step(
    model: nnx.Module,
    optimizer: nnx.Optimizer,
    prompt: Any,
    completion_ids: jax.Array,
    completion_mask: jax.Array,
    old_logps: jax.Array | None,
    ref_logps: jax.Array | None,
    advantages: jax.Array,
    *,
    scorer: Scorer,
    spec: LossSpec,
) -> dict[str, jax.Array]:
    """One optimiser step on the GRPO loss; returns the loss's metrics plus ``loss``, ``grad_norm`` and an
    entropy estimate (mean of ``-log p`` of the sampled completion tokens)."""
    grads, metrics = _grpo_grads(
        model, prompt, completion_ids, completion_mask, old_logps, ref_logps, advantages, scorer, spec
    )
    optimizer.update(model, grads)
    metrics["grad_norm"] = _global_norm(grads)
    return metrics


def loss_weight(completion_mask: jax.Array, spec: LossSpec) -> float:
    """The weight of a batch's loss when several data-parallel processes average their losses: the number of
    rows for the per-sequence aggregations (of non-empty rows with ``empty_rows="nonempty"``), the number of
    completion tokens for ``token_mean`` (so the weighted
    mean of per-process losses equals the loss of the concatenated batch)."""
    if spec.agg == "token_mean":
        return float(jnp.sum(completion_mask))
    if spec.agg == "seq_mean_token_mean" and spec.empty_rows == "nonempty":
        return float(jnp.sum(jnp.sum(completion_mask, -1) > 0))
    return float(completion_mask.shape[0])


@nnx.jit(static_argnames=("scorer", "spec"))
def grpo_grads(
    model: nnx.Module,
    prompt: Any,
    completion_ids: jax.Array,
    completion_mask: jax.Array,
    old_logps: jax.Array | None,
    ref_logps: jax.Array | None,
    advantages: jax.Array,
    *,
    scorer: Scorer,
    spec: LossSpec,
) -> tuple[Any, dict[str, jax.Array]]:
    """The gradient half of :func:`grpo_step` (no optimiser update): ``(grads, metrics)``. Multi-process
    data-parallel training averages these across processes (weights :func:`loss_weight`) and then calls
    :func:`apply_grads`; one process uses the fused :func:`grpo_step`."""
    return _grpo_grads(model, prompt, completion_ids, completion_mask, old_logps, ref_logps, advantages, scorer, spec)


@nnx.jit
def apply_grads(model: nnx.Module, optimizer: nnx.Optimizer, grads: Any) -> jax.Array:
    """One optimiser step with precomputed (e.g. cross-process averaged) gradients; returns their global norm."""
    optimizer.update(model, grads)
    return _global_norm(grads)


@nnx.jit(static_argnames=("scorer", "micro_batches"))
def nll_grads(
    model: nnx.Module,
    prompt: Any,
    completion_ids: jax.Array,
    completion_mask: jax.Array,
    *,
    scorer: Scorer,
    micro_batches: int = 1,
    weights: jax.Array | None = None,
) -> tuple[Any, jax.Array]:
    """The gradient half of :func:`nll_step`: ``(grads, loss)``; ``micro_batches`` as in :class:`LossSpec`."""
    return _nll_grads(model, prompt, completion_ids, completion_mask, scorer, micro_batches, weights)


@nnx.jit(static_argnames=("scorer",))
def score(
    model: nnx.Module, prompt: Any, completion_ids: jax.Array, completion_mask: jax.Array, *, scorer: Scorer
) -> jax.Array:
    """Log-probs of the completions under ``model`` (no gradient), float32 [R, C]."""
    return jax.lax.stop_gradient(scorer(model, prompt, completion_ids, completion_mask))


@nnx.jit(static_argnames=("scorer", "micro_batches"))
def nll_step(
    model: nnx.Module,
    optimizer: nnx.Optimizer,
    prompt: Any,
    completion_ids: jax.Array,
    completion_mask: jax.Array,
    weights: jax.Array | None = None,
    *,
    scorer: Scorer,
    micro_batches: int = 1,
) -> dict[str, jax.Array]:
    """One supervised (SFT) step: token-mean negative log-likelihood of the target completions (gradient
    accumulated over ``micro_batches`` row slices when > 1); ``weights`` (float [R, C]) make it the weighted
    token mean ``sum(w * nll) / sum(w)`` (``sft.think_weight``)."""
    grads, loss = _nll_grads(model, prompt, completion_ids, completion_mask, scorer, micro_batches, weights)
    optimizer.update(model, grads)
    return {"loss": loss, "grad_norm": _global_norm(grads)}
