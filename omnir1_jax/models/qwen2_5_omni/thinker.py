"""The Qwen2.5-Omni Thinker: encoders + text decoder + lm_head; multimodal features placed at placeholder tokens.

Shape legend: B batch, T tokens, D text width, V vocabulary, U / Q encoder output tokens.

Two steps, so that the expensive part is a pure, jittable function of arrays:

1. :func:`prepare_inputs` (host, numpy): takes the keyword arguments of transformers' Thinker forward (what a
   ``Qwen2_5OmniProcessor`` returns), computes the 3-D rotary positions (:mod:`.rope_index`), the encoders'
   index layouts and the flat positions of the placeholder tokens, and returns a :class:`ModelInputs` pytree.
2. :meth:`Qwen2_5OmniThinker.forward` (device, jittable): embeddings, encoders, scatter, decoder, logits.

``model(**processor_outputs)`` does both and returns a :class:`ThinkerOutput` with ``.logits``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding
from jaxtyping import Array, Float, Int

from omnir1_jax.models.qwen2_5_omni.audio import AudioEncoder, AudioLayout, audio_layout
from omnir1_jax.models.qwen2_5_omni.config import Qwen2_5OmniConfig
from omnir1_jax.models.qwen2_5_omni.layers import Linear, linear
from omnir1_jax.models.qwen2_5_omni.rope_index import audio_token_count, get_rope_index
from omnir1_jax.models.qwen2_5_omni.sharding import (
    ShardingConfig,
    activation_shardings,
    param_partition_specs,
    param_shardings,
)
from omnir1_jax.models.qwen2_5_omni.text import TextModel, causal_padding_mask
from omnir1_jax.models.qwen2_5_omni.vision import VisionEncoder, VisionLayout, vision_layout


class InputError(ValueError):
    """Model inputs are inconsistent (placeholder counts, shapes, unknown keyword)."""


@struct.dataclass
class ModelInputs:
    """Device-ready inputs of one forward pass (arrays only; ``None`` for absent modalities)."""

    input_ids: Int[Array, "B T"]
    attention_mask: Int[Array, "B T"]
    position_ids: Int[Array, "3 B T"]
    rope_deltas: Int[Array, " B"]
    pixel_values: Array | None = None
    image_layout: VisionLayout | None = None
    image_positions: Array | None = None  # flat indices into B*T of the image placeholder tokens
    pixel_values_videos: Array | None = None
    video_layout: VisionLayout | None = None
    video_positions: Array | None = None
    audio_layout: AudioLayout | None = None
    audio_positions: Array | None = None
    # Each encoder output feeds this many consecutive rows (GRPO groups share one prompt; see repeat_prompt).
    num_repeats: int = struct.field(pytree_node=False, default=1)
    # The encoders' outputs, when computed beforehand (:func:`encoder_features`, attached with
    # :func:`with_features`): ``Thinker.embed`` places them instead of running the encoders. A micro-batched
    # update encodes each prompt's pixels once per step this way (rl.update._accumulate).
    image_features: Array | None = None
    video_features: Array | None = None
    audio_features: Array | None = None

    def slice_rows(self, start, size: int) -> ModelInputs:
        """Rows ``start .. start + size`` (``start`` may be traced; jittable), e.g. one micro-batch.

        Encoder inputs are kept whole (their outputs are computed for every image / audio); placeholder positions
        of features whose rows fall outside the slice are moved past its end, where :meth:`Thinker.embed`
        drops them. With a ``repeat_prompt`` batch, ``size`` must be a multiple of the group size for
        :func:`unrepeat_prompt` to apply to the slice.
        """
        t = self.input_ids.shape[1]
        rows = lambda a, axis=0: jax.lax.dynamic_slice_in_dim(jnp.asarray(a), start, size, axis)

        def pos(f):
            if f is None:
                return None
            f = jnp.asarray(f) - start * t
            return jnp.where((f >= 0) & (f < size * t), f, size * t).astype(jnp.int32)

        return self.replace(
            input_ids=rows(self.input_ids),
            attention_mask=rows(self.attention_mask),
            position_ids=rows(self.position_ids, 1),
            rope_deltas=rows(self.rope_deltas),
            image_positions=pos(self.image_positions),
            video_positions=pos(self.video_positions),
            audio_positions=pos(self.audio_positions),
        )


def repeat_prompt(inputs: ModelInputs, n: int) -> ModelInputs:
    """Repeat every prompt row ``n`` times (rows ``b * n + i``) without re-encoding its images / audio."""
    if n == 1:
        return inputs
    b, t = inputs.input_ids.shape
    rep = lambda a: np.repeat(np.asarray(a), n, axis=0)

    def pos(f):
        if f is None:
            return None
        f = np.asarray(f)
        # position f of row r -> the same token in rows r*n .. r*n+n-1, feature-major (matches np.repeat).
        rows = (f // t)[:, None] * n + np.arange(n)[None, :]
        return (rows * t + (f % t)[:, None]).reshape(-1).astype(np.int32)

    return inputs.replace(
        input_ids=rep(inputs.input_ids),
        attention_mask=rep(inputs.attention_mask),
        position_ids=np.repeat(np.asarray(inputs.position_ids), n, axis=1),
        rope_deltas=rep(inputs.rope_deltas),
        image_positions=pos(inputs.image_positions),
        video_positions=pos(inputs.video_positions),
        audio_positions=pos(inputs.audio_positions),
        num_repeats=inputs.num_repeats * n,
    )


def unrepeat_prompt(inputs: ModelInputs, n: int) -> ModelInputs:
    """Inverse of :func:`repeat_prompt`: keep row ``b * n`` of each group of ``n`` identical rows (jittable).

    ``inputs`` must come from ``repeat_prompt(x, n)`` (or a multiple of ``n``): its rows ``b * n + i`` are then
    identical, which is not checked row by row (it cannot be under jit); ``num_repeats`` must be divisible by
    ``n``, otherwise :class:`InputError`.
    """
    if n == 1:
        return inputs
    if inputs.num_repeats % n:
        raise InputError(
            f"prompt has num_repeats={inputs.num_repeats}, not a multiple of group_size={n}: "
            f"build it with repeat_prompt(inputs, {n})"
        )
    r, t = inputs.input_ids.shape
    if r % n:
        raise InputError(f"prompt has {r} rows, not a multiple of group_size={n}")

    def pos(f):
        if f is None:
            return None
        f = f[::n]  # repeat_prompt orders positions feature-major, sample-minor: every n-th is sample 0
        return (f // t) // n * t + f % t

    return inputs.replace(
        input_ids=inputs.input_ids[::n],
        attention_mask=inputs.attention_mask[::n],
        position_ids=inputs.position_ids[:, ::n],
        rope_deltas=inputs.rope_deltas[::n],
        image_positions=pos(inputs.image_positions),
        video_positions=pos(inputs.video_positions),
        audio_positions=pos(inputs.audio_positions),
        num_repeats=inputs.num_repeats // n,
    )


@struct.dataclass
class ThinkerOutput:
    logits: Float[Array, "B T V"]
    rope_deltas: Int[Array, " B"]


_HF_KEYS = frozenset(
    {
        "input_ids",
        "attention_mask",
        "pixel_values",
        "image_grid_thw",
        "pixel_values_videos",
        "video_grid_thw",
        "video_second_per_grid",
        "input_features",
        "feature_attention_mask",
        "use_audio_in_video",
    }
)


def _np(x, dtype=None):
    if x is None:
        return None
    if hasattr(x, "detach"):  # a torch tensor passed by a caller; converted without importing torch
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    return x.astype(dtype) if dtype is not None else x


def prepare_inputs(cfg: Qwen2_5OmniConfig, **kwargs: Any) -> ModelInputs:
    """Host-side preparation from transformers-style keyword arguments (numpy or jax arrays).

    Accepts exactly the keywords of transformers' Thinker forward that matter for logits: ``input_ids``,
    ``attention_mask``, ``pixel_values``, ``image_grid_thw``, ``pixel_values_videos``, ``video_grid_thw``,
    ``video_second_per_grid``, ``input_features``, ``feature_attention_mask``, ``use_audio_in_video``.
    """
    unknown = set(kwargs) - _HF_KEYS
    if unknown:
        raise InputError(f"unknown model input(s) {sorted(unknown)}; expected a subset of {sorted(_HF_KEYS)}")
    ids = _np(kwargs.get("input_ids"), np.int32)
    if ids is None or ids.ndim != 2:
        raise InputError(f"input_ids must be [B, T], got {None if ids is None else ids.shape}")
    mask = _np(kwargs.get("attention_mask"), np.int32)
    mask = np.ones_like(ids) if mask is None else mask
    if mask.shape != ids.shape:
        raise InputError(f"attention_mask {mask.shape} does not match input_ids {ids.shape}")
    use_aiv = bool(kwargs.get("use_audio_in_video") or False)
    img_grid = _np(kwargs.get("image_grid_thw"), np.int64)
    vid_grid = _np(kwargs.get("video_grid_thw"), np.int64)
    spg = _np(kwargs.get("video_second_per_grid"), np.float64)
    if vid_grid is not None and spg is None:
        raise InputError("video_grid_thw given without video_second_per_grid (the processor returns it)")
    feats, fmask = kwargs.get("input_features"), _np(kwargs.get("feature_attention_mask"))
    if feats is not None and fmask is None:
        feats_np = _np(feats)
        fmask = np.ones((feats_np.shape[0], feats_np.shape[2]), np.int32)
    mel_lens = None if fmask is None else fmask.astype(bool).sum(-1)
    pos, deltas = get_rope_index(cfg, ids, mask, img_grid, vid_grid, mel_lens, spg, use_aiv)
    flat = ids.reshape(-1)
    m2 = cfg.vision.spatial_merge_size**2
    out: dict[str, Any] = dict(
        input_ids=ids, attention_mask=mask, position_ids=pos.astype(np.int32), rope_deltas=deltas.astype(np.int32)
    )

    def positions(token_id: int, expected: int, what: str) -> np.ndarray:
        where = np.flatnonzero(flat == token_id).astype(np.int32)
        if len(where) != expected:
            raise InputError(
                f"{what}: {len(where)} placeholder tokens in input_ids but the inputs give {expected} features"
            )
        return where

    for name, grid_key, grid, tok in (
        ("pixel_values", "image", img_grid, cfg.image_token_id),
        ("pixel_values_videos", "video", vid_grid, cfg.video_token_id),
    ):
        px = kwargs.get(name)
        if px is None:
            continue
        if grid is None:
            raise InputError(f"{name} given without {grid_key}_grid_thw")
        px = _np(px, np.float32)
        if px.shape != (int(grid.prod(-1).sum()), cfg.vision.patch_dim):
            raise InputError(
                f"{name} has shape {px.shape}; {grid_key}_grid_thw implies "
                f"({int(grid.prod(-1).sum())}, {cfg.vision.patch_dim})"
            )
        out[name] = px
        out[f"{grid_key}_layout"] = vision_layout(cfg.vision, grid)
        out[f"{grid_key}_positions"] = positions(tok, int(grid.prod(-1).sum()) // m2, name)
    if feats is not None:
        layout, lens = audio_layout(cfg.audio, _np(feats), fmask)
        out["audio_layout"] = layout
        out["audio_positions"] = positions(cfg.audio_token_id, int(audio_token_count(lens).sum()), "input_features")
    return ModelInputs(**out)


class Qwen2_5OmniThinker(nnx.Module):
    """Flax NNX Qwen2.5-Omni Thinker; attribute names follow transformers' checkpoint layout."""

    def __init__(
        self,
        config: Qwen2_5OmniConfig,
        *,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
        sharding: ShardingConfig | None = None,
        mesh=None,
        act_sharding=None,
        kv_sharding=None,
        attention: str = "chunked",
        param_dtype=None,
    ):
        """Build the modules; every weight carries its logical axis names (see :mod:`.sharding`).

        Precision policy: the parameters are stored (and updated by an optimiser) in ``param_dtype`` (default
        ``dtype``); every forward pass, sampler and scorer computes in ``dtype`` (:meth:`compute_view` casts the
        weights once at the start of a jitted program; gradients flow back to the stored weights in their own
        dtype). ``dtype=bfloat16, param_dtype=float32`` is mixed-precision training with float32 masters.

        ``sharding`` (with ``mesh``) sets the constraints on activations at decoder-block boundaries and on the
        KV cache from construction: NamedShardings on ``mesh``, or PartitionSpecs applied under ``jax.set_mesh``
        when ``mesh`` is None. ``act_sharding`` / ``kv_sharding`` override them one by one. ``attention`` is the
        text decoder's attention implementation (:func:`.text.gqa_attention`: ``chunked``, ``dense``,
        ``dot_product``).
        """
        self.config = config
        self.compute_dtype = jnp.dtype(dtype).name  # static: the dtype every forward pass computes in
        dtype = dtype if param_dtype is None else param_dtype  # the modules are built in the storage dtype
        act, kv, flat = activation_shardings(sharding, mesh)
        self.act_sharding = act if act_sharding is None else act_sharding
        self.kv_sharding = kv if kv_sharding is None else kv_sharding
        self.flat_sharding = flat  # encoder activations [patches or frames, width]
        # the decoder weights' layout while decoding (ShardingConfig.decode_gather), and the mesh it is on
        self.decode_sharding = None if sharding is None else sharding.decode_layout()
        self.decode_mesh = mesh
        self.visual = VisionEncoder(config.vision, dtype=dtype, rngs=rngs)
        self.audio_tower = AudioEncoder(config.audio, dtype=dtype, rngs=rngs)
        self.language_model = TextModel(config.text, dtype=dtype, rngs=rngs, attention=attention)
        t = config.text
        self.lm_head = (
            None
            if t.tie_word_embeddings
            else Linear(t.hidden_size, t.vocab_size, use_bias=False, dtype=dtype, rngs=rngs, axes=("embed", "vocab"))
        )

    # ------------------------------------------------------------------ jittable pieces
    def compute_view(self) -> Qwen2_5OmniThinker:
        """The model to compute with, inside a jitted program: ``self`` when every floating weight is already in
        :attr:`compute_dtype`, else a view whose floating weights are cast to it (same metadata and layout; the
        cast is differentiable, so a loss of the view has float32 gradients for float32 stored weights)."""
        return cast_weights(self, getattr(self, "compute_dtype", None))

    def decode_weights(self) -> Qwen2_5OmniThinker:
        """The model to decode with, inside a jitted program: ``self``, or (with ``ShardingConfig.decode_gather``
        and a mesh) a copy whose text decoder and lm_head weights are constrained to the gathered layout, so
        that XLA all-gathers them once before the token loop instead of at every step. Same values."""
        mesh = self.decode_mesh if self.decode_mesh is not None else jax.sharding.get_abstract_mesh()
        if self.decode_sharding is None or mesh.empty:
            return self
        graph, state = nnx.split(self)
        specs = param_partition_specs(state, mesh, self.decode_sharding)

        def one(path, v, s):
            if not isinstance(v, nnx.Param) or path[0].key not in ("language_model", "lm_head"):
                return v
            spec = s.get_value() if isinstance(s, nnx.Variable) else s
            sh = NamedSharding(mesh, spec) if isinstance(mesh, Mesh) else spec
            return v.replace(jax.lax.with_sharding_constraint(v[...], sh))

        is_var = lambda x: isinstance(x, nnx.Variable)
        return nnx.merge(graph, jax.tree_util.tree_map_with_path(one, state, specs, is_leaf=is_var))

    def embed(self, inputs: ModelInputs, *, remat=False) -> Float[Array, "B T D"]:
        """Token embeddings with encoder outputs written at the placeholder positions (``remat``: the vision
        encoder's blocks are rematerialised in the backward pass)."""
        x = self.language_model.embed_tokens(inputs.input_ids)
        b, t, d = x.shape
        flat = x.reshape(b * t, d)
        # mode="drop": positions outside this batch (a row slice, see ModelInputs.slice_rows) are skipped.
        place = lambda flat, f, where: flat.at[where].set(
            jnp.repeat(f, inputs.num_repeats, axis=0).astype(flat.dtype), mode="drop"
        )
        given = {"image": inputs.image_features, "video": inputs.video_features, "audio": inputs.audio_features}
        for kind, positions in (
            ("image", inputs.image_positions),
            ("video", inputs.video_positions),
            ("audio", inputs.audio_positions),
        ):
            if getattr(inputs, f"{kind}_layout") is not None:
                f = given[kind] if given[kind] is not None else self.encode(inputs, kind, remat=remat)
                flat = place(flat, f, positions)
        return flat.reshape(b, t, d)

    def encode(self, inputs: ModelInputs, kind: str, *, remat=False) -> Float[Array, "U D"]:
        """One encoder's outputs for every image / video / audio of ``inputs`` (``kind``), in prompt order, before
        they are repeated per group row."""
        if kind == "audio":
            return self.audio_tower(inputs.audio_layout)
        pixels = inputs.pixel_values if kind == "image" else inputs.pixel_values_videos
        return self.visual(pixels, getattr(inputs, f"{kind}_layout"), remat=remat, act_sharding=self.flat_sharding)

    def head_kernel(self) -> Float[Array, "D V"]:
        """The output projection [D, V] (the embedding's transpose when tied)."""
        if self.lm_head is None:
            return self.language_model.embed_tokens.weight[...].T
        return self.lm_head.kernel[...]

    def logits(self, hidden: Float[Array, "B T D"]) -> Float[Array, "B T V"]:
        return linear(hidden, self.head_kernel())

    def hidden_states(self, inputs: ModelInputs, *, remat: bool = False) -> Float[Array, "B T D"]:
        """Final-norm hidden states [B, T, D] of a full (prompt) sequence."""
        x = self.embed(inputs, remat=remat)
        mask = causal_padding_mask(inputs.attention_mask.astype(bool))
        h, _ = self.language_model(x, inputs.position_ids, mask, remat=remat, act_sharding=self.act_sharding)
        return h

    def forward(self, inputs: ModelInputs, *, remat: bool = False) -> ThinkerOutput:
        """Logits for every position (jittable; ``inputs`` from :func:`prepare_inputs`)."""
        return ThinkerOutput(
            logits=self.logits(self.hidden_states(inputs, remat=remat)), rope_deltas=inputs.rope_deltas
        )

    # ------------------------------------------------------------------ transformers-style entry point
    def __call__(self, **kwargs: Any) -> ThinkerOutput:
        """``model(**processor_outputs)``: same keywords as transformers' Thinker forward; returns ``.logits``.

        Also accepts ``inputs=ModelInputs(...)`` to skip the host preparation.
        """
        inputs = kwargs.pop("inputs", None)
        if inputs is None:
            inputs = prepare_inputs(self.config, **kwargs)
        elif kwargs:
            raise InputError(f"pass either inputs= or transformers keywords, not both ({sorted(kwargs)})")
        return _jit_forward(self, inputs)


