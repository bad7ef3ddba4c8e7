"""A MODEL, not a measurement: seconds per GRPO step of the 7B VOS recipe, TPU side and bridge side, run one after
the other (synchronous) or overlapped (``grpo.overlap = "one_step"``), and how many bridge GPUs keep a v5p-8 or a
v5p-64 slice busy.

    python benchmarks/step_model.py [--config experiments/omni_r1_7b_vos.py] [--aot runs/aot_scale.json] [--json]

Nothing here runs a model. Every input is printed with its source (a config field, the AOT table, a datasheet,
an architecture file, or a stated assumption). Both sides are *rooflines*, the fastest the hardware allows for
the counted work: the TPU side is the TPU compiler's roofline (``benchmarks/aot_scale.py``), the bridge side is
max(FLOPs / peak, bytes / bandwidth) per piece of work at an H100's or H200's datasheet peak. Real programs are
slower on both sides; ``--gpu-efficiency`` / ``--tpu-efficiency`` scale them (the GPU table is also printed at
50 % and 30 % of peak).

One step of the recipe (``data.batch_size`` prompts x ``grpo.group_size`` rollouts):

- **TPU** (System 1): decode = prefill of the prompts + ``grpo.max_new_tokens`` decode steps (the sampling loop
  runs until its longest row ends; counted at the maximum), then the update (reference log-probs, policy loss and
  gradient, AdamW). From ``--aot`` rows (``aot_scale.py --json``) when given, else the figures quoted below from
  BENCHMARKS.md's AOT section.
- **Bridge** (one worker per GPU; a group is one request, served by one worker: System 2 grounds the group's
  keyframes, then SAM2 segments them through the clip):

  - System 2 (the recipe's ``qwen2_5_omni:@policy``: the Qwen2.5-Omni-7B Thinker, bf16, ``transformers``
    ``generate``, greedy, batches of 16 keyframes): per keyframe the vision encoder on the keyframe at the
    grounder's pixel cap and a prefill of its image + prompt tokens; per batch of 16, one decode step per answer
    token, each reading every decoder weight and the batch's KV cache (memory bound).
  - SAM2.1 hiera_l at 1024 (``sam2_bridge.segmenter.GroupSegmenter``): the image encoder once per clip frame,
    then every detection (rollout x keyframe x box) is an object tracked through two full sweeps of the clip
    (forward and backward), on every frame but its prompt frame: memory attention (4 layers: self-attention over
    the frame's 64 x 64 tokens, cross-attention to up to 7 memory frames + 16 object pointers), mask decoder and
    memory encoder per object-frame.

  ``W`` = the bridge's GPU-seconds per step on one GPU. With ``N`` GPUs the bridge takes ``W / N`` when work
  splits freely (``N = ceil(W / T_tpu)`` keeps the TPUs busy) and ``ceil(G / N) x W / G`` when each of the ``G``
  group requests stays on one GPU (as the bridge serves them now).

- **Step**: synchronous = ``T_tpu + T_bridge(N)``; overlapped = ``max(T_tpu, T_bridge(N))``: with one-step overlap
  the bridge scores batch t during the update of batch t - 1 and the decode of batch t + 1 (omnir1_jax/overlap.py).

The SAM2 arithmetic is checked against the one figure measured for it, on this project's 2-core CPU
(BENCHMARKS.md, bridge group batching): memory attention per object-step with hiera_t at 256 px.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BF16 = 2  # bytes

GPUS = {
    "H100": {"peak": 989e12, "bw": 3.35e12, "source": "NVIDIA H100 SXM datasheet: 989 TFLOP/s bf16 dense, 3.35 TB/s"},
    "H200": {"peak": 989e12, "bw": 4.8e12, "source": "NVIDIA H200 SXM datasheet: 989 TFLOP/s bf16 dense, 4.8 TB/s"},
}
V5P = {"peak": 459e12, "source": "Google Cloud TPU v5p page: 459 TFLOP/s bf16 (benchmarks/aot_scale.py CHIPS)"}
SLICES = {"v5p-8": {"topology": "v5p:2x2x2", "chips": 8}, "v5p-64": {"topology": "v5p:4x4x4", "chips": 64}}

# The AOT figures of the 7B recipe as BENCHMARKS.md quotes them (AOT compilation for TPU slices: the paper's
# configuration, mesh fsdp 2 x tensor 4, no remat, float32 master weights and moments split over data
# (shard_optimizer), the update reading the gathered decoder weights (update_gather); 2026-12-07; the
# cost-analysis roofline). The v5p-8 update is micro-batched (8 slices): its roofline counts the scan's body x
# its iterations (XLA counts a loop body once; aot_scale.py's second, two-slices-unrolled compile). The compiler's
# own time estimate is longer (update 0.286 s, decode step 2.40 / 3.02 ms): --tpu-efficiency 0.62 models it.
AOT_QUOTED = {
    "v5p-64": {"update_s": 0.176, "update_mfu": 0.60, "update_model_tflop_chip": 48.65, "decode_step_s": 2.04e-3},
    "v5p-8": {"update_s": 0.974, "decode_step_s": 2.57e-3},
}
AOT_SOURCE = "BENCHMARKS.md, AOT compilation for TPU slices (mesh 2 x 4, no remat, float32 masters, ZeRO-1)"

# SAM2.1 trunks (sam2/configs/sam2.1/sam2.1_hiera_{l,t}.yaml; hiera_t keeps Hiera's default window sizes,
# sam2/modeling/backbones/hieradet.py): hiera_l is the recipe's, hiera_t the CPU benchmarks'
HIERA = {
    "hiera_l": {"embed_dim": 144, "stages": (2, 6, 36, 4), "global_blocks": (23, 33, 43), "window": (8, 4, 16, 8)},
    "hiera_t": {"embed_dim": 96, "stages": (1, 2, 7, 2), "global_blocks": (5, 7, 9), "window": (8, 4, 14, 7)},
}
SAM2_SOURCE = "sam2/configs/sam2.1/sam2.1_hiera_l.yaml (sam2 1.1.0)"
SAM2_PUBLISHED_PARAMS = 224.4e6  # sam2 README, SAM 2.1 checkpoints table: sam2.1_hiera_large 224.4 M


# ------------------------------------------------------------------------------------------- the inputs
@dataclasses.dataclass
class Input:
    name: str
    value: float
    source: str


class Inputs(dict):
    """name -> Input, in the order they were added (printed as the sources table)."""

    def add(self, name: str, value: float, source: str) -> float:
        self[name] = Input(name, value, source)
        return value

    def v(self, name: str) -> float:
        return self[name].value


# --------------------------------------------------------------------------------------- Qwen arithmetic
def qwen_kernels(mcfg) -> dict[str, float]:
    """Weight-matrix parameters of the Thinker's text decoder (per layer x layers), lm_head, vision blocks and
    merger (biases, norms and the input embedding, a gather, left out)."""
    t, v = mcfg.text, mcfg.vision
    hd = t.hidden_size // t.num_attention_heads
    layer = (
        2 * t.hidden_size * t.num_attention_heads * hd
        + 2 * t.hidden_size * t.num_key_value_heads * hd
        + 3 * t.hidden_size * t.intermediate_size
    )
    vblock = 4 * v.hidden_size**2 + 3 * v.hidden_size * v.intermediate_size
    merged = v.hidden_size * v.spatial_merge_size**2
    return {
        "text": layer * t.num_hidden_layers,
        "head": t.hidden_size * t.vocab_size,
        "vision": vblock * v.depth,
        "merger": merged * merged + merged * v.out_hidden_size,
        "patch_embed": v.in_channels * v.temporal_patch_size * v.patch_size**2 * v.hidden_size,
    }


def qwen_vision_flops(mcfg, patches: int, patches_per_frame: int) -> float:
    """The vision encoder on ``patches`` patches in frames of ``patches_per_frame``: 2 x kernels x patches, the
    merger on patches / 4, and attention (4 x hidden x query-key pairs: windows of (window / patch)^2 patches,
    full-attention blocks over one frame)."""
    v, k = mcfg.vision, qwen_kernels(mcfg)
    win = min((v.window_size // v.patch_size) ** 2, patches_per_frame)
    full = len(v.fullatt_block_indexes)
    pairs = patches * (full * patches_per_frame + (v.depth - full) * win)
    return (
        2 * (k["vision"] + k["patch_embed"]) * patches
        + 2 * k["merger"] * patches / v.spatial_merge_size**2
        + 4 * v.hidden_size * pairs
    )


def qwen_prefill_flops(mcfg, tokens: int) -> float:
    """Text decoder over ``tokens`` prompt tokens (causal attention: tokens^2 / 2 pairs), lm_head on the last."""
    t, k = mcfg.text, qwen_kernels(mcfg)
    attn = 4 * t.num_hidden_layers * t.hidden_size
    return 2 * k["text"] * tokens + attn * tokens * tokens / 2 + 2 * k["head"]


def qwen_decode_step(mcfg, rows: int, context: int) -> tuple[float, float]:
    """(FLOPs, bytes) of one decode step of ``rows`` rows over a ``context``-token KV cache, bf16: every decoder
    kernel and lm_head read once, each row's cache read."""
    t, k = mcfg.text, qwen_kernels(mcfg)
    hd = t.hidden_size // t.num_attention_heads
    flops = 2 * (k["text"] + k["head"]) * rows + 4 * t.num_hidden_layers * t.hidden_size * rows * context
    kv = 2 * t.num_hidden_layers * t.num_key_value_heads * hd * BF16
    return flops, (k["text"] + k["head"]) * BF16 + rows * context * kv


