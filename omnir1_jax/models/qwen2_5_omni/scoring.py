"""Per-token log-probabilities of completions under the Thinker (GRPO's log pi_theta, pi_old and pi_ref).

Shape legend: B batch, P prompt tokens (left-padded), C completion tokens (right-padded), V vocabulary.

A completion continues the prompt's text positions: token j of row b sits at 3-D position
``max_prompt_position[b] + 1 + j`` on all three axes, which is what transformers' ``get_rope_index`` gives for
trailing text and what its ``generate`` uses while decoding; :mod:`.sampling` uses the same rule, so a sampled
sequence re-scored here gives the sampler's log-probs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from omnir1_jax.models.qwen2_5_omni.text import causal_padding_mask
from omnir1_jax.models.qwen2_5_omni.thinker import (
    InputError,
    ModelInputs,
    Qwen2_5OmniThinker,
    as_model_inputs,
    compute_view,
    encoder_features,
    unrepeat_prompt,
    with_features,
)
from omnir1_jax.rl import head_token_logprobs, token_logprobs


def max_prompt_position(inputs: ModelInputs) -> Int[Array, " B"]:
    """Largest 3-D position of each row's real prompt tokens."""
    m = inputs.attention_mask.astype(bool)[None]
    return jnp.max(jnp.where(m, inputs.position_ids, -1), axis=(0, 2))


