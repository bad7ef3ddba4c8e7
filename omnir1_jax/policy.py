"""Policy services: everything the learner, the evaluator and the entry points need from System 1.

One place for: the tokenizer (a local directory, or the tiny offline one), the policy (loaded from a local
Hugging Face directory or built from a preset, optionally placed on a mesh), its frozen reference copy, export
back to a Hugging Face directory, the EOS / pad ids the samplers stop on, the completion scorer of the update,
and generation + decoding (:func:`complete`, greedy or sampled groups).

Layer order (``tests/test_layering.py``): this module sits above ``models``, ``data`` and ``rl`` and below the
tasks, the evaluator and the learner; it imports nothing from those.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding

from omnir1_jax.config import ConfigError, ModelSpec
from omnir1_jax.models import qwen2_5_omni
from omnir1_jax.models.qwen2_5_omni import (
    cast_weights,
    fsdp_tp,
    generate,
    stored_dtype,
    to_hf,
    trajectory_logprobs,
)
from omnir1_jax.models.qwen2_5_omni.sharding import activation_shardings, param_shardings
from omnir1_jax.models.qwen2_5_omni.thinker import as_model_inputs
from omnir1_jax.runtime import distributed
from omnir1_jax.testing.tokenizer import build_tiny_tokenizer

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


# ---------------------------------------------------------------------------------------------- tokenizer
def build_tokenizer(spec: ModelSpec):
    """The checkpoint's tokenizer from a local directory, or the tiny offline one for the ``tiny`` preset."""
    path = spec.tokenizer or spec.checkpoint
    if path:
        if not os.path.isdir(path):
            raise ConfigError(f"model.tokenizer / model.checkpoint: no such directory: {path}")
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    if spec.preset != "tiny":
        raise ConfigError(f"model.preset={spec.preset!r} without a checkpoint needs model.tokenizer (a local dir)")
    return build_tiny_tokenizer(int(dict(spec.overrides).get("vocab_size", 512)))


