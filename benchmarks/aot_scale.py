"""Compile the 7B GRPO update and the group decode ahead of time for TPU slices, with no TPU and no weights.

    pip install -r requirements-tpu.txt          # libtpu, in a separate venv (see README)
    TPU_WORKER_HOSTNAMES=localhost python benchmarks/aot_scale.py --config experiments/omni_r1_7b_vos.py \
        --topology v5p:2x2x2 --topology v5p:4x4x4 [--set grpo.group_size=8 ...] [--json runs/aot_scale.json]

For each topology (``jax.experimental.topologies.get_topology_desc``: the devices of a slice this machine does
not have) a Mesh of the config's shape is built (``mesh.data = -1`` takes the remaining chips) and, from the
config's shapes, abstract arguments carrying their ``NamedSharding`` (``abstract_model(..., mesh, sharding)``)
are lowered and compiled by the real TPU compiler (libtpu):

- ``update``: one GRPO step as the trainer runs it: the frozen reference's log-probs (no gradient), the policy's
  log-probs with gradient through the group scorer (each prompt, video patches through the vision encoder and
  audio through the audio encoder, runs once per group), the loss, AdamW (``rl.update.make_optimizer``), with
  the config's ``grpo.micro_batches`` gradient accumulation (``--micro-batches`` overrides it; 0 = rows / chips:
  1 slice on a v5p-64, 8 on a v5p-8 for 64 rows);
- ``decode``: ``generate``'s program for the group: prefill of the B prompts, KV cache repeated to the
  B x group rows, the sampling ``while_loop`` over ``max_new_tokens``;
- ``decode_step``: one decode step over the full cache (its cost is the decode loop's per-token cost).

Printed per chip: arguments, outputs, temporaries (``memory_analysis()``), their sum (aliased/donated bytes
counted once) against the chip's HBM; the compiler's FLOPs and bytes accessed (``cost_analysis()``, per chip);
the model FLOPs counted analytically (below); the roofline time ``max(FLOPs / peak, bytes / bandwidth)`` and
the MFU it implies (model FLOPs / (peak x roofline time)); and the compiler's own estimate of the program's time
(``cost_analysis()["optimal_seconds"]``, libtpu's model, which also prices latencies and collectives) with the
MFU it implies (``optimal_s``, ``mfu_optimal``). XLA's cost analysis counts the body of a while loop
once: the decode loop gets no roofline (its memory figures stand; ``decode_step`` is its per-token cost), and the
lax.map chunks (attention queries, lm_head time chunks) are undercounted by a few per cent of the update's FLOPs.
A micro-batched update (a ``lax.scan`` over n slices) is counted as the scan body x iterations: a second program
runs only the first two slices, unrolled (``LossSpec.cost_slices``); one slice costs the difference between it
and the real program (which XLA counts with one body), and the update costs the real program + (n - 1) slices
(``--no-count`` skips the second compile). The encoders run once per step, before the scan
(``CompletionScorer.features``), so they are outside the slice cost. A shape that does not fit is a row with the
compiler's message. ``--json`` writes every row; ``--markdown`` prints the table for BENCHMARKS.md.

Each (topology, program) compiles in a child process (``--in-process``: all in this one): a 28-layer compile holds
10-25 GB of host memory, and a child the kernel kills for it ends only its row (a micro-batched update keeps its
memory figures when its second, counting compile is the one killed).

``--hlo-dir DIR`` writes each program's optimised HLO there and re-counts its bytes with
``benchmarks/hlo_bytes.py``: ``cost_analysis()``'s "bytes accessed" also counts reads and writes of buffers the
compiler placed in on-chip memory (VMEM: every prefetched weight is counted when copied in and again when the
matmul reads the copy); ``hlo_bytes_hbm`` counts only HBM-resident buffers (and in-place cache writes and
gathers by what they touch), and ``mfu_hbm`` / ``hbm_frac_hbm`` are the roofline figures from it.

Analytic model FLOPs (per step, divided by the chip count): a matmul with an [I, O] weight costs 2 I O per token
forward and twice that backward. The policy pays 3x forward (forward + backward), the reference 1x (so 4x
forward in all; rematerialisation is *not* counted: compiler / model FLOPs of about (4 + 1) / 4 with full remat
is expected). Forward = text decoder weights (all kernels except the input embedding, a gather) x tokens, where
tokens are B x prompt (each group's prompt once) + R x completion, of which only the R x completion positions
go through ``lm_head``; + attention 4 x layers x (heads x head_dim) x (query x key pairs: causal prompt
P^2/2 per prompt, completion C x (P + C/2) per row); + the vision encoder's kernels x patches (the merger on
patches / 4) and its attention pairs (window / frame segments); + the audio encoder likewise.

Levers (each compiled before / after, see BENCHMARKS.md "Scale"): ``--attention`` (``dense`` materialises
[rows, heads, T, S] float32 scores; ``chunked`` (default) runs query chunks of 512, exact; ``dot_product`` is
``jax.nn.dot_product_attention`` with the backend's implementation), ``--remat`` (``none``, ``full`` = the
config's ``model.remat``, ``dots`` saves matmul outputs), ``--logits`` (``full``: [R, C, V] logits then a
time-chunked log-softmax; ``chunked``: lm_head fused into the time chunks), ``--act-sharding`` (``on``: the
model's activation constraint at block boundaries; ``off``). Two mesh settings act on the update and are set
with ``--set``: ``mesh.shard_optimizer=true`` (ZeRO stage 1: the AdamW moments also split over ``data``, the
update run on those slices as the learner runs it, ``rl.zero.ShardedOptimizer``) and
``mesh.update_gather=true`` (the scorer reads the decoder's weights gathered once per program).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Per-chip figures: dense bf16 peak FLOP/s, HBM bandwidth (bytes/s), HBM capacity (bytes) and where they are from.
CHIPS = {
    "v5p": dict(
        peak=459e12,
        bw=2765e9,
        hbm=95.74e9,
        source="Google Cloud TPU v5p page: 459 TFLOP/s bf16, 2,765 GB/s HBM2e; capacity as reported by "
        "the compiler's RESOURCE_EXHAUSTED message (95.74G)",
    ),
    "v6e": dict(
        peak=918e12,
        bw=1640e9,
        hbm=32e9,
        source="Google Cloud TPU v6e (Trillium) page: 918 TFLOP/s bf16, 1,640 GB/s, 32 GB HBM",
    ),
    "v5e": dict(peak=197e12, bw=819e9, hbm=16e9, source="Google Cloud TPU v5e page: 197 TFLOP/s bf16, 819 GB/s, 16 GB"),
    "v4": dict(
        peak=275e12, bw=1228e9, hbm=32e9, source="Google Cloud TPU v4 page: 275 TFLOP/s bf16, 1,228 GB/s, 32 GB"
    ),
}


@dataclasses.dataclass(frozen=True)
class Shapes:
    prompts: int  # B distinct prompts
    group: int  # samples per prompt (R = B x group rows)
    prompt_len: int  # P tokens per prompt (left-padded), including the multimodal placeholders
    completion_len: int  # C new tokens
    frames: int  # video frames per prompt (0: none)
    frame_units: tuple  # (rows, cols) of merged 28x28 units per frame
    image: bool  # one image (the clip's first frame) per prompt
    audio_frames: int  # mel frames of audio per prompt (0: none)

    @property
    def rows(self) -> int:
        return self.prompts * self.group


def shapes_from_config(exp, args) -> Shapes:
    """The paper's shapes from the experiment config (overridable by flags)."""
    d, g = exp.data, exp.grpo
    units = max(1, d.s1_max_pixels // (28 * 28))
    uh = max(1, int(math.sqrt(units / 2)))  # a 1:2 frame, e.g. 128 units -> 8 x 16 (224 x 448 px)
    frame_units = (uh, units // uh)
    vos = d.task in ("vos",)
    frames = args.frames if args.frames is not None else (d.max_frames if vos else 0)
    audio = args.audio_seconds if args.audio_seconds is not None else (0 if vos else 10)
    return Shapes(
        prompts=args.prompts or d.batch_size,
        group=g.group_size,
        prompt_len=args.prompt_len,
        completion_len=args.completion_len or g.max_new_tokens,
        frames=frames,
        frame_units=frame_units,
        image=not vos,
        audio_frames=int(audio * 100),
    )


def build_prompt(mcfg, s: Shapes):
    """Host-side ModelInputs of the B prompts (zero pixels / mel features: only shapes matter)."""
    # lazy: the model package pulls in jax, which loads once main() has set the environment
    from omnir1_jax.models.qwen2_5_omni import prepare_inputs
    from omnir1_jax.models.qwen2_5_omni.rope_index import audio_token_count

    v = mcfg.vision
    uh, uw = s.frame_units
    h, w = uh * v.spatial_merge_size, uw * v.spatial_merge_size
    kw, row = {}, []
    if s.frames:
        t = -(-s.frames // v.temporal_patch_size)
        kw["video_grid_thw"] = np.array([[t, h, w]] * s.prompts)
        kw["pixel_values_videos"] = np.zeros((s.prompts * t * h * w, v.patch_dim), np.float32)
        kw["video_second_per_grid"] = np.ones(s.prompts)
        row += [mcfg.vision_start_token_id] + [mcfg.video_token_id] * (t * uh * uw) + [mcfg.vision_end_token_id]
    if s.image:
        kw["image_grid_thw"] = np.array([[1, h, w]] * s.prompts)
        kw["pixel_values"] = np.zeros((s.prompts * h * w, v.patch_dim), np.float32)
        row += [mcfg.vision_start_token_id] + [mcfg.image_token_id] * (uh * uw) + [mcfg.vision_end_token_id]
    if s.audio_frames:
        kw["input_features"] = np.zeros((s.prompts, mcfg.audio.num_mel_bins, s.audio_frames), np.float32)
        kw["feature_attention_mask"] = np.ones((s.prompts, s.audio_frames), np.int32)
        n = int(audio_token_count([s.audio_frames])[0])
        row += [mcfg.audio_start_token_id] + [mcfg.audio_token_id] * n + [mcfg.audio_end_token_id]
    if len(row) + 16 > s.prompt_len:
        raise SystemExit(f"--prompt-len {s.prompt_len} is shorter than the {len(row)} multimodal tokens + text")
    ids = np.array([[mcfg.user_token_id] + [100] * (s.prompt_len - 1 - len(row)) + row] * s.prompts, np.int64)
    return prepare_inputs(mcfg, input_ids=ids, attention_mask=np.ones_like(ids), **kw)


def analytic_flops(mcfg, state, s: Shapes, program: str) -> float:
    """Model FLOPs of one program (whole slice); see the module docstring."""
    from flax import nnx

    t, v, a = mcfg.text, mcfg.vision, mcfg.audio
    kernels = {"text": 0, "head": 0, "vision": 0, "merger": 0, "audio": 0}
    for path, var in nnx.to_flat_state(state):
        name = ".".join(map(str, path))
        if len(var.shape) < 2 or "embed_tokens" in name or "audio_bos_eos" in name:
            continue
        n = math.prod(var.shape)
        key = (
            "head"
            if name.startswith("lm_head")
            else "text"
            if name.startswith("language_model")
            else "merger"
            if ".merger." in name
            else "vision"
            if name.startswith("visual")
            else "audio"
        )
        kernels[key] += n
    if mcfg.text.tie_word_embeddings:
        kernels["head"] = t.vocab_size * t.hidden_size
    b, r, p, c = s.prompts, s.rows, s.prompt_len, s.completion_len
    attn = 4 * t.num_hidden_layers * t.num_attention_heads * t.head_dim
    patches = 0
    vis_pairs = 0.0
    if s.frames or s.image:
        uh, uw = s.frame_units
        per_frame = uh * uw * v.spatial_merge_size**2
        frames = (-(-s.frames // v.temporal_patch_size) if s.frames else 0) + (1 if s.image else 0)
        patches = b * frames * per_frame
        win = (v.window_size // v.patch_size) ** 2
        full = len(v.fullatt_block_indexes)
        vis_pairs = patches * (full * per_frame + (v.depth - full) * min(win, per_frame))
    mel = s.audio_frames
    audio_tok = b * ((mel - 1) // 2 + 1) if mel else 0
    enc = (
        2 * kernels["vision"] * patches
        + 2 * kernels["merger"] * patches / 4
        + 4 * v.hidden_size * vis_pairs
        + 2 * kernels["audio"] * audio_tok
        + 4 * a.d_model * a.encoder_layers * audio_tok * min(2 * a.n_window // 2, max(1, (mel - 1) // 2 + 1))
    )
    if program == "update":
        dec = 2 * kernels["text"] * (b * p + r * c) + 2 * kernels["head"] * r * c
        dec += attn * (b * p * p / 2 + r * c * (p + c / 2))
        return 4 * (dec + enc)
    if program == "decode":  # prefill of B prompts + C steps of R rows (lm_head on each new token)
        pre = 2 * kernels["text"] * b * p + attn * b * p * p / 2 + 2 * kernels["head"] * b + enc
        steps = c * (2 * (kernels["text"] + kernels["head"]) * r + attn * r * (p + c / 2))
        return pre + steps
    # decode_step: one token for R rows over a cache of P + C
    return 2 * (kernels["text"] + kernels["head"]) * r + attn * r * (p + c)


def mesh_for(topology: str, exp):
    from jax.experimental import topologies

    from omnir1_jax.models.qwen2_5_omni import make_mesh

    topo = topologies.get_topology_desc(topology, "tpu")
    devices = list(topo.devices)
    n = len(devices)
    fsdp, tensor = exp.mesh.fsdp, exp.mesh.tensor
    data = exp.mesh.data if exp.mesh.data > 0 else n // (fsdp * tensor)
    if data * fsdp * tensor != n:
        raise SystemExit(f"{topology}: {n} chips; mesh data={data} x fsdp={fsdp} x tensor={tensor} does not match")
    return make_mesh((data, fsdp, tensor), devices)


def _abstract(tree, shardings):
    import jax

    return jax.tree.map(lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh), tree, shardings)


def _in_dtype(tree, dtype):
    """Abstract arrays with every floating leaf in ``dtype`` (same shapes and shardings)."""
    import jax
    import jax.numpy as jnp

    return jax.tree.map(
        lambda a: (
            jax.ShapeDtypeStruct(a.shape, dtype, sharding=a.sharding) if jnp.issubdtype(a.dtype, jnp.floating) else a
        ),
        tree,
    )


def _batch_sharded(mesh, sharding, x, axis: int = 0):
    """ShapeDtypeStruct of a host array with its row axis over the config's batch axes (replicated otherwise)."""
    import jax
    from jax.sharding import NamedSharding

    from omnir1_jax.models.qwen2_5_omni.sharding import fit_spec

    x = np.asarray(x)
    names = [None] * x.ndim
    if axis is not None and x.ndim:
        names[axis] = "batch"
    spec = fit_spec(sharding.logical_to_spec(tuple(names)), x.shape, dict(mesh.shape))
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(mesh, spec))


def abstract_inputs(mesh, sharding, prompt):
    """The prompt as abstract arrays: token-level fields split by rows, encoder inputs replicated."""
    rows = {"input_ids": 0, "attention_mask": 0, "position_ids": 1, "rope_deltas": 0}
    fields = {}
    for f in dataclasses.fields(prompt):
        if f.name == "num_repeats":
            continue
        val = getattr(prompt, f.name)
        if val is None:
            continue
        import jax

        fields[f.name] = jax.tree.map(lambda x, ax=rows.get(f.name): _batch_sharded(mesh, sharding, x, ax), val)  # noqa: B008
    return prompt.replace(**fields)


def update_step(pg, og, scorer, spec, beta: float):
    """The learner's GRPO update as one function ``(policy state, optimiser state, reference state, prompt,
    completions, advantages) -> (policy state, optimiser state, metrics)``: the frozen reference's log-probs (when
    ``beta`` > 0), the loss's gradient through ``scorer`` (``spec``: clipping, KL, aggregation, micro-batches) and
    the optimiser step; every completion token counts (mask all ones). ``pg`` / ``og``: the policy's and the
    optimiser's graph defs (``nnx.split``)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from omnir1_jax.rl.update import _grpo_grads

    def fn(pstate, ostate, rstate, prompt, comp, adv):
        policy, opt, ref = nnx.merge(pg, pstate), nnx.merge(og, ostate), nnx.merge(pg, rstate)
        mask = jnp.ones_like(comp)
        ref_lp = jax.lax.stop_gradient(scorer(ref, prompt, comp, mask)) if beta > 0 else None
        grads, metrics = _grpo_grads(policy, prompt, comp, mask, None, ref_lp, adv, scorer, spec)
        opt.update(policy, grads)
        return nnx.state(policy), nnx.state(opt), metrics

    return fn


def run_case(
    topology: str,
    program: str,
    exp,
    s: Shapes,
    levers: dict,
    micro_batches: int | None,
    layers: int | None = None,
    vision_depth: int | None = None,
    count: bool = True,
    hlo_dir: str | None = None,
    checkpoint=None,
) -> dict:
    """Lower and compile one program; return its row (``fits`` False with the compiler's message on failure).
    With ``hlo_dir`` the optimised HLO is written there and re-counted (``hlo_bytes``): ``hlo_bytes_all`` /
    ``hlo_bytes_hbm`` and, from the HBM count, ``roofline_hbm_s`` and ``mfu_hbm`` (``hbm_frac_hbm`` for
    ``decode_step``). ``checkpoint(row)``, if given, receives the row with its memory figures before a micro-batched
    update's second (counting) compile, the one that needs the most host memory."""
    import jax
    import jax.numpy as jnp
    from flax import nnx
    from jax.sharding import NamedSharding, PartitionSpec

    from omnir1_jax.models.qwen2_5_omni import (
        Qwen2_5OmniThinker,
        fsdp_tp,
        param_shardings,
        qwen2_5_omni_3b,
        qwen2_5_omni_7b,
        repeat_prompt,
        tiny,
    )
    from omnir1_jax.models.qwen2_5_omni.sampling import _cache_specs, _generate
    from omnir1_jax.models.qwen2_5_omni.scoring import CompletionScorer
    from omnir1_jax.models.qwen2_5_omni.sharding import fit_spec
    from omnir1_jax.rl.update import LossSpec, make_optimizer, resolve_micro_batches
    from omnir1_jax.rl.zero import ShardedOptimizer

    presets = {"tiny": tiny, "qwen2_5_omni_3b": qwen2_5_omni_3b, "qwen2_5_omni_7b": qwen2_5_omni_7b}
    mcfg = presets[exp.model.preset](**dict(exp.model.overrides))
    if layers:  # fewer decoder layers of the same widths: quicker compiles for lever comparisons
        mcfg = dataclasses.replace(mcfg, text=dataclasses.replace(mcfg.text, num_hidden_layers=layers))
    if vision_depth:
        full = tuple(i for i in mcfg.vision.fullatt_block_indexes if i < vision_depth) or (vision_depth - 1,)
        mcfg = dataclasses.replace(
            mcfg, vision=dataclasses.replace(mcfg.vision, depth=vision_depth, fullatt_block_indexes=full)
        )
    dtype = {"bfloat16": jnp.bfloat16, "float32": jnp.float32}[exp.model.dtype]
    # the precision policy: parameters and AdamW moments stored in param_dtype (float32 masters by default),
    # the reference and the decode loop's weights in the compute dtype
    param_dtype = {"bfloat16": jnp.bfloat16, "float32": jnp.float32}[exp.model.param_dtype]
    mesh = mesh_for(topology, exp)
    chip = CHIPS[topology.split(":")[0]]
    n_chips = mesh.devices.size
    sharding = fsdp_tp(("fsdp",) if exp.mesh.decode_gather else (), ("data",) if exp.mesh.shard_optimizer else ())
    if levers["act_sharding"] == "off":
        sharding = dataclasses.replace(sharding, act_btd=None)
    g = exp.grpo
    tx = make_optimizer(
        exp.optim.lr,
        weight_decay=exp.optim.weight_decay,
        decay=exp.optim.decay,
        decay_embeddings=exp.optim.decay_embeddings,
    )

    def build():
        m = Qwen2_5OmniThinker(
            mcfg,
            dtype=dtype,
            rngs=nnx.Rngs(0),
            sharding=sharding,
            mesh=mesh,
            attention=levers["attention"],
            param_dtype=param_dtype,
        )
        if sharding.optimizer_axes:  # mesh.shard_optimizer: ZeRO stage 1, as the learner builds it
            return m, ShardedOptimizer(m, tx, wrt=nnx.Param, mesh=mesh, sharding=sharding)
        return m, nnx.Optimizer(m, tx, wrt=nnx.Param)

    model_abs, opt_abs = nnx.eval_shape(build)
    pg, pstate = nnx.split(model_abs)
    og, ostate = nnx.split(opt_abs)
    # the optimiser's state: sharded as the weights, plus mesh.shard_optimizer's data axis (ZeRO stage 1)
    p_sh, o_sh = param_shardings(pstate, mesh, sharding), param_shardings(ostate, mesh, sharding.optimizer_layout())
    p_abs, o_abs = _abstract(pstate, p_sh), _abstract(ostate, o_sh)
    c_abs = _in_dtype(p_abs, dtype)  # the frozen reference: the same layout in the compute dtype
    base = build_prompt(mcfg, s)
    if levers["vision"] == "dense":  # unknown segment lengths: the [P, P] masked attention
        for f in ("image_layout", "video_layout"):
            if getattr(base, f) is not None:
                base = base.replace(**{f: getattr(base, f).replace(max_full=0, max_window=0)})
    remat = {"none": False, "full": True, "dots": "dots"}[levers["remat"]]
    # the learner's scorer (policy.make_scorer): each group's prompt once; the encoders split off (run once per
    # step in a micro-batched update)
    scorer = CompletionScorer(
        group_size=s.group,
        remat=remat,
        temperature=g.temperature,
        fuse_head=levers["logits"] == "chunked",
        gather_weights=exp.mesh.update_gather,
    )
    # None: the config's grpo.micro_batches, resolved for this slice (0 = rows / chips, see resolve_micro_batches)
    micro_batches = resolve_micro_batches(
        g.micro_batches if micro_batches is None else micro_batches, s.rows, n_chips, s.group
    )
    spec = LossSpec(
        epsilon_low=g.epsilon_low,
        epsilon_high=g.epsilon_high,
        beta=g.beta,
        kl=g.kl,
        agg=g.agg,
        micro_batches=micro_batches,
        max_len=g.max_new_tokens,
    )
    row = dict(
        topology=topology,
        chips=n_chips,
        mesh=dict(mesh.shape),
        decode_gather=bool(sharding.decode_gather),
        shard_optimizer=bool(sharding.optimizer_axes),
        update_gather=exp.mesh.update_gather,
        program=program,
        rows=s.rows,
        prompt_len=s.prompt_len,
        completion_len=s.completion_len,
        frames=s.frames,
        audio_frames=s.audio_frames,
        micro_batches=micro_batches if program == "update" else None,
        levers=dict(levers),
        model=exp.model.preset,
        dtype=exp.model.dtype,
        param_dtype=exp.model.param_dtype,
        layers=mcfg.text.num_hidden_layers,
        vision_depth=mcfg.vision.depth,
    )

    if program == "update":
        prompt = abstract_inputs(mesh, sharding, repeat_prompt(base, s.group))
        comp = _batch_sharded(mesh, sharding, np.zeros((s.rows, s.completion_len), np.int32))
        adv = _batch_sharded(mesh, sharding, np.zeros((s.rows,), np.float32))

        def update_program(spec):
            fn = update_step(pg, og, scorer, spec, g.beta)
            return jax.jit(fn, donate_argnums=(0, 1), out_shardings=(p_sh, o_sh, None))

        jitted = update_program(spec)
        args = (p_abs, o_abs, c_abs, prompt, comp, adv)
    elif program == "decode":
        prompt = abstract_inputs(mesh, sharding, base)

        def fn(pstate, prompt):
            return _generate(
                nnx.merge(pg, pstate),
                prompt,
                jax.random.key(0),
                max_new_tokens=s.completion_len,
                num_samples=s.group,
                greedy=False,
                temperature=g.temperature,
                top_k=0,
                top_p=1.0,
                eos=(mcfg.text.vocab_size - 1,),
                pad_token_id=0,
            )

        jitted, args = jax.jit(fn), (p_abs, prompt)
    else:
        t = mcfg.text
        s_len = s.prompt_len + s.completion_len
        k_spec, v_spec = _cache_specs(model_abs.kv_sharding)

        def cache_arg(shape, sh):
            spec = PartitionSpec() if sh is None else fit_spec(sh.spec, shape, dict(mesh.shape))
            return jax.ShapeDtypeStruct(shape, dtype, sharding=NamedSharding(mesh, spec))

        if sharding.decode_gather:  # the step reads the decoder weights gathered once before the loop
            dec = param_shardings(pstate, mesh, sharding.decode_layout())
            p_abs = _abstract(
                pstate,
                jax.tree_util.tree_map_with_path(
                    lambda path, a, b: b if path[0].key in ("language_model", "lm_head") else a,
                    p_sh,
                    dec,
                    is_leaf=lambda x: isinstance(x, nnx.Variable),
                ),
            )
        p_abs = _in_dtype(p_abs, dtype)  # the loop reads the weights cast to the compute dtype before it
        caches = [
            (
                cache_arg((s.rows, t.num_key_value_heads, t.head_dim, s_len), k_spec),
                cache_arg((s.rows, t.num_key_value_heads, s_len, t.head_dim), v_spec),
            )
            for _ in range(t.num_hidden_layers)
        ]
        tok = _batch_sharded(mesh, sharding, np.zeros((s.rows, 1), np.int32))
        pos = _batch_sharded(mesh, sharding, np.zeros((3, s.rows, 1), np.int32), 1)
        valid = _batch_sharded(mesh, sharding, np.zeros((s.rows, 1, s_len), bool))

        # generate concatenates the q/k/v and gate/up kernels once, outside its loop (only without a tensor
        # axis, see text.can_fuse): so does this step.
        fused = None
        if dict(mesh.shape)["tensor"] == 1:
            fused = jax.eval_shape(lambda st: nnx.merge(pg, st).language_model.fused_weights(), p_abs)
            fused = jax.tree.map(
                lambda a: jax.ShapeDtypeStruct(
                    a.shape,
                    a.dtype,
                    sharding=NamedSharding(
                        mesh,
                        fit_spec(PartitionSpec(None if sharding.decode_gather else "fsdp"), a.shape, dict(mesh.shape)),
                    ),
                ),
                fused,
            )

        def fn(pstate, fused, caches, tok, pos, valid):
            model = nnx.merge(pg, pstate)
            lm = model.language_model
            h, caches = lm(
                lm.embed_tokens(tok),
                pos,
                valid,
                caches=caches,
                write_index=s.prompt_len,
                act_sharding=model.act_sharding,
                fused=fused,
            )
            return model.logits(h)[:, 0], caches

        jitted, args = jax.jit(fn, donate_argnums=(2,)), (p_abs, fused, caches, tok, pos, valid)

    t0 = time.time()
    try:
        with jax.set_mesh(mesh):  # the model's mesh-dependent choices (text.can_fuse) see the slice's mesh
            compiled = jitted.lower(*args).compile()
    except Exception as e:
        msg = str(e).strip().splitlines()
        row.update(fits=False, error=" ".join(msg[:3])[:400], compile_s=round(time.time() - t0, 1))
        return row
    row["compile_s"] = round(time.time() - t0, 1)
    mem = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    arg, out, tmp, alias = (
        mem.argument_size_in_bytes,
        mem.output_size_in_bytes,
        mem.temp_size_in_bytes,
        mem.alias_size_in_bytes,
    )
    total = arg + out + tmp - alias
    row.update(
        fits=total <= chip["hbm"],
        arg_gb=arg / 1e9,
        out_gb=out / 1e9,
        temp_gb=tmp / 1e9,
        alias_gb=alias / 1e9,
        total_gb=total / 1e9,
        hbm_gb=chip["hbm"] / 1e9,
        hbm_frac=total / chip["hbm"],
    )
    flops, nbytes = float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0))
    if program == "update" and micro_batches > 1 and count:
        if checkpoint is not None:  # the memory figures stand even if the counting compile is killed (host memory)
            checkpoint(dict(row, count="the counting compile did not finish (killed: host memory?)"))
        # the scan body x iterations: the program with only its first two slices, unrolled, costs one more slice
        t1 = time.time()
        with jax.set_mesh(mesh):
            two = update_program(dataclasses.replace(spec, cost_slices=2)).lower(*args).compile().cost_analysis()
        two = two[0] if isinstance(two, (list, tuple)) else two
        slice_flops = float(two.get("flops", 0.0)) - flops
        slice_bytes = float(two.get("bytes accessed", 0.0)) - nbytes
        row.update(
            count="scan body x iterations",
            rolled_flops=flops,
            rolled_bytes=nbytes,
            slice_flops=slice_flops,
            slice_bytes=slice_bytes,
            count_compile_s=round(time.time() - t1, 1),
        )
        flops += (micro_batches - 1) * slice_flops
        nbytes += (micro_batches - 1) * slice_bytes
    model_flops = analytic_flops(mcfg, pstate, s, program) / n_chips
    roof = max(flops / chip["peak"], nbytes / chip["bw"])
    row.update(
        flops=flops,
        bytes=nbytes,
        model_flops=model_flops,
        flops_ratio=flops / model_flops if model_flops else None,
        roofline_s=roof,
        bound="compute" if flops / chip["peak"] >= nbytes / chip["bw"] else "memory",
        mfu=model_flops / (chip["peak"] * roof) if roof else None,
    )
    optimal = float(cost.get("optimal_seconds", 0.0))  # the TPU compiler's own estimate of the program's time
    if optimal > 0 and program != "decode" and not (program == "update" and micro_batches > 1):  # loops: once
        row.update(optimal_s=optimal, mfu_optimal=model_flops / (chip["peak"] * optimal))
    hbm = None
    if hlo_dir and not (program == "update" and micro_batches > 1):  # a scan's body is counted once: no total
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from hlo_bytes import count as count_bytes

        os.makedirs(hlo_dir, exist_ok=True)
        text = compiled.as_text()
        with open(os.path.join(hlo_dir, f"{topology.replace(':', '_')}_{program}.hlo.txt"), "w") as f:
            f.write(text)
        counted = count_bytes(text)
        hbm = counted["hbm"]
        roof_hbm = max(flops / chip["peak"], hbm / chip["bw"])
        row.update(
            hlo_bytes_all=counted["all"],
            hlo_bytes_hbm=hbm,
            hlo_bytes_onchip=counted["onchip"],
            roofline_hbm_s=roof_hbm,
            mfu_hbm=model_flops / (chip["peak"] * roof_hbm) if program == "update" else None,
        )
    if program == "decode_step":
        # Bytes a step cannot avoid: every weight this chip multiplies with (gathered over fsdp, split over
        # tensor) and its share of the KV cache.
        t = mcfg.text
        # (the decoder's kernels once - from the concatenated copies - and lm_head; not the encoders)
        wbytes = (
            sum(
                math.prod(v.shape)
                for p_, v in nnx.to_flat_state(pstate)
                if len(v.shape) >= 2
                and (p_[0] == "lm_head" or (p_[0] == "language_model" and "embed_tokens" not in p_))
            )
            * jnp.dtype(dtype).itemsize
            / dict(mesh.shape)["tensor"]
        )
        rows_per_chip = s.rows / math.prod(
            dict(mesh.shape)[a] for a in ("data", "fsdp") if s.rows % dict(mesh.shape)[a] == 0
        )
        kv = (
            2
            * t.num_hidden_layers
            * rows_per_chip
            * t.num_key_value_heads
            * t.head_dim
            * (s.prompt_len + s.completion_len)
            * jnp.dtype(dtype).itemsize
            / dict(mesh.shape)["tensor"]
        )
        row.update(min_bytes=wbytes + kv, hbm_roofline_frac=(wbytes + kv) / nbytes if nbytes else None)
        if row.get("optimal_s"):  # the necessary bytes' time at the HBM bandwidth against the compiler's estimate
            row.update(hbm_frac_optimal=(wbytes + kv) / chip["bw"] / row["optimal_s"])
        if hbm:
            row.update(hbm_frac_hbm=(wbytes + kv) / hbm)
    return row


def markdown(rows) -> str:
    head = (
        "| topology | program | layers (text / vision) | rows | micro | levers (attn / remat / logits / act / vision) | args GB | temp GB | "  # noqa: E501
        "total GB | % HBM | TFLOP/chip | model TFLOP/chip | ratio | GB accessed | roofline s | MFU | note |"
    )
    out = [head, "|" + "---|" * 17]
    for r in rows:
        lv = r["levers"]
        lev = f"{lv['attention']} / {lv['remat']} / {lv['logits']} / {lv['act_sharding']} / {lv.get('vision', '-')}"
        if r.get("arg_gb") is None:
            out.append(
                f"| {r['topology']} | {r['program']} | {r.get('layers')} / {r.get('vision_depth')} | {r['rows']} | {r.get('micro_batches') or '-'} | {lev} "  # noqa: E501
                f"| | | | | | | | | | | does not compile: {r.get('error', '')[:160]} |"
            )
            continue
        note = "fits" if r["fits"] else "over HBM"
        if r["program"] == "decode_step" and r.get("hbm_roofline_frac"):
            note += f"; {r['hbm_roofline_frac'] * 100:.0f}% of the bytes accessed are necessary"
        if r.get("hbm_frac_hbm"):
            note += f"; of the HBM-resident bytes (hlo_bytes) {r['hbm_frac_hbm'] * 100:.0f}%"
        if r.get("mfu_hbm"):
            note += f"; MFU from the HBM-resident bytes ({r['hlo_bytes_hbm'] / 1e9:.0f} GB) {r['mfu_hbm'] * 100:.0f}%"
        if r.get("hbm_frac_optimal"):
            note += f"; the compiler's time estimate {r['optimal_s'] * 1e3:.2f} ms: {r['hbm_frac_optimal'] * 100:.0f}%"
        if r.get("mfu_optimal") and r["program"] == "update":
            note += f"; the compiler's time estimate {r['optimal_s']:.4f} s: MFU {r['mfu_optimal'] * 100:.0f}%"
        if "killed" in str(r.get("count", "")):
            note += "; " + r["count"]
        # XLA's cost analysis counts a while loop's body once: no roofline for the decode loop, nor for a
        # micro-batched update counted without its slices (--no-count)
        loop = (
            r["program"] == "decode"
            or not r.get("flops")
            or ((r.get("micro_batches") or 1) > 1 and "slice_flops" not in r)
        )
        perf = (
            "| - | - | - | - | - | - "
            if loop
            else f"| {r['flops'] / 1e12:.2f} | {r['model_flops'] / 1e12:.2f} | {r['flops_ratio']:.2f} | "
            f"{r['bytes'] / 1e9:.1f} | {r['roofline_s']:.4f} | {r['mfu'] * 100:.0f}% "
        )
        out.append(
            f"| {r['topology']} | {r['program']} | {r.get('layers')} / {r.get('vision_depth')} | {r['rows']} | "
            f"{r.get('micro_batches') or '-'} | {lev} | {r['arg_gb']:.1f} | {r['temp_gb']:.1f} | {r['total_gb']:.1f} | {r['hbm_frac'] * 100:.0f} "  # noqa: E501
            f"{perf}| {note} |"
        )
    return "\n".join(out)


def _write_row(path: str, row: dict) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(row, f)
    os.replace(path + ".tmp", path)


def _child(path: str, case: tuple, kw: dict) -> None:
    _write_row(path, run_case(*case, **kw, checkpoint=lambda row: _write_row(path, row)))


def _isolated(case: tuple, kw: dict) -> dict:
    """``run_case`` in a child process (spawned: it initialises libtpu, the parent never does). A child that dies
    (the kernel's OOM killer: a 28-layer compile holds 10-25 GB of host memory) leaves its last checkpointed row,
    or a row saying why there is none."""
    import multiprocessing
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "row.json")
        proc = multiprocessing.get_context("spawn").Process(target=_child, args=(path, case, kw))
        proc.start()
        proc.join()
        row = json.load(open(path)) if os.path.exists(path) else None
    if proc.exitcode == 0 and row is not None:
        return row
    why = f"the compiling process exited with {proc.exitcode}" + (
        " (killed: host memory?)" if proc.exitcode in (-9, 137) else ""
    )
    if row is None:
        topology, program, exp, s, levers, micro = case[:6]
        return dict(
            topology=topology,
            program=program,
            rows=s.rows,
            levers=dict(levers),
            micro_batches=micro,
            layers=case[6],
            vision_depth=case[7],
            fits=None,
            error=why,
        )
    row.setdefault("count", why)
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--topology", action="append", required=True, help="e.g. v5p:2x2x2 (repeatable)")
    ap.add_argument("--set", action="append", default=[], dest="overrides", help="config override key=value")
    ap.add_argument("--programs", default="update,decode,decode_step")
    ap.add_argument("--prompts", type=int, default=None, help="B prompts (default data.batch_size)")
    ap.add_argument("--prompt-len", type=int, default=2048)
    ap.add_argument("--completion-len", type=int, default=None, help="default grpo.max_new_tokens")
    ap.add_argument("--frames", type=int, default=None, help="video frames per prompt (default data.max_frames)")
    ap.add_argument("--audio-seconds", type=float, default=None)
    ap.add_argument(
        "--micro-batches",
        type=int,
        default=None,
        help="gradient accumulation slices (default: the config's grpo.micro_batches; 0 = rows / chips)",
    )
    ap.add_argument("--attention", choices=("dense", "chunked", "dot_product"), default="chunked")
    ap.add_argument(
        "--remat",
        choices=("none", "full", "dots"),
        default=None,
        help="default: the config's model.remat (true = full)",
    )
    ap.add_argument("--logits", choices=("full", "chunked"), default="chunked")
    ap.add_argument("--act-sharding", choices=("on", "off"), default="on")
    ap.add_argument("--vision-attention", choices=("banded", "dense"), default="banded")
    ap.add_argument("--layers", type=int, default=None, help="decoder layers (default: the model's)")
    ap.add_argument("--vision-depth", type=int, default=None, help="vision blocks (default: the model's)")
    ap.add_argument(
        "--no-count",
        action="store_true",
        help="skip the second compile that counts a micro-batched update's slices (no roofline then)",
    )
    ap.add_argument(
        "--hlo-dir",
        default=None,
        help="write each program's optimised HLO here and add its HBM-resident bytes (benchmarks/hlo_bytes.py)",
    )
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="compile every case in this process (default: each in a child process, so that the kernel killing one "
        "for host memory ends only its row, and each starts with its memory free)",
    )
    ap.add_argument("--json", default=None, help="append rows to this JSON file")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")

    # imported after the environment above is set (jax reads it)
    from omnir1_jax.config import load_config

    exp = load_config(args.config, args.overrides)
    s = shapes_from_config(exp, args)
    remat = args.remat or {False: "none", True: "full", "dots": "dots"}[exp.model.remat]
    levers = dict(
        attention=args.attention,
        remat=remat,
        logits=args.logits,
        act_sharding=args.act_sharding,
        vision=args.vision_attention,
    )
    rows = []
    for topo in args.topology:
        for program in args.programs.split(","):
            case = (topo, program, exp, s, levers, args.micro_batches, args.layers, args.vision_depth)
            kw = dict(count=not args.no_count, hlo_dir=args.hlo_dir)
            row = run_case(*case, **kw) if args.in_process else _isolated(case, kw)
            row.update(date=time.strftime("%Y-%m-%d"), host=platform.node(), config=args.config)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                old = json.load(open(args.json)) if os.path.exists(args.json) else []
                os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
                with open(args.json + ".tmp", "w") as f:
                    json.dump(old + [row], f, indent=1)
                os.replace(args.json + ".tmp", args.json)
    print(markdown(rows))
    return rows


if __name__ == "__main__":
    main()