@nnx.jit
def _jit_forward(model: Qwen2_5OmniThinker, inputs: ModelInputs) -> ThinkerOutput:
    return compute_view(model).forward(inputs)


def cast_weights(model: nnx.Module, dtype) -> nnx.Module:
    """``model`` with every floating-point variable (parameters, LoRA's frozen base weights) cast to ``dtype``;
    ``model`` itself when ``dtype`` is None or every such variable already has it. Traceable and differentiable
    (inside a jitted program the cast is part of it); metadata (logical axes) is kept."""
    if dtype is None:
        return model
    dtype = jnp.dtype(dtype)
    graphdef, state = nnx.split(model)
    flat = nnx.to_flat_state(state)

    def floating(v):
        return isinstance(v, nnx.Variable) and jnp.issubdtype(getattr(v[...], "dtype", jnp.int32), jnp.floating)

    if all(v[...].dtype == dtype for _, v in flat if floating(v)):
        return model
    cast = [(p, v.replace(v[...].astype(dtype)) if floating(v) else v) for p, v in flat]
    return nnx.merge(graphdef, nnx.from_flat_state(cast))


def compute_view(model: nnx.Module) -> nnx.Module:
    """``model.compute_view()`` for a model that has one (the Thinker, the LoRA wrapper), else ``model``: what
    the samplers and scorers run, so that a model stored in float32 computes in its ``compute_dtype``."""
    view = getattr(model, "compute_view", None)
    return view() if view is not None else model


