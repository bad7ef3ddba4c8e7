"""KV-cached sampling for GRPO: prefill a (multimodal) prompt once, decode N samples from copies of its cache.

Shape legend: B prompts, N samples per prompt, R = B*N rows (row ``b * N + n``), P prompt tokens (left-padded),
G new tokens, S = P + G cache slots, V vocabulary.

One jit-compiled program runs the prefill (encoders + decoder over the prompt, writing the cache), repeats the
cache N times along the batch, then a ``while_loop`` decodes until every row has produced an EOS token or G
tokens. Decoding positions continue the prompt's text positions (``max_prompt_position + 1 + step`` on all
three M-RoPE axes), exactly as transformers' ``generate`` and :mod:`.scoring` do.

Returned log-probs are ``log_softmax(logits / temperature)[token]`` of the full distribution (top-k / top-p
only restrict what is sampled); this is the behaviour policy's log-prob that GRPO's ratio needs, and it equals
:func:`.scoring.sequence_logprobs` of the same tokens at the same temperature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct
from jax.sharding import NamedSharding, PartitionSpec
from jaxtyping import Array, Float, Int

from omnir1_jax.models.qwen2_5_omni.scoring import max_prompt_position
from omnir1_jax.models.qwen2_5_omni.sharding import Constraint, constrain
from omnir1_jax.models.qwen2_5_omni.text import causal_padding_mask
from omnir1_jax.models.qwen2_5_omni.thinker import (
    InputError,
    ModelInputs,
    Qwen2_5OmniThinker,
    as_model_inputs,
    compute_view,
)


@struct.dataclass
class SampleOutput:
    tokens: Int[Array, "R G"]  # pad_token_id after a row's EOS
    logprobs: Float[Array, "R G"]  # 0 after a row's EOS
    lengths: Int[Array, " R"]  # generated tokens per row, EOS included


def filter_logits(logits: Float[Array, "R V"], top_k: int = 0, top_p: float = 1.0) -> Float[Array, "R V"]:
    """Set logits outside the top-k / nucleus (smallest set with probability >= top_p) to -inf."""
    neg = jnp.finfo(logits.dtype).min
    if top_k and top_k < logits.shape[-1]:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, neg, logits)
    if top_p < 1.0:
        srt = jnp.sort(logits, axis=-1)[..., ::-1]
        probs = jax.nn.softmax(srt, axis=-1)
        keep = (jnp.cumsum(probs, axis=-1) - probs) < top_p  # the most likely token is always kept
        n_keep = jnp.sum(keep, axis=-1, keepdims=True)
        thresh = jnp.take_along_axis(srt, n_keep - 1, axis=-1)
        logits = jnp.where(logits < thresh, neg, logits)
    return logits


def first_argmax(x: Float[Array, "R V"]) -> Int[Array, " R"]:
    """``jnp.argmax(x, -1)`` (first index of the maximum) for finite ``x``, as two plain reductions.

    XLA:CPU lowers ``argmax`` to a variadic (value, index) reduction that took ~35 ms per decode step on a
    [64, 8192] batch; a max followed by a min over matching indices gives the same index in a fraction of that.
    """
    m = jnp.max(x, axis=-1, keepdims=True)
    idx = jax.lax.broadcasted_iota(jnp.int32, x.shape, x.ndim - 1)
    return jnp.min(jnp.where(x == m, idx, x.shape[-1]), axis=-1)


def _pick(logits, key, *, greedy, temperature, top_k, top_p, suppress=()):
    x = logits.astype(jnp.float32)
    # suppressed ids are never drawn; like top-k / top-p, the reported log-prob is the unfiltered one (what a
    # scorer of the sequence computes)
    ban = (
        (lambda z: z.at[:, jnp.asarray(suppress, jnp.int32)].set(jnp.finfo(z.dtype).min)) if suppress else (lambda z: z)
    )
    if greedy:
        tok = first_argmax(ban(x))
        lp_all = jax.nn.log_softmax(x, axis=-1)
    else:
        x = x / temperature
        lp_all = jax.nn.log_softmax(x, axis=-1)
        # jax.random.categorical(key, z) is argmax(gumbel(key, z.shape) + z); same draw, faster argmax.
        z = ban(filter_logits(x, top_k, top_p))
        tok = first_argmax(jax.random.gumbel(key, z.shape, z.dtype) + z)
    lp = jnp.take_along_axis(lp_all, tok[:, None], axis=-1)[:, 0]
    return tok.astype(jnp.int32), lp


def _cache_specs(spec):
    """The model's [B, S, K, H] cache constraint (PartitionSpec or NamedSharding), permuted for the
    k [B, K, H, S] / v [B, K, S, H] caches."""
    if spec is None:
        return None, None
    mesh = spec.mesh if isinstance(spec, (Constraint, NamedSharding)) else None
    inner = spec.spec if mesh is not None else spec
    b, s, k, h = tuple(inner) + (None,) * (4 - len(tuple(inner)))
    out = PartitionSpec(b, k, h, s), PartitionSpec(b, k, s, h)
    return out if mesh is None else tuple(Constraint(mesh, o) for o in out)


def _prefill(
    model: Qwen2_5OmniThinker, inputs: ModelInputs, *, max_new_tokens: int, num_samples: int, pad_token_id: int = 0
):
    """The prompts' forward pass with the KV cache laid out for the group (``model`` already in its compute view,
    :func:`_decode_model`): returns ``(fused, start, carry)``: the decoder's concatenated weights, each row's first
    completion position, and the decode loop's state ``(caches, logits, kv_valid, tokens, logps, done,
    lengths)`` for rows ``prompt * num_samples + sample``."""
    b, p = inputs.input_ids.shape
    g = max_new_tokens
    s_len = p + g
    tcfg = model.config.text
    kv_dtype = model.language_model.embed_tokens.weight[...].dtype
    fused = model.language_model.fused_weights()  # concatenated once, outside the decode loop
    x = model.embed(inputs)
    prompt_mask = inputs.attention_mask.astype(bool)
    mask = jnp.pad(causal_padding_mask(prompt_mask), ((0, 0), (0, 0), (0, g)))
    kh, hd = tcfg.num_key_value_heads, tcfg.head_dim
    empty_k, empty_v = jnp.zeros((b, kh, hd, s_len), kv_dtype), jnp.zeros((b, kh, s_len, hd), kv_dtype)
    caches = [(empty_k, empty_v) for _ in range(tcfg.num_hidden_layers)]
    h, caches = model.language_model(
        x, inputs.position_ids, mask, caches=caches, write_index=0, act_sharding=model.act_sharding, fused=fused
    )
    logits = model.logits(h[:, -1:])[:, 0]
    # N copies of the cache, rows b * N + n.
    rep = lambda a: jnp.repeat(a, num_samples, axis=0)
    k_spec, v_spec = _cache_specs(model.kv_sharding)
    caches = [(constrain(rep(k), k_spec), constrain(rep(v), v_spec)) for k, v in caches]
    r = b * num_samples
    kv_valid = jnp.concatenate([rep(prompt_mask), jnp.zeros((r, g), bool)], axis=1)
    carry = (
        caches,
        rep(logits),
        kv_valid,
        jnp.full((r, g), pad_token_id, jnp.int32),
        jnp.zeros((r, g), jnp.float32),
        jnp.zeros((r,), bool),
        jnp.zeros((r,), jnp.int32),
    )
    return fused, rep(max_prompt_position(inputs) + 1), carry


def _decode_step(
    model,
    fused,
    carry,
    start,
    step,
    key,
    *,
    prompt_len: int,
    greedy,
    temperature,
    top_k,
    top_p,
    eos,
    pad_token_id,
    suppress=(),
):
    """One token for every row: pick from the current logits, write it, run it through the decoder at cache
    position ``prompt_len + step`` (``step`` is the loop's counter, shared by every row)."""
    caches, logits, kv_valid, tokens, logps, done, lengths = carry
    r = logits.shape[0]
    eos_arr = jnp.asarray(eos if eos else [-1], jnp.int32)
    tok, lp = _pick(
        logits,
        jax.random.fold_in(key, step),
        greedy=greedy,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        suppress=suppress,
    )
    tok = jnp.where(done, pad_token_id, tok)
    lp = jnp.where(done, 0.0, lp)
    lengths = lengths + (~done).astype(jnp.int32)
    tokens = jax.lax.dynamic_update_slice(tokens, tok[:, None], (0, step))
    logps = jax.lax.dynamic_update_slice(logps, lp[:, None], (0, step))
    done = done | jnp.any(tok[:, None] == eos_arr[None, :], axis=-1)
    kv_valid = jax.lax.dynamic_update_slice(kv_valid, jnp.ones((r, 1), bool), (0, prompt_len + step))
    xt = model.language_model.embed_tokens(tok[:, None])
    pos = jnp.broadcast_to((start + step)[None, :, None], (3, r, 1)).astype(start.dtype)
    h, caches = model.language_model(
        xt,
        pos,
        kv_valid[:, None, :],
        caches=caches,
        write_index=prompt_len + step,
        act_sharding=model.act_sharding,
        fused=fused,
    )
    return caches, model.logits(h)[:, 0], kv_valid, tokens, logps, done, lengths


def _decode_model(model):
    """The model a decode program runs: cast to the compute dtype first (float32 masters sample in bf16), then
    its decoder weights gathered once, not in every step (ShardingConfig.decode_gather): the gather moves the
    compute dtype's bytes."""
    return compute_view(model).decode_weights()


def _finish(carry) -> SampleOutput:
    _, _, _, tokens, logps, _, lengths = carry
    return SampleOutput(tokens=tokens, logprobs=logps, lengths=lengths)


def _generate(
    model: Qwen2_5OmniThinker,
    inputs: ModelInputs,
    key,
    *,
    max_new_tokens,
    num_samples,
    greedy,
    temperature,
    top_k,
    top_p,
    eos,
    pad_token_id,
    suppress=(),
):
    model = _decode_model(model)
    fused, start, carry = _prefill(
        model, inputs, max_new_tokens=max_new_tokens, num_samples=num_samples, pad_token_id=pad_token_id
    )
    kw = dict(
        prompt_len=inputs.input_ids.shape[1],
        greedy=greedy,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        eos=eos,
        pad_token_id=pad_token_id,
        suppress=suppress,
    )

    def cond(state):
        step, carry = state
        return (step < max_new_tokens) & ~jnp.all(carry[5])

    def body(state):
        step, carry = state
        return step + 1, _decode_step(model, fused, carry, start, step, key, **kw)

    _, carry = jax.lax.while_loop(cond, body, (jnp.int32(0), carry))
    return _finish(carry)


def generate_seeds(
    graphdef,
    states,
    inputs,
    keys,
    *,
    shared_inputs: bool = False,
    max_new_tokens,
    num_samples,
    greedy,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    eos=(),
    pad_token_id=0,
    suppress=(),
) -> SampleOutput:
    """:func:`_generate` for several models at once (traceable): ``states`` is their state stacked on a leading
    seed axis (split with ``graphdef``), ``inputs`` their stacked prompts (or one prompt batch for all with
    ``shared_inputs``), ``keys`` one PRNG key per model. The prefill is ``vmap``-ed over the seed axis; the decode
    loop is one loop whose body is ``vmap``-ed, so its step counter stays shared: the KV cache is written in
    place at one position for every model (a ``vmap`` over the whole loop would make the counter per model and
    every cache write a scatter). Returns outputs with a leading seed axis; row for row what :func:`_generate`
    gives each model."""
    in_inputs = None if shared_inputs else 0

    def view(state):
        return nnx.state(_decode_model(nnx.merge(graphdef, state)))

    cstates = jax.vmap(view)(states)

    def prefill(state, inp):
        return _prefill(
            nnx.merge(graphdef, state),
            inp,
            max_new_tokens=max_new_tokens,
            num_samples=num_samples,
            pad_token_id=pad_token_id,
        )

    fused, start, carry = jax.vmap(prefill, in_axes=(0, in_inputs))(cstates, inputs)
    kw = dict(
        prompt_len=inputs.input_ids.shape[-1],
        greedy=greedy,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        eos=eos,
        pad_token_id=pad_token_id,
        suppress=suppress,
    )

    def one_step(state, f, c, st, key, step):
        return _decode_step(nnx.merge(graphdef, state), f, c, st, step, key, **kw)

    def cond(loop):
        step, carry = loop
        return (step < max_new_tokens) & ~jnp.all(carry[5])

    def body(loop):
        step, carry = loop
        return step + 1, jax.vmap(one_step, in_axes=(0, 0, 0, 0, 0, None))(cstates, fused, carry, start, keys, step)

    _, carry = jax.lax.while_loop(cond, body, (jnp.int32(0), carry))
    return jax.vmap(_finish)(carry)


_STATIC = (
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
_jit_generate = nnx.jit(_generate, static_argnames=_STATIC)


def generate(
    model: Qwen2_5OmniThinker,
    prompt: ModelInputs | Mapping[str, Any],
    *,
    max_new_tokens: int,
    key: jax.Array | None = None,
    num_samples: int = 1,
    greedy: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int = 0,
    suppress_token_ids: Sequence[int] = (),
) -> SampleOutput:
    """Sample ``num_samples`` completions per prompt (a GRPO group each); deterministic given ``key``.

    Args:
      prompt: the processor's output (transformers keywords, left-padded) or prepared :class:`ModelInputs`.
      max_new_tokens: G, the decode budget.
      key: PRNG key (required unless ``greedy``).
      greedy: argmax decoding (``temperature`` / top-k / top-p ignored; log-probs at temperature 1).
      top_k: 0 disables; top_p: 1.0 disables.
      eos_token_id: id(s) that end a row (included in its length); None decodes G tokens.
      suppress_token_ids: ids never drawn (e.g. the media placeholders in multi-turn answers, which would read as
        media inputs when the answer is part of the next turn's prompt); the log-probs stay unfiltered.
    Returns:
      :class:`SampleOutput` with rows ordered ``prompt * num_samples + sample``.
    """
    inputs = as_model_inputs(model.config, prompt)
    am = inputs.attention_mask
    # a global array spanning processes is checked by each process on the rows it holds
    last = (
        [np.asarray(sh.data)[:, -1] for sh in am.addressable_shards]
        if isinstance(am, jax.Array) and not am.is_fully_addressable
        else [np.asarray(am)[:, -1]]
    )
    if not all(np.all(x == 1) for x in last):
        raise InputError("prompts must be left-padded (attention_mask[:, -1] == 1 for every row)")
    if max_new_tokens < 1 or num_samples < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} and num_samples={num_samples} must be >= 1")
    if not greedy:
        if key is None:
            raise ValueError("sampling needs a PRNG key (or greedy=True)")
        if not temperature > 0:
            raise ValueError(f"temperature={temperature} must be > 0")
        if not 0.0 < top_p <= 1.0 or top_k < 0:
            raise ValueError(f"top_p={top_p} must be in (0, 1] and top_k={top_k} >= 0")
    key = jax.random.key(0) if key is None else key
    eos = () if eos_token_id is None else tuple(int(e) for e in np.atleast_1d(eos_token_id))
    return _jit_generate(
        model,
        inputs,
        key,
        max_new_tokens=int(max_new_tokens),
        num_samples=int(num_samples),
        greedy=bool(greedy),
        temperature=1.0 if greedy else float(temperature),
        top_k=int(top_k),
        top_p=float(top_p),
        eos=eos,
        pad_token_id=int(pad_token_id),
        suppress=tuple(sorted(int(t) for t in suppress_token_ids)),
    )