# --------------------------------------------------------------------------------------- SAM2 arithmetic
def hiera_flops(arch: str, image_size: int) -> tuple[float, float]:
    """(FLOPs per frame, trunk parameters) of the Hiera trunk + FPN neck + the two high-resolution 1x1 convs.

    Stride-4 patch embedding (7x7 conv), then stages at 1/4, 1/8, 1/16, 1/32 of the image with widths C, 2C, 4C,
    8C; a block is 12 d^2 weights (qkv 3 d^2, proj d^2, MLP ratio 4: 8 d^2) -> 24 d^2 FLOPs per token, plus
    windowed attention (4 d x tokens x window tokens) or global attention in ``global_blocks`` (4 d x tokens^2).
    The block that pools into a stage is counted at that stage's width."""
    h = HIERA[arch]
    c, side = h["embed_dim"], image_size // 4
    flops = 2 * side * side * 49 * 3 * c  # patch embedding
    params, block, widths = 0.0, 0, []
    for s, n in enumerate(h["stages"]):
        d, tokens = c * 2**s, (side // 2**s) ** 2
        widths.append((d, tokens))
        win = h["window"][s] ** 2
        for _ in range(n):
            keys = tokens if block in h["global_blocks"] else min(win, tokens)
            flops += 24 * d * d * tokens + 4 * d * tokens * keys
            params += 12 * d * d
            block += 1
    flops += sum(2 * d * 256 * tokens for d, tokens in widths)  # FPN lateral 1x1 convs to 256
    s0, s1 = widths[0][1], widths[1][1]
    flops += 2 * 256 * 32 * s0 + 2 * 256 * 64 * s1  # conv_s0 / conv_s1 (SAM2Base.forward_image)
    return flops, params


def memory_attention_flops(
    q: int,
    n_mem: int,
    n_ptr_tokens: int,
    *,
    d: int = 256,
    mem_dim: int = 64,
    ff: int = 2048,
    layers: int = 4,
    narrow_values: bool = False,
    shared_first_self_attention: bool = True,
) -> float:
    """One object on one frame (``sam2_bridge.memattn``): ``q`` query tokens (the frame's feature map), keys =
    ``n_mem`` memory frames of ``q`` tokens + ``n_ptr_tokens`` object-pointer tokens. Per layer: self-attention
    (q, k, v, out projections 4 x 2 q d^2 and 2 x 2 q^2 d; layer 1 shared by all objects of a frame), cross-
    attention (q and out projections 2 x 2 q d^2, the newest memory's keys 2 q mem_dim d (older ones are cached),
    scores 2 q M d, values: 256-wide on CUDA (projection 2 M mem_dim d + 2 q M d), 64-wide off it (2 q M mem_dim +
    2 q mem_dim d)), MLP 2 x 2 q d ff."""
    m = n_mem * q + n_ptr_tokens
    total = 0.0
    for layer in range(layers):
        if not (layer == 0 and shared_first_self_attention):
            total += 4 * 2 * q * d * d + 2 * 2 * q * q * d
        total += 2 * 2 * q * d * d + 2 * q * mem_dim * d + 2 * n_ptr_tokens * mem_dim * d + 2 * q * m * d
        total += (2 * q * m * mem_dim + 2 * q * mem_dim * d) if narrow_values else (2 * m * mem_dim * d + 2 * q * m * d)
        total += 2 * 2 * q * d * ff
    return total


def mask_decoder_flops(q: int, d: int = 256) -> float:
    """SAM mask decoder per object-frame: two-way transformer (2 layers + a final token-to-image attention; image
    tokens projected to d / 2: 3 projections of q tokens per attention with the image), the two transposed convs
    (d -> d/4 at 2x, d/4 -> d/8 at 4x the feature map's side); the ~7 output tokens' own work is negligible."""
    side = math.isqrt(q)
    attn_image = 3 * 2 * q * d * (d // 2)
    upscale = 2 * (2 * side) ** 2 * (d // 4) * d + 2 * (4 * side) ** 2 * (d // 8) * (d // 4)
    return 2 * 2 * attn_image + attn_image + upscale


def memory_encoder_flops(q: int, image_size: int, d: int = 256, mem_dim: int = 64) -> float:
    """SAM2 memory encoder per object-frame: mask downsampler (4 stride-2 3x3 convs 1 -> 4 -> 16 -> 64 -> 256
    from the full-size mask, then a 1x1 conv), the pixel-feature 1x1 projection, the fuser (2 CXBlocks: 7x7
    depth-wise conv + 256 -> 1024 -> 256), the 256 -> 64 output projection."""
    out, cin, side = 0.0, 1, image_size
    for cout in (4, 16, 64, 256):
        side //= 2
        out += 2 * side * side * 9 * cin * cout
        cin = cout
    out += 2 * q * d * d  # the downsampler's final 1x1
    out += 2 * q * d * d  # pix_feat_proj
    out += 2 * (2 * q * 49 * d + 2 * 2 * q * d * 4 * d)
    return out + 2 * q * d * mem_dim


def sam2_object_frames(frames: int, num_maskmem: int = 7, max_ptrs: int = 16) -> list[tuple[int, int]]:
    """(memory frames, pointer tokens) of each object-frame of one object in one sweep: every frame but the
    prompt frame; at the i-th such frame the memory holds the prompt frame + min(i, num_maskmem - 1) earlier
    frames of the sweep, and 1 + i object pointers (at most min(frames, max_ptrs)), 4 tokens each."""
    ptr_cap = min(frames, max_ptrs)
    return [(1 + min(i, num_maskmem - 1), 4 * min(1 + i, ptr_cap)) for i in range(frames - 1)]


def group_work(
    mcfg,
    *,
    queries: float,
    objects: float,
    frames: int,
    s2_image_tokens: int,
    s2_text_tokens: int,
    s2_answer_tokens: int,
    s2_batch: int = 16,
    image_size: int = 1024,
    num_maskmem: int = 7,
    max_ptrs: int = 16,
    arch: str = "hiera_l",
) -> dict[str, tuple[float, float]]:
    """The bridge's work for one group request: name -> (FLOPs, bytes that bound it; 0 where compute does).

    System 2 grounds ``queries`` keyframes (vision encoder on ``s2_image_tokens`` merged tokens each, a prefill of
    those + ``s2_text_tokens``, then ``s2_answer_tokens`` greedy decode steps per batch of up to ``s2_batch``
    keyframes); SAM2 (``arch`` at ``image_size``) encodes the ``frames`` clip frames once and tracks ``objects``
    objects through both sweeps (every frame but the prompt frame)."""
    s2_ctx = s2_image_tokens + s2_text_tokens
    work = {
        "System 2 vision encoder": (queries * qwen_vision_flops(mcfg, s2_image_tokens * 4, s2_image_tokens * 4), 0.0),
        "System 2 prefill": (queries * qwen_prefill_flops(mcfg, s2_ctx), 0.0),
    }
    batches = math.ceil(queries / s2_batch)
    dec_f, dec_b = 0.0, 0.0
    for i in range(s2_answer_tokens):
        f, b = qwen_decode_step(mcfg, int(min(queries, s2_batch)), s2_ctx + i)
        dec_f, dec_b = dec_f + f, dec_b + b
    work["System 2 decode"] = (batches * dec_f, batches * dec_b)
    q_tokens = (image_size // 16) ** 2
    work["SAM2 image encoder"] = (frames * hiera_flops(arch, image_size)[0], 0.0)
    per_object = sum(
        memory_attention_flops(q_tokens, nm, npt) for nm, npt in sam2_object_frames(frames, num_maskmem, max_ptrs)
    )
    heads = mask_decoder_flops(q_tokens) + memory_encoder_flops(q_tokens, image_size)
    work["SAM2 memory attention"] = (2 * objects * per_object, 0.0)
    work["SAM2 mask decoder + memory encoder"] = (2 * objects * (frames - 1) * heads, 0.0)
    return work


def roofline_seconds(gpu: dict, flops: float, nbytes: float) -> float:
    """The fastest ``gpu`` (a :data:`GPUS` entry) runs work of ``flops`` and ``nbytes``: max(compute, memory)."""
    return max(flops / gpu["peak"], nbytes / gpu["bw"])


# ------------------------------------------------------------------------------------------ the model
def gpus_to_keep_busy(bridge_s: float, tpu_s: float, groups: int) -> tuple[int, int | None]:
    """(GPUs if the bridge's work splits freely, GPUs if each group request stays on one GPU; None when one
    group alone takes longer than the TPU step)."""
    free = max(1, math.ceil(bridge_s / tpu_s - 1e-9))
    per_group = bridge_s / groups
    if per_group > tpu_s:
        return free, None
    return free, next(n for n in range(1, groups + 1) if math.ceil(groups / n) * per_group <= tpu_s + 1e-12)


def bridge_seconds(bridge_s: float, gpus: int, groups: int, split: bool) -> float:
    """The bridge's time for one step's groups on ``gpus`` GPUs."""
    return bridge_s / gpus if split else math.ceil(groups / gpus) * bridge_s / groups


def step_seconds(tpu_s: float, bridge_s: float) -> dict[str, float]:
    return {"sync": tpu_s + bridge_s, "overlapped": max(tpu_s, bridge_s)}


def read_aot(path: str | None) -> dict[str, dict]:
    """The newest fitting 28-layer row per (slice, program) of ``aot_scale.py --json`` output."""
    if not path:
        return {}
    with open(path) as f:
        rows = json.load(f)
    out: dict[str, dict] = {}
    for r in rows:
        name = f"v5p-{r.get('chips')}" if str(r.get("topology", "")).startswith("v5p") else None
        if name not in SLICES or not r.get("fits") or r.get("layers") != 28 or r.get("roofline_s") is None:
            continue
        if r["program"] == "update" and (r.get("micro_batches") or 1) > 1 and "slice_flops" not in r:
            continue  # a micro-batched update counted without its slices: no roofline
        out.setdefault(name, {})[r["program"]] = r
    return out


def build(args) -> dict:
    # lazy: the config loader and the model presets import JAX; `--help` stays instant
    from omnir1_jax.config import load_config
    from omnir1_jax.models.qwen2_5_omni import qwen2_5_omni_3b, qwen2_5_omni_7b

    exp = load_config(args.config, args.overrides)
    mcfg = {"qwen2_5_omni_7b": qwen2_5_omni_7b, "qwen2_5_omni_3b": qwen2_5_omni_3b}[exp.model.preset]()
    d, g = exp.data, exp.grpo
    cfg_src = os.path.relpath(args.config, ROOT) if os.path.isabs(args.config) else args.config
    inp = Inputs()
    groups = inp.add("prompts (groups) per step", d.batch_size, f"{cfg_src}: data.batch_size")
    n = inp.add("rollouts per group", g.group_size, f"{cfg_src}: grpo.group_size")
    frames = inp.add(
        "frames per clip",
        args.frames or d.max_frames,
        f"{cfg_src}: data.max_frames (the largest clip; the AOT table's shapes)" if not args.frames else "--frames",
    )
    keyframes = inp.add(
        "keyframes per rollout",
        g.num_keyframes or args.keyframes,
        f"{cfg_src}: grpo.num_keyframes"
        if g.num_keyframes
        else "assumed: every rollout valid, as many keyframes as the prompt asks for (omnir1_jax/data/"
        "prompts.py: 'Select about 4 most relevant moments')",
    )
    boxes = inp.add("System 2 boxes per keyframe", args.boxes, "assumed: one (the referred object)")
    distinct = inp.add(
        "distinct (keyframe, description) share",
        args.distinct,
        "assumed: no two rollouts of a group send the same query (identical ones are decoded once "
        "and tracked once: sam2_bridge handler / GroupSegmenter.share_identical_prompts)",
    )
    new_tokens = inp.add(
        "System 1 decode steps",
        args.decode_tokens or g.max_new_tokens,
        f"{cfg_src}: grpo.max_new_tokens (every row to the cap)" if not args.decode_tokens else "--decode-tokens",
    )
    prompt_len = inp.add(
        "System 1 prompt tokens", args.prompt_len, "BENCHMARKS.md AOT shapes: 2,048 tokens, 1,536 of them video"
    )
    # lazy: the bridge's server side imports PyTorch; only this one constant is read
    from sam2_bridge.server.grounder import DEFAULT_MAX_PIXELS

    s2_tokens_img = inp.add(
        "System 2 image tokens per keyframe",
        DEFAULT_MAX_PIXELS // (28 * 28),
        "sam2_bridge/server/grounder.py DEFAULT_MAX_PIXELS = 900*28*28 px, one token per 28x28 px "
        "(frames of >= 0.7 MP, e.g. 720p, are scaled down to the cap)",
    )
    s2_text = inp.add(
        "System 2 prompt text tokens",
        args.s2_prompt_tokens,
        "estimate: chat template + default system prompt + GROUNDING_PROMPT with a ~15-word description",
    )
    s2_out = inp.add(
        "System 2 answer tokens",
        args.s2_answer_tokens,
        "estimate: a json code fence around one [{'bbox_2d': [x1, y1, x2, y2], 'label': ...}] (Qwen "
        "tokenises digits one by one); a greedy batch ends with its longest answer",
    )
    s2_batch = inp.add("System 2 generate batch", 16, "sam2_bridge/grounder.py QwenBackend(batch_size=16)")
    image_size = inp.add("SAM2 image size", 1024, SAM2_SOURCE + ": image_size")
    num_maskmem = inp.add("SAM2 memory frames", 7, SAM2_SOURCE + ": num_maskmem")
    max_ptrs = inp.add("SAM2 object pointers", 16, "sam2/modeling/sam2_base.py: max_obj_ptrs_in_encoder")
    inp.add(
        "SAM2 memory attention values",
        256,
        "sam2_bridge/memattn.py: on CUDA the fused kernel runs on projected (256-wide) values",
    )
    for k, gpu in GPUS.items():
        inp.add(f"{k} peak TFLOP/s", gpu["peak"] / 1e12, gpu["source"])
        inp.add(f"{k} bandwidth TB/s", gpu["bw"] / 1e12, gpu["source"])
    inp.add("v5p peak TFLOP/s", V5P["peak"] / 1e12, V5P["source"])
    gpu_eff = inp.add("GPU efficiency (x peak)", args.gpu_efficiency, "--gpu-efficiency (1 = the roofline)")
    tpu_eff = inp.add("TPU efficiency (x roofline)", args.tpu_efficiency, "--tpu-efficiency (1 = the roofline)")

    # ---------------------------------------------------------------------------------------- TPU side
    aot = read_aot(args.aot)
    aot_src = f"--aot {args.aot}" if args.aot else None
    k = qwen_kernels(mcfg)
    units = max(1, d.s1_max_pixels // (28 * 28))
    frame_patches = units * mcfg.vision.spatial_merge_size**2
    video_patches = -(-int(frames) // mcfg.vision.temporal_patch_size) * frame_patches
    prefill_flops = (
        groups
        * (
            qwen_prefill_flops(mcfg, int(prompt_len))
            - 2 * k["head"]
            + qwen_vision_flops(mcfg, video_patches, frame_patches)
        )
        + 2 * k["head"] * groups
    )
    tpu = {}
    for name, sl in SLICES.items():
        rows, q = aot.get(name, {}), AOT_QUOTED[name]
        chips = sl["chips"]
        if "decode" in rows and "decode_step" in rows:
            pre_chip = rows["decode"]["model_flops"] - new_tokens * rows["decode_step"]["model_flops"]
            pre_src = f"{aot_src}: decode model FLOPs - {int(new_tokens)} x decode_step's, at the v5p peak"
        else:
            pre_chip = prefill_flops / chips
            pre_src = (
                "analytic (this script): prompts x (text decoder over the prompt + vision encoder on "
                f"{video_patches:,} patches), at the v5p peak"
            )
        pre_s = inp.add(f"{name} prefill s", pre_chip / V5P["peak"], pre_src)
        if "decode_step" in rows:
            step_s = inp.add(f"{name} decode step s", rows["decode_step"]["roofline_s"], f"{aot_src}: decode_step")
        else:
            step_s = inp.add(f"{name} decode step s", q["decode_step_s"], f"{AOT_SOURCE}: decode roofline ms / step")
        if "update" in rows:
            upd = inp.add(f"{name} update s", rows["update"]["roofline_s"], f"{aot_src}: update roofline")
        elif q.get("update_s") is not None:
            upd = inp.add(f"{name} update s", q["update_s"], f"{AOT_SOURCE}: update roofline")
        else:  # the v5p-8 update: v5p-64's per-chip model FLOPs x 8 at the v5p-64 update's roofline MFU
            ref = AOT_QUOTED["v5p-64"]
            flops = ref["update_model_tflop_chip"] * 1e12 * SLICES["v5p-64"]["chips"] / chips
            upd = inp.add(
                f"{name} update s",
                flops / (V5P["peak"] * ref["update_mfu"]),
                f"assumed: {ref['update_model_tflop_chip']} TFLOP/chip on v5p-64 x 64 / {chips} chips at "
                f"v5p-64's {ref['update_mfu']:.0%} roofline MFU ({AOT_SOURCE}; no v5p-8 roofline there)",
            )
        decode = pre_s + new_tokens * step_s
        tpu[name] = {
            "prefill_s": pre_s / tpu_eff,
            "decode_s": decode / tpu_eff,
            "update_s": upd / tpu_eff,
            "total_s": (decode + upd) / tpu_eff,
        }

    # ------------------------------------------------------------------------------------- bridge side
    queries_per_group = n * keyframes * distinct  # keyframes System 2 grounds per group
    objects_per_group = queries_per_group * boxes
    one_group = group_work(
        mcfg,
        queries=queries_per_group,
        objects=objects_per_group,
        frames=int(frames),
        s2_image_tokens=int(s2_tokens_img),
        s2_text_tokens=int(s2_text),
        s2_answer_tokens=int(s2_out),
        s2_batch=int(s2_batch),
        image_size=int(image_size),
        num_maskmem=int(num_maskmem),
        max_ptrs=int(max_ptrs),
    )
    work = {name: (groups * f, groups * b) for name, (f, b) in one_group.items()}  # per step, on one GPU
    trunk_params = hiera_flops("hiera_l", int(image_size))[1]
    bridge = {}
    for gname, gpu in GPUS.items():
        parts = {}
        for wname, (f, b) in work.items():
            s = roofline_seconds(gpu, f, b) / gpu_eff
            parts[wname] = {
                "flops": f,
                "bytes": b,
                "seconds": s,
                "bound": "memory" if b / gpu["bw"] > f / gpu["peak"] else "compute",
            }
        bridge[gname] = {"parts": parts, "gpu_s": sum(p["seconds"] for p in parts.values())}

    # -------------------------------------------------------------------------------------------- steps
    results = []
    for sname in SLICES:
        ts = tpu[sname]["total_s"]
        for gname in GPUS:
            w = bridge[gname]["gpu_s"]
            free, grouped = gpus_to_keep_busy(w, ts, int(groups))
            row = {
                "slice": sname,
                "gpu": gname,
                "tpu_s": ts,
                "bridge_gpu_s": w,
                "one_gpu": step_seconds(ts, w),
                "gpus_split": free,
                "gpus_per_group": grouped,
                "at_gpus_split": step_seconds(ts, bridge_seconds(w, free, int(groups), True)),
                "recipe_workers": exp.bridge.workers,
                "at_recipe_workers": step_seconds(ts, bridge_seconds(w, exp.bridge.workers, int(groups), False)),
            }
            row["sensitivity"] = {f"{e:.0%}": gpus_to_keep_busy(w / e, ts, int(groups)) for e in (0.5, 0.3)}
            results.append(row)

    # ------------------------------------------------------------------ cross-check against the CPU measurement
    q_t = (256 // 16) ** 2
    cpu_flops = memory_attention_flops(q_t, 7, 64, narrow_values=True)
    check = {
        "what": "memory attention per object-step, hiera_t at 256 px, full memory (7 frames + 16 pointers: "
        "1,856 keys), 64-wide values, layer 1 shared",
        "model_gflop": cpu_flops / 1e9,
        "cpu_gflops": 175.0,
        "model_ms": cpu_flops / 175e9 * 1e3,
        "measured_ms": 28.0,
        "source": "BENCHMARKS.md, bridge group batching (2-core CPU, 2026-11-29): 28 ms per object-step at "
        "B = 8; 2 cores run a 2048^3 float32 matmul at ~175 GFLOP/s",
    }
    return {
        "kind": "model (not a measurement)",
        "config": cfg_src,
        "inputs": {k_: dataclasses.asdict(v) for k_, v in inp.items()},
        "tpu": tpu,
        "bridge": bridge,
        "steps": results,
        "cpu_check": check,
        "sam2_params": {"hiera_l_trunk_model": trunk_params, "sam2_1_hiera_large_published": SAM2_PUBLISHED_PARAMS},
        "per_group": {
            "queries": queries_per_group,
            "objects": objects_per_group,
            "object_frames": 2 * objects_per_group * (int(frames) - 1),
        },
    }


# ------------------------------------------------------------------------------------------------ output
def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1e4 else f"{x:.4g}"


def markdown(m: dict) -> str:
    out = [
        "**A model, not a measurement** (`benchmarks/step_model.py`): rooflines at datasheet peaks, inputs below.",
        "",
        "| input | value | source |",
        "|---|---|---|",
    ]
    for v in m["inputs"].values():
        out.append(f"| {v['name']} | {_fmt(v['value'])} | {v['source']} |")
    out += [
        "",
        "TPU side per step (s): "
        + "; ".join(
            f"{s}: prefill {t['prefill_s']:.3f} + decode loop {t['decode_s'] - t['prefill_s']:.2f} + update "
            f"{t['update_s']:.2f} = **{t['total_s']:.2f}**"
            for s, t in m["tpu"].items()
        ),
        "",
    ]
    pg = m["per_group"]
    out += [
        f"Bridge work per step, one GPU ({m['inputs']['prompts (groups) per step']['value']:.0f} groups; per group "
        f"{pg['queries']:.0f} grounded keyframes, {pg['objects']:.0f} SAM2 objects, {pg['object_frames']:,.0f} "
        f"object-frames):",
        "",
        "| work | TFLOP | GB read | bound | H100 s | H200 s |",
        "|---|---|---|---|---|---|",
    ]
    names = list(m["bridge"]["H100"]["parts"])
    for wn in names:
        p, p2 = m["bridge"]["H100"]["parts"][wn], m["bridge"]["H200"]["parts"][wn]
        gb = f"{p['bytes'] / 1e9:,.0f}" if p["bytes"] else "-"
        out.append(
            f"| {wn} | {p['flops'] / 1e12:,.0f} | {gb} | {p['bound']} | {p['seconds']:.2f} | {p2['seconds']:.2f} |"
        )
    out.append(
        f"| **all (GPU-seconds per step)** | | | | **{m['bridge']['H100']['gpu_s']:.2f}** | "
        f"**{m['bridge']['H200']['gpu_s']:.2f}** |"
    )
    out += [
        "",
        "| slice | GPU | TPU s | bridge GPU-s | 1 GPU: sync s | 1 GPU: overlapped s | GPUs to keep the TPUs "
        "busy (work split / one group per GPU) | at that many (split): sync / overlapped s | "
        f"{m['steps'][0]['recipe_workers']} workers, one group each: sync / overlapped s | GPUs at 50 % / "
        "30 % of peak (split) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in m["steps"]:
        grouped = r["gpus_per_group"] if r["gpus_per_group"] is not None else "no (a group > the TPU step)"
        sens = " / ".join(str(v[0]) for v in r["sensitivity"].values())
        out.append(
            f"| {r['slice']} | {r['gpu']} | {r['tpu_s']:.2f} | {r['bridge_gpu_s']:.2f} | "
            f"{r['one_gpu']['sync']:.2f} | {r['one_gpu']['overlapped']:.2f} | {r['gpus_split']} / {grouped} | "
            f"{r['at_gpus_split']['sync']:.2f} / {r['at_gpus_split']['overlapped']:.2f} | "
            f"{r['at_recipe_workers']['sync']:.2f} / {r['at_recipe_workers']['overlapped']:.2f} | {sens} |"
        )
    c = m["cpu_check"]
    sp = m["sam2_params"]
    out += [
        "",
        f"Checks: the Hiera-L trunk as modelled has {sp['hiera_l_trunk_model'] / 1e6:.0f} M weights (SAM 2.1 "
        f"hiera_large: {sp['sam2_1_hiera_large_published'] / 1e6:.1f} M in all); {c['what']}: "
        f"{c['model_gflop']:.2f} GFLOP = {c['model_ms']:.0f} ms at {c['cpu_gflops']:.0f} GFLOP/s against "
        f"{c['measured_ms']:.0f} ms measured ({c['source']}).",
    ]
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=os.path.join(ROOT, "experiments", "omni_r1_7b_vos.py"))
    ap.add_argument("--set", action="append", default=[], dest="overrides", help="config override key=value")
    ap.add_argument("--aot", default=None, help="aot_scale.py --json rows (default: BENCHMARKS.md's figures)")
    ap.add_argument("--frames", type=int, default=None, help="frames per clip (default data.max_frames)")
    ap.add_argument("--keyframes", type=int, default=4, help="keyframes per rollout when grpo.num_keyframes is None")
    ap.add_argument("--boxes", type=float, default=1.0, help="System 2 boxes per keyframe")
    ap.add_argument("--distinct", type=float, default=1.0, help="share of a group's queries that are distinct")
    ap.add_argument("--decode-tokens", type=int, default=None, help="System 1 decode steps (default max_new_tokens)")
    ap.add_argument("--prompt-len", type=int, default=2048, help="System 1 prompt tokens")
    ap.add_argument("--s2-prompt-tokens", type=int, default=100, help="System 2 text tokens per keyframe prompt")
    ap.add_argument("--s2-answer-tokens", type=int, default=45, help="System 2 answer tokens")
    ap.add_argument("--gpu-efficiency", type=float, default=1.0, help="fraction of the GPU roofline reached")
    ap.add_argument("--tpu-efficiency", type=float, default=1.0, help="fraction of the TPU roofline reached")
    ap.add_argument("--json", nargs="?", const="-", default=None, help="write the model as JSON (to stdout: -)")
    args = ap.parse_args(argv)
    m = build(args)
    if args.json:
        text = json.dumps(m, indent=1)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    if args.json != "-":
        print(markdown(m))
    return m


if __name__ == "__main__":
    main()