MEDIA = ("image", "video", "audio")


def encoder_features(model: nnx.Module, inputs: ModelInputs, *, remat=False) -> dict[str, Array]:
    """``{kind: features}`` of every encoder ``inputs`` uses (images, videos, audio), computed by ``model``'s
    compute view (jittable, differentiable in the model's parameters); empty for a text-only batch."""
    kinds = [k for k in MEDIA if getattr(inputs, f"{k}_layout") is not None]
    if not kinds:
        return {}
    view = compute_view(model)
    return {k: view.encode(inputs, k, remat=remat) for k in kinds}


def with_features(inputs: ModelInputs, features: dict[str, Array]) -> ModelInputs:
    """``inputs`` carrying precomputed encoder outputs (:func:`encoder_features`): the model's forward places them
    and runs no encoder. Row slices (:meth:`ModelInputs.slice_rows`) and :func:`unrepeat_prompt` keep them whole,
    like the encoders' inputs."""
    return inputs.replace(**{f"{k}_features": v for k, v in features.items()})


def init_model(
    config: Qwen2_5OmniConfig,
    *,
    seed: int = 0,
    dtype=jnp.float32,
    mesh: Mesh | None = None,
    sharding: ShardingConfig | None = None,
    attention: str = "chunked",
    param_dtype=None,
) -> Qwen2_5OmniThinker:
    """A randomly initialised Thinker (normal(0.02) kernels, unit norms), e.g. for the CPU demo; parameters in
    ``param_dtype`` (default ``dtype``), computing in ``dtype`` (see the constructor's precision policy).

    With ``mesh``, every parameter is created directly in its sharding (``sharding``'s rules applied to the
    weights' logical axes; default :func:`~.sharding.no_sharding`): the initialiser runs as one jit program with
    those ``out_shardings``, so no device ever holds a full copy, and on a mesh spanning several processes
    (every process calls this) the parameters are global arrays. The same seed gives the same values with or
    without a mesh. ``attention``: the text decoder's attention implementation (see the constructor).
    """
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"init_model: seed={seed!r} must be in [0, 2**32)")
    graphdef, program = _initialiser(config, dtype, mesh, sharding, attention, param_dtype)
    return nnx.merge(graphdef, program(np.uint32(seed)))