def append_completion(inputs: ModelInputs, completion_ids, completion_mask) -> ModelInputs:
    """Concatenate a right-padded completion [B, C] to prompt inputs [B, P] (jittable)."""
    b, p = inputs.input_ids.shape
    c = completion_ids.shape[1]
    start = max_prompt_position(inputs) + 1
    cpos = start[:, None] + jnp.arange(c, dtype=inputs.position_ids.dtype)[None, :]
    remap = lambda f: None if f is None else (f // p) * (p + c) + f % p
    return inputs.replace(
        input_ids=jnp.concatenate([inputs.input_ids, completion_ids.astype(inputs.input_ids.dtype)], axis=1),
        attention_mask=jnp.concatenate(
            [inputs.attention_mask, completion_mask.astype(inputs.attention_mask.dtype)], axis=1
        ),
        position_ids=jnp.concatenate([inputs.position_ids, jnp.broadcast_to(cpos[None], (3, b, c))], axis=2),
        image_positions=remap(inputs.image_positions),
        video_positions=remap(inputs.video_positions),
        audio_positions=remap(inputs.audio_positions),
    )


def completion_logprobs(
    model: Qwen2_5OmniThinker,
    prompt: ModelInputs,
    completion_ids: Int[Array, "B C"],
    completion_mask: Int[Array, "B C"] | None = None,
    *,
    remat: bool = False,
    temperature: float = 1.0,
    chunk_size: int | None = None,
    fuse_head: bool | None = None,
) -> Float[Array, "B C"]:
    """log p(completion_ids[:, j] | prompt, completion[:, :j]) in float32, 0 where ``completion_mask`` is 0.

    Jittable and differentiable; ``remat=True`` (or ``"full"`` / ``"dots"``, see :func:`.text.remat_call`)
    rematerialises each decoder layer (and vision block) in the backward pass. Only the C completion positions
    go through ``lm_head``; with ``fuse_head`` (default: when the model is not float32) ``lm_head`` runs inside
    the log-softmax's time chunks and the [B, C, V] logits never exist (:func:`~omnir1_jax.rl.head_token_logprobs`).
    """
    if completion_mask is None:
        completion_mask = jnp.ones_like(completion_ids)
    model = compute_view(model)  # float32 masters compute in the model's compute dtype
    p = prompt.input_ids.shape[1]
    c = completion_ids.shape[1]
    full = append_completion(prompt, completion_ids, completion_mask)
    h = model.hidden_states(full, remat=remat)[:, p - 1 : p + c - 1]
    lp = _head_logprobs(model, h, completion_ids, chunk_size, temperature, fuse_head)
    return lp * completion_mask.astype(lp.dtype)


def _head_logprobs(model, h, ids, chunk_size, temperature, fuse_head):
    ids = ids.astype(jnp.int32)
    # Duck-typed policies (e.g. lora.LoraThinker) offer only ``logits``: the unfused path.
    kernel = model.head_kernel() if hasattr(model, "head_kernel") else None
    if fuse_head is None:
        fuse_head = kernel is not None and kernel.dtype != jnp.float32
    if fuse_head and kernel is not None:
        return head_token_logprobs(h, kernel, ids, chunk_size=chunk_size or 128, temperature=temperature)
    return token_logprobs(model.logits(h), ids, chunk_size=chunk_size, temperature=temperature)


def group_completion_logprobs(
    model: Qwen2_5OmniThinker,
    prompt: ModelInputs,
    completion_ids: Int[Array, "R C"],
    completion_mask: Int[Array, "R C"] | None = None,
    *,
    group_size: int,
    remat: bool = False,
    temperature: float = 1.0,
    chunk_size: int | None = None,
    fuse_head: bool | None = None,
) -> Float[Array, "R C"]:
    """:func:`completion_logprobs` for GRPO groups, running each group's shared prompt once.

    Same inputs and result as ``completion_logprobs(model, prompt, completion_ids, completion_mask, ...)`` with
    ``prompt = repeat_prompt(inputs, group_size)`` (rows ``b * group_size + i``; R = B * group_size), up to
    float32 round-off. The B distinct prompts go through the encoders and the decoder once, keeping each layer's
    keys / values (as :func:`.sampling.generate`'s prefill does); those are repeated to R rows and the R
    completions attend to them as a read-only prefix. Autodiff sums the gradient of the shared prefix over its group, so
    log-probs and gradients equal those of the unshared computation. Saves the (group_size - 1) / group_size
    share of prompt work (encoders included), forward and backward.

    Raises :class:`InputError` if ``prompt`` was not built by ``repeat_prompt(..., group_size)``.
    """
    if completion_mask is None:
        completion_mask = jnp.ones_like(completion_ids)
    model = compute_view(model)
    base = unrepeat_prompt(prompt, group_size)
    b, p = base.input_ids.shape
    r, c = completion_ids.shape
    if r != b * group_size:
        raise InputError(f"completion_ids has {r} rows; prompt has {b} groups of {group_size}")
    lm, tcfg = model.language_model, model.config.text
    rep = lambda a: jnp.repeat(a, group_size, axis=0)
    # Prompt prefix, once per group: hidden states and every layer's keys / values.
    prompt_mask = base.attention_mask.astype(bool)
    kh, hd, dt = tcfg.num_key_value_heads, tcfg.head_dim, lm.embed_tokens.weight[...].dtype
    caches = [(jnp.zeros((b, kh, hd, p), dt), jnp.zeros((b, kh, p, hd), dt)) for _ in range(tcfg.num_hidden_layers)]
    h_prompt, caches = lm(
        model.embed(base, remat=remat),
        base.position_ids,
        causal_padding_mask(prompt_mask),
        caches=caches,
        write_index=0,
        remat=remat,
        act_sharding=model.act_sharding,
    )
    prefix = [(rep(k), rep(v)) for k, v in caches]
    # Completions, R rows, attending to the repeated prefix and causally to themselves.
    cmask = completion_mask.astype(bool)
    kv_valid = jnp.concatenate([rep(prompt_mask), cmask], axis=1)  # [R, P + C]
    causal = jnp.arange(p + c)[None, :] <= p + jnp.arange(c)[:, None]  # [C, P + C]
    start = rep(max_prompt_position(base) + 1)
    cpos = start[:, None] + jnp.arange(c, dtype=base.position_ids.dtype)[None, :]
    x = lm.embed_tokens(completion_ids.astype(jnp.int32))
    h_comp, _ = lm(
        x,
        jnp.broadcast_to(cpos[None], (3, r, c)),
        causal[None] & kv_valid[:, None, :],
        caches=prefix,
        remat=remat,
        act_sharding=model.act_sharding,
    )
    # Token j is predicted from position j - 1: the prompt's last position for j = 0.
    h = jnp.concatenate([rep(h_prompt[:, -1:]), h_comp[:, :-1]], axis=1)
    lp = _head_logprobs(model, h, completion_ids, chunk_size, temperature, fuse_head)
    return lp * completion_mask.astype(lp.dtype)


@dataclasses.dataclass(frozen=True)
class CompletionScorer:
    """The GRPO update's scorer ``(model, prompt, completion_ids, completion_mask) -> [R, C]`` float32 log-probs:
    :func:`group_completion_logprobs` with ``group_size`` > 1 (the prompt is ``repeat_prompt(inputs,
    group_size)``), else :func:`completion_logprobs`. Hashable by value: a static jit argument, equal settings
    share the compiled programs.

    It also splits off the encoders, for an update that scores its rows in several slices
    (``rl.update._accumulate``): :meth:`features` runs every encoder the prompt uses once (differentiable in the
    parameters), :meth:`with_features` attaches the result to the prompt, and the scorer then places those
    features instead of running the encoders again for every slice.

    ``gather_weights``: score with the text decoder's and lm_head's weights in their decoding layout
    (:meth:`.Qwen2_5OmniThinker.decode_weights`, ``ShardingConfig.decode_gather``): XLA gathers them over the
    gathered axes once per program, and reduces their gradient once, instead of in every pass that reads them
    (forward, backward). Same values; more memory per chip (the decoder's compute-dtype weights / ``tensor``).
    A model without a decoding layout is scored as it is."""

    group_size: int | None = None
    remat: Any = False
    temperature: float = 1.0
    chunk_size: int | None = None
    fuse_head: bool | None = None
    gather_weights: bool = False

    def __call__(self, model, prompt: ModelInputs, completion_ids, completion_mask=None):
        kw = dict(remat=self.remat, temperature=self.temperature, chunk_size=self.chunk_size, fuse_head=self.fuse_head)
        if self.gather_weights:
            model = compute_view(model)
            model = model.decode_weights() if hasattr(model, "decode_weights") else model
        if self.group_size and self.group_size > 1:
            return group_completion_logprobs(
                model, prompt, completion_ids, completion_mask, group_size=self.group_size, **kw
            )
        return completion_logprobs(model, prompt, completion_ids, completion_mask, **kw)

    def features(self, model, prompt: ModelInputs) -> dict:
        """``{kind: encoder output}`` of the prompt's images / videos / audio ({} for text), in the model's compute
        dtype, with the scorer's remat setting for the vision blocks."""
        return encoder_features(model, prompt, remat=self.remat)

    @staticmethod
    def with_features(prompt: ModelInputs, features: dict) -> ModelInputs:
        return with_features(prompt, features)


def trajectory_logprobs(
    model: Qwen2_5OmniThinker,
    inputs: ModelInputs,
    target_ids: Int[Array, "B T"],
    target_mask: Int[Array, "B T"] | None = None,
    *,
    remat: bool = False,
    temperature: float = 1.0,
    chunk_size: int | None = None,
    fuse_head: bool | None = None,
) -> Float[Array, "B T"]:
    """log p(token j | tokens < j) at every position j of whole prepared sequences, 0 where ``target_mask`` is 0
    and at j = 0: the scorer of multi-turn trajectories (prompt, answer, feedback with images, answer, ...), whose
    images sit between the scored tokens, so they cannot be a text-only completion of a fixed prompt.

    ``inputs`` is the trajectory prepared as one sequence per row (:func:`.thinker.prepare_inputs`; its
    ``get_rope_index`` positions give every answer token the position the sampler gave it when that turn was
    generated from the re-prefilled conversation so far); ``target_ids`` must equal ``inputs.input_ids`` (the
    signature is the completion scorers' ``(model, prompt, ids, mask)``, so the GRPO update takes either);
    ``target_mask`` marks the policy's answer tokens. Jittable and differentiable."""
    ids = inputs.input_ids
    if target_mask is None:
        target_mask = inputs.attention_mask
    model = compute_view(model)
    h = model.hidden_states(inputs, remat=remat)[:, :-1]
    lp = _head_logprobs(model, h, ids[:, 1:], chunk_size, temperature, fuse_head)
    lp = jnp.concatenate([jnp.zeros_like(lp[:, :1]), lp], axis=1)
    return lp * target_mask.astype(lp.dtype)


@nnx.jit(static_argnames=("remat", "temperature", "chunk_size"))
def _jit_completion_logprobs(model, prompt, completion_ids, completion_mask, *, remat, temperature, chunk_size):
    return completion_logprobs(
        model, prompt, completion_ids, completion_mask, remat=remat, temperature=temperature, chunk_size=chunk_size
    )


def sequence_logprobs(
    model: Qwen2_5OmniThinker,
    batch: Mapping[str, Any],
    *,
    remat: bool = False,
    temperature: float = 1.0,
    chunk_size: int | None = None,
) -> Float[Array, "B C"]:
    """Per-token log-probs of the completion tokens of ``batch`` (jit-compiled).

    ``batch`` holds the prompt as transformers keywords (the processor's output, left-padded) or a prepared
    ``ModelInputs`` under ``"prompt"``, plus ``completion_ids`` [B, C] and optionally ``completion_mask``
    [B, C] (1 on real completion tokens; default all ones). Returns float32 [B, C].
    """
    if "completion_ids" not in batch:
        raise KeyError("batch needs 'completion_ids' [B, C]")
    prompt = batch["prompt"] if "prompt" in batch else as_model_inputs(model.config, batch)
    ids = jnp.asarray(batch["completion_ids"], jnp.int32)
    mask = batch.get("completion_mask")
    mask = jnp.ones_like(ids) if mask is None else jnp.asarray(mask, jnp.int32)
    if mask.shape != ids.shape or ids.shape[0] != prompt.input_ids.shape[0]:
        raise ValueError(
            f"completion_ids {ids.shape}, completion_mask {mask.shape} and prompt batch "
            f"{prompt.input_ids.shape[0]} do not match"
        )
    return _jit_completion_logprobs(
        model, prompt, ids, mask, remat=remat, temperature=temperature, chunk_size=chunk_size
    )