def eos_ids_of(tokenizer) -> list[int]:
    """Token ids that end a completion: ``<|im_end|>``, ``<|endoftext|>`` and the tokenizer's EOS (sorted)."""
    ids = {tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(i for i in ids if i is not None and i >= 0)


def pad_id_of(tokenizer) -> int:
    """The pad id the samplers fill finished rows with (0 when the tokenizer has none)."""
    return tokenizer.pad_token_id or 0


def eos_pad(tokenizer) -> tuple[list[int], int]:
    """``(eos_ids_of(tokenizer), pad_id_of(tokenizer))``."""
    return eos_ids_of(tokenizer), pad_id_of(tokenizer)


def target_eos_id(tokenizer) -> int:
    """The EOS id appended to supervised targets (the tokenizer's own, else the first of :func:`eos_ids_of`)."""
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else eos_ids_of(tokenizer)[0]


# ------------------------------------------------------------------------------------------------- policy
def build_model_config(spec: ModelSpec):
    """The Thinker config of ``spec``: the checkpoint's, or a preset (``tiny`` takes ``overrides``)."""
    if spec.checkpoint:
        return qwen2_5_omni.Qwen2_5OmniConfig.from_pretrained(spec.checkpoint)
    presets = {
        "tiny": qwen2_5_omni.tiny,
        "qwen2_5_omni_3b": qwen2_5_omni.qwen2_5_omni_3b,
        "qwen2_5_omni_7b": qwen2_5_omni.qwen2_5_omni_7b,
    }
    if spec.preset not in presets:
        raise ConfigError(f"model.preset must be one of {sorted(presets)}, got {spec.preset!r}")
    kwargs = dict(spec.overrides)
    if kwargs and spec.preset != "tiny":
        raise ConfigError(
            "model.overrides only applies to the tiny preset (vocab_size, hidden_size, num_layers, "
            "tie_word_embeddings, vision_depth, audio_layers)"
        )
    known = set(inspect.signature(qwen2_5_omni.tiny).parameters) if kwargs else set()
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ConfigError(f"model.overrides: {unknown} are not arguments of the tiny preset (one of {sorted(known)})")
    return presets[spec.preset](**kwargs)


def build_policy(
    spec: ModelSpec, *, seed: int = 0, mesh=None, sharding=None, decode_gather: bool = False, trainable: bool = True
):
    """The System-1 policy: loaded from ``spec.checkpoint`` or randomly initialised from ``spec.preset``.

    Precision: parameters stored in ``spec.param_dtype`` (float32 master weights by default), computing in
    ``spec.dtype``. ``trainable=False`` (evaluation, inference) stores them in ``spec.dtype``: nothing updates
    them, so a float32 copy would only double the memory.

    With ``mesh`` (a mesh over every device of every process) the parameters are created, or loaded, directly in
    their sharding (``sharding``'s rules on each weight's logical axes, default
    :func:`~omnir1_jax.models.qwen2_5_omni.fsdp_tp`): global arrays, no device ever holding a full copy; the
    model carries its activation and KV-cache constraints from construction (``decode_gather``: the default
    sharding's ``decode_gather=("fsdp",)``, ``mesh.decode_gather`` in the config)."""
    dtype = DTYPES[spec.dtype]
    param_dtype = DTYPES[spec.param_dtype] if trainable else dtype
    if mesh is not None and sharding is None:
        sharding = qwen2_5_omni.fsdp_tp(("fsdp",) if decode_gather else ())
    if spec.checkpoint:
        return qwen2_5_omni.from_hf(spec.checkpoint, dtype=dtype, mesh=mesh, sharding=sharding, param_dtype=param_dtype)
    return qwen2_5_omni.init_model(
        build_model_config(spec), seed=seed, dtype=dtype, mesh=mesh, sharding=sharding, param_dtype=param_dtype
    )


def is_placed(policy, mesh) -> bool:
    """Whether every parameter of ``policy`` already lives on ``mesh`` (a ``NamedSharding`` of that mesh)."""
    leaves = jax.tree.leaves(nnx.state(policy, nnx.Param))
    return all(isinstance(getattr(x, "sharding", None), NamedSharding) and x.sharding.mesh == mesh for x in leaves)


def frozen_copy(model: nnx.Module, dtype: str | None = None) -> nnx.Module:
    """An independent copy of ``model`` (the GRPO reference), never updated; with ``dtype`` (the policy's compute
    dtype) its weights are stored in it: the reference only ever computes, so float32 masters would double its
    memory for nothing (its log-probs are float32 either way)."""
    copy = nnx.clone(model)
    return copy if dtype is None else cast_weights(copy, DTYPES[dtype])


def export_dtype(spec: ModelSpec) -> str:
    """The dtype of an exported policy's weights: ``spec.export_dtype``, or for ``auto`` the dtype the checkpoint
    it was loaded from is stored in (bfloat16 for the released Qwen2.5-Omni), else ``spec.param_dtype``."""
    if spec.export_dtype != "auto":
        return spec.export_dtype
    if spec.checkpoint:
        got = stored_dtype(spec.checkpoint)
        return got if got in DTYPES else "float32"
    return spec.param_dtype


# Files of a checkpoint directory that describe its inputs (tokenizer, chat template, image / audio processor)
# rather than its weights: copied next to an exported policy so that it loads as a whole model (transformers'
# processors, the bridge's qwen2_5_omni grounder).
_ASSET_SUFFIXES = (".json", ".txt", ".jinja", ".model", ".tiktoken")
_NOT_ASSETS = ("config.json", "generation_config.json")


def export_policy(
    policy, path: str, *, tokenizer=None, assets_from: str | None = None, dtype: str | None = None
) -> str:
    """Write ``policy`` (a Thinker; merge LoRA factors first) as a Hugging Face directory (safetensors +
    config.json) that transformers and :func:`build_policy` (``model.checkpoint=path``) load; replaces an
    existing export. Only process 0 writes in a multi-process run. Returns ``path``. ``dtype`` (``float32`` /
    ``bfloat16``; :func:`export_dtype` of the run's model spec) casts the weights; None keeps their own.

    The directory also gets what a processor needs to load it as a whole model: the tokenizer, chat template and
    processor files of ``assets_from`` (the checkpoint the policy came from: ``model.checkpoint`` or
    ``model.tokenizer``) when it is a directory, else ``tokenizer`` saved with ``save_pretrained`` (the tiny
    offline tokenizer). Everything is written to a temporary sibling first and renamed, so a failure leaves
    nothing half-written."""
    if jax.process_count() > 1:
        # the parameters are global arrays sharded over every process: every process takes part in gathering
        # them (a collective), then process 0 writes
        graphdef, state = nnx.split(policy)
        policy = nnx.merge(graphdef, jax.tree.map(distributed.fetch, state))
    if jax.process_index() != 0:
        return path
    cast = None if dtype is None else DTYPES[dtype]
    if tokenizer is None and not (assets_from and os.path.isdir(assets_from)):
        return to_hf(policy, path, overwrite=True, dtype=cast)
    parent = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".export_")
    try:
        staged = to_hf(policy, os.path.join(tmp, "hf"), dtype=cast)
        if assets_from and os.path.isdir(assets_from):
            for name in sorted(os.listdir(assets_from)):
                src = os.path.join(assets_from, name)
                if (
                    os.path.isfile(src)
                    and name.endswith(_ASSET_SUFFIXES)
                    and name not in _NOT_ASSETS
                    and not name.endswith(".index.json")
                ):
                    shutil.copyfile(src, os.path.join(staged, name))
        else:
            tokenizer.save_pretrained(staged)
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(staged, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


# ----------------------------------------------------------------------------------------------- scoring
@functools.cache  # one object per setting: it is a static jit argument (cache key)
def make_scorer(remat: bool, temperature: float, group_size: int | None = None, gather_weights: bool = False):
    """The policy's completion scorer ``(model, prompt, completion_ids, completion_mask) -> [R, C]`` log-probs
    (a fixed function object per setting, so jit caches stay warm).

    With ``group_size`` the rows are GRPO groups sharing a prompt (``repeat_prompt(inputs, group_size)``): the
    prompt is run once per group and the completions attend to the shared prefix — same log-probs and
    gradients as full rows, (group_size - 1) / group_size less prompt compute. The scorer also runs the encoders
    on their own (``CompletionScorer.features``), so a micro-batched update encodes the pixels once per step.
    ``gather_weights``: ``CompletionScorer.gather_weights`` (``mesh.update_gather``)."""
    return qwen2_5_omni.CompletionScorer(
        group_size=group_size if group_size and group_size > 1 else None,
        remat=remat,
        temperature=temperature,
        gather_weights=gather_weights,
    )


@functools.cache
def make_trajectory_scorer(remat: bool, temperature: float):
    """The scorer of multi-turn trajectories ``(model, inputs, ids, answer_mask) -> [R, T]`` log-probs
    (:func:`~omnir1_jax.models.qwen2_5_omni.trajectory_logprobs`; a fixed object per setting, like
    :func:`make_scorer`)."""
    return functools.partial(trajectory_logprobs, remat=remat, temperature=temperature)


# -------------------------------------------------------------------------------------- generate + decode
def decode_completions(tokenizer, tokens: np.ndarray, lengths: np.ndarray, eos_ids: Sequence[int]) -> list[str]:
    """Text of each row's first ``lengths[r]`` tokens, a final EOS dropped, special tokens skipped."""
    tokens, lengths = np.asarray(tokens), np.asarray(lengths)
    eos = {int(e) for e in eos_ids}
    texts = []
    for r in range(tokens.shape[0]):
        ids = tokens[r, : int(lengths[r])].tolist()
        if ids and ids[-1] in eos:
            ids = ids[:-1]
        texts.append(tokenizer.decode(ids, skip_special_tokens=True))
    return texts


@dataclasses.dataclass
class Completions:
    """Sampled or greedy completions of a prompt batch; rows ordered ``prompt * num_samples + sample``.

    Attributes:
      tokens: int ``[R, C]`` completion tokens (padded with the pad id after EOS).
      lengths: int ``[R]`` tokens up to and including EOS.
      texts: decoded text of each row (a final EOS dropped, special tokens skipped).
      prompt: the prepared :class:`~omnir1_jax.models.qwen2_5_omni.ModelInputs` the completions continue.
      logprobs: float32 ``[R, C]`` the sampler's log-probs of ``tokens`` (0 after EOS).
    """

    tokens: np.ndarray
    lengths: np.ndarray
    texts: list[str]
    prompt: Any
    logprobs: np.ndarray | None = None


def complete(
    policy,
    tokenizer,
    prompt,
    *,
    max_new_tokens: int,
    greedy: bool = True,
    num_samples: int = 1,
    key: jax.Array | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    eos_ids: Sequence[int] | None = None,
    suppress_ids: Sequence[int] = (),
) -> Completions:
    """Generate and decode: ``num_samples`` completions per prompt of ``prompt`` (a prepared ``ModelInputs``
    or the transformers keywords the data pipelines emit). Greedy by default; sampling needs ``key``;
    ``suppress_ids`` are never generated (:func:`media_token_ids` for multi-turn answers)."""
    eos = list(eos_ids) if eos_ids is not None else eos_ids_of(tokenizer)
    inputs = as_model_inputs(policy.config, prompt)
    out = generate(
        policy,
        inputs,
        max_new_tokens=max_new_tokens,
        key=key,
        num_samples=num_samples,
        greedy=greedy,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        eos_token_id=eos,
        pad_token_id=pad_id_of(tokenizer),
        suppress_token_ids=suppress_ids,
    )
    # on a mesh spanning processes the rows live on several hosts: every process reads the whole batch back
    tokens, lengths = distributed.fetch(out.tokens), distributed.fetch(out.lengths)
    return Completions(
        tokens, lengths, decode_completions(tokenizer, tokens, lengths, eos), inputs, distributed.fetch(out.logprobs)
    )


def media_token_ids(tokenizer) -> tuple[int, ...]:
    """The ids of the media start / end and placeholder tokens (image, video, audio): what an answer that becomes
    part of a later prompt (multi-turn rollouts) must not contain."""
    names = (
        "<|vision_bos|>",
        "<|vision_eos|>",
        "<|audio_bos|>",
        "<|audio_eos|>",
        "<|IMAGE|>",
        "<|VIDEO|>",
        "<|AUDIO|>",
    )
    unk = getattr(tokenizer, "unk_token_id", None)
    ids = [tokenizer.convert_tokens_to_ids(n) for n in names]
    return tuple(sorted({int(i) for i in ids if i is not None and i != unk}))


def place_policy(policy, mesh, sharding=None):
    """``policy`` laid out on ``mesh`` (a mesh over every device of every process): parameters as global arrays
    placed by their logical axes through ``sharding``'s rules (default
    :func:`~omnir1_jax.models.qwen2_5_omni.fsdp_tp`), activations and the KV cache constrained by it. For a
    policy built without a mesh (e.g. handed in by user code); ``policy`` must be identical on every process
    (same seed or checkpoint), and each process keeps only its own shards. Returns the placed policy (the
    argument is left as it was)."""
    sharding = sharding or fsdp_tp()
    graphdef, state = nnx.split(policy)
    placed = nnx.merge(graphdef, distributed.place(state, param_shardings(state, mesh, sharding)))
    placed.act_sharding, placed.kv_sharding, placed.flat_sharding = activation_shardings(sharding, mesh)
    return placed


def tokenize_targets(tokenizer, texts: Sequence[str], eos_id: int, pad_id: int, multiple: int = 32):
    """Supervised targets as ``(ids [R, C], mask [R, C])`` int32: each text's tokens + EOS, right-padded with
    ``pad_id`` to a multiple of ``multiple`` (fewer distinct shapes to compile)."""
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] + [eos_id] for t in texts]
    width = -(-max(len(x) for x in ids) // multiple) * multiple
    out = np.full((len(ids), width), pad_id, np.int32)
    mask = np.zeros((len(ids), width), np.int32)
    for i, x in enumerate(ids):
        out[i, : len(x)] = x
        mask[i, : len(x)] = 1
    return out, mask


def think_weights(tokenizer, texts: Sequence[str], width: int, weight: float) -> np.ndarray:
    """float32 ``[R, width]`` per-token loss weights for targets tokenised by :func:`tokenize_targets`: ``weight``
    on the tokens whose characters lie inside each text's first ``<think>...</think>`` (the tags excluded), 1
    elsewhere (the EOS and padding included: the mask zeroes padding). Needs a fast tokenizer (character
    offsets); a text without a complete think has no weighted token."""
    out = np.ones((len(texts), width), np.float32)
    if weight == 1.0:
        return out
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"sft.think_weight={weight} needs a fast tokenizer (offsets), got {type(tokenizer).__name__}")
    for i, text in enumerate(texts):
        start = text.find("<think>")
        end = text.find("</think>", start + 7) if start >= 0 else -1
        if start < 0 or end < 0:
            continue
        start += len("<think>")
        spans = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        for j, (a, b) in enumerate(spans[:width]):
            if b > start and a < end:  # the token overlaps the think's content
                out[i, j] = weight
    return out


def pad_targets(ids, mask, width: int, pad_id: int):
    """``(ids, mask)`` of :func:`tokenize_targets` right-padded to ``width`` columns (e.g. the widest of every
    process's share, so the shares make one global array)."""
    ids, mask = np.asarray(ids), np.asarray(mask)
    extra = width - ids.shape[1]
    if extra < 0:
        raise ValueError(f"targets are {ids.shape[1]} tokens wide, more than width={width}")
    return (
        np.pad(ids, ((0, 0), (0, extra)), constant_values=pad_id).astype(np.int32),
        np.pad(mask, ((0, 0), (0, extra))).astype(np.int32),
    )