@functools.lru_cache(maxsize=8)
def _initialiser(config, dtype, mesh, sharding, attention, param_dtype):
    """``(graphdef, program)`` of :func:`init_model` for one configuration; ``program(seed)`` gives the state.

    The seed is an argument of the program, not a constant in it (``jax.random.key(seed)`` as ``nnx.Rngs(seed)``):
    every seed of one configuration runs the same executable, traced and compiled once per process (a persistent
    compilation cache serves it to later processes)."""
    build = lambda key: Qwen2_5OmniThinker(
        config,
        dtype=dtype,
        rngs=nnx.Rngs(key),
        sharding=sharding,
        mesh=mesh,
        attention=attention,
        param_dtype=param_dtype,
    )
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: build(jax.random.key(0))))
    out = None if mesh is None else param_shardings(abstract, mesh, sharding)
    return graphdef, jax.jit(lambda s: nnx.split(build(jax.random.key(s)))[1], out_shardings=out)


def as_model_inputs(cfg: Qwen2_5OmniConfig, batch: ModelInputs | Mapping[str, Any]) -> ModelInputs:
    """Return ``batch`` if already prepared, else :func:`prepare_inputs` of its transformers keywords."""
    if isinstance(batch, ModelInputs):
        return batch
    return prepare_inputs(cfg, **{k: v for k, v in batch.items() if k in _HF_KEYS})
