"""What the model of the whole step (``benchmarks/step_model.py``) assumes, measured on a GPU, beside the model's
own figure for the same work. Random weights throughout: the work, not the answers, is what is timed.

- ``sam2``: the bridge's group pass (``GroupSegmenter``, SAM2.1 ``hiera_l`` at 1024, bf16 autocast) over one
  group: ``--rollouts`` x ``--keyframes`` detections, one box each, on a ``--frames`` clip. Reports the image
  encoder's frames/s (``forward_image`` alone, ``--encode-batch`` frames a call), the group pass's seconds and
  object-frames/s (each tracked object on every frame but its prompt frame, both sweeps), and the seconds
  ``step_model.group_work`` gives the same group at this GPU's peak.
- ``grounder``: System 2 as the bridge runs it (``QwenBackend.ground``: processor, greedy ``generate``, parsing)
  with a random Qwen2.5-Omni-7B Thinker in bf16, batches of 16 keyframes (1280 x 720 frames, scaled to the
  grounder's pixel cap), every answer exactly ``--answer-tokens`` tokens (generation's minimum = maximum). The
  special token ids are the offline test tokenizer's (``omnir1_jax.testing``), so its text tokens are more than a
  real tokenizer's; the model's figure is computed for the token counts actually run.
- ``update``: the learner's GRPO update (``aot_scale.update_step``: the reference's log-probs, the loss and its
  gradient through the learner's group scorer, AdamW on float32 master weights) on a random ``qwen2_5_omni_3b``
  Thinker (bf16 compute, full remat) on one GPU: seconds per update and MFU = model FLOPs
  (``aot_scale.analytic_flops``) / seconds / peak. About 80 GB of weights, gradients and moments: an H200.

``--tiny`` runs each part with CPU settings (SAM2.1 ``hiera_t`` at 256, the tiny Thinker, small shapes); its
timings mean nothing, it checks what the script counts (``tests/benchmarks/test_bench_step_inputs.py``).
``--part all`` (default) runs each part in its own process, so PyTorch and JAX never share the GPU's memory.

    python benchmarks/bench_step_inputs.py --json runs/step_inputs.json     # on a GPU (H200 for the update)
    python benchmarks/bench_step_inputs.py --tiny --part sam2              # the CPU check
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import step_model  # noqa: E402

PARTS = ("sam2", "grounder", "update")


def gpu_peak(name: str) -> dict | None:
    """The ``step_model.GPUS`` entry whose key is in the device name (e.g. 'NVIDIA H200'), else None."""
    for key, gpu in step_model.GPUS.items():
        if key.lower() in name.lower():
            return dict(gpu, name=key)
    return None


def _timed(fn, repeats: int, sync) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times, out


def _torch_device(args):
    import torch

    if args.tiny:
        return "cpu", "float32", (lambda: None), "cpu"
    if not torch.cuda.is_available():
        raise SystemExit("bench_step_inputs: no CUDA device (use --tiny for the CPU check)")
    return "cuda", "bfloat16", torch.cuda.synchronize, torch.cuda.get_device_name()


def _model_seconds(gpu, work: dict, names) -> float | None:
    if gpu is None:
        return None
    return sum(step_model.roofline_seconds(gpu, *work[n]) for n in names)


# ------------------------------------------------------------------------------------------------- SAM2
def part_sam2(args) -> dict:
    import torch

    from benchmarks.bench_bridge import make_group
    from omnir1_jax.models.qwen2_5_omni import qwen2_5_omni_7b
    from sam2_bridge.server.segmenter import GroupSegmenter, Sam2Config, build_predictor, preprocess_frames

    device, dtype, sync, name = _torch_device(args)
    arch, size = ("hiera_t", 256) if args.tiny else ("hiera_l", 1024)
    cfg = Sam2Config(config=f"configs/sam2.1/sam2.1_{arch}.yaml", image_size=size, device=device, dtype=dtype)
    seg = GroupSegmenter(cfg, build_predictor(cfg))
    clip, det_r, det_f, det_b = make_group(args.rollouts, args.keyframes, args.frames, args.height, args.width)
    run = lambda: seg.segment(clip, args.rollouts, det_r, det_f, det_b)
    _timed(run, 1, sync)  # warm-up
    times, out = _timed(run, args.repeats, sync)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if dtype == "bfloat16" else torch.autocast(device, enabled=False)
    )
    pixels = preprocess_frames(clip[: args.encode_batch], size).to(device)
    with torch.inference_mode(), autocast:
        enc_times, _ = _timed(lambda: seg.model.forward_image(pixels), args.repeats + 1, sync)
    group_s, per_frame = statistics.median(times), statistics.median(enc_times[1:]) / len(pixels)
    objects = int(out.timings["objects_tracked"])
    object_frames = 2 * objects * (args.frames - 1)
    work = step_model.group_work(
        qwen2_5_omni_7b(),
        queries=0,
        objects=objects,
        frames=args.frames,
        s2_image_tokens=0,
        s2_text_tokens=0,
        s2_answer_tokens=0,
        image_size=size,
        arch=arch,
    )
    gpu = gpu_peak(name)
    sam2_parts = ("SAM2 image encoder", "SAM2 memory attention", "SAM2 mask decoder + memory encoder")
    model_s = _model_seconds(gpu, work, sam2_parts)
    enc_model = _model_seconds(gpu, work, sam2_parts[:1])
    return {
        "part": "sam2",
        "arch": arch,
        "image_size": size,
        "frames": args.frames,
        "detections": len(det_r),
        "objects_tracked": objects,
        "object_frames": object_frames,
        "group_s": group_s,
        "group_s_all": times,
        "encoder_frames_per_s": 1.0 / per_frame,
        "object_frames_per_s": object_frames / max(group_s - args.frames * per_frame, 1e-9),
        "model_flops": sum(work[n][0] for n in sam2_parts),
        "model_group_s": model_s,
        "model_encoder_frames_per_s": args.frames / enc_model if enc_model else None,
        "fraction_of_peak": model_s / group_s if model_s else None,
        "device": name,
    }


# ---------------------------------------------------------------------------------------------- System 2
def part_grounder(args) -> dict:
    import torch
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    from omnir1_jax.models.qwen2_5_omni import qwen2_5_omni_7b, tiny
    from omnir1_jax.models.qwen2_5_omni.testing import build_tiny_processor
    from sam2_bridge.server.grounder import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, QwenBackend

    device, dtype, sync, name = _torch_device(args)
    small = tiny()
    ids = {f.name: getattr(small, f.name) for f in dataclasses.fields(small) if f.name.endswith("_token_id")}
    mcfg = small if args.tiny else dataclasses.replace(qwen2_5_omni_7b(), **ids)  # the offline tokenizer's ids
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16 if dtype == "bfloat16" else torch.float32)
    try:
        with torch.device(device):
            model = Qwen2_5OmniThinkerForConditionalGeneration(Qwen2_5OmniThinkerConfig(**mcfg.to_hf_dict()))
    finally:
        torch.set_default_dtype(default)
    model.generation_config.min_new_tokens = args.answer_tokens  # random weights: no early end of an answer
    max_pixels = 64 * 28 * 28 if args.tiny else DEFAULT_MAX_PIXELS
    processor = build_tiny_processor()
    processor.chat_template = processor.tokenizer.chat_template  # the bridge's prompts go through the template
    backend = QwenBackend.from_model(
        "qwen2_5_omni",
        model,
        processor,
        device=device,
        max_new_tokens=args.answer_tokens,
        max_pixels=max_pixels,
        min_pixels=min(DEFAULT_MIN_PIXELS, max_pixels),
        batch_size=args.grounder_batch,
    )
    generated, inputs_seen = [], []
    generate = model.generate

    def counting_generate(**kw):  # records what each batch ran: prompt tokens and new tokens
        out = generate(**kw)
        inputs_seen.append((kw["input_ids"].shape, kw["image_grid_thw"].tolist()))
        generated.append(out.shape[1] - kw["input_ids"].shape[1])
        return out

    model.generate = counting_generate
    h, w = (56, 84) if args.tiny else (720, 1280)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(args.grounder_batch)]
    descriptions = ["the small red square moving to the left"] * len(images)
    run = lambda: backend.ground(images, descriptions)
    _timed(run, 1, sync)  # warm-up
    times, answers = _timed(run, args.repeats, sync)
    (rows, prompt_len), grid = inputs_seen[-1]
    image_tokens = int(np.prod(grid[0])) // 4  # 2 x 2 patches merged into one token
    keyframe_s = statistics.median(times) / len(images)
    work = step_model.group_work(
        qwen2_5_omni_7b() if not args.tiny else small,
        queries=len(images),
        objects=0,
        frames=1,
        s2_image_tokens=image_tokens,
        s2_text_tokens=prompt_len - image_tokens,
        s2_answer_tokens=args.answer_tokens,
        s2_batch=args.grounder_batch,
    )
    gpu = gpu_peak(name)
    s2_parts = ("System 2 vision encoder", "System 2 prefill", "System 2 decode")
    model_s = _model_seconds(gpu, work, s2_parts)
    return {
        "part": "grounder",
        "keyframes": len(images),
        "answers": len(answers),
        "rows_per_batch": rows,
        "prompt_tokens": prompt_len,
        "image_tokens": image_tokens,
        "answer_tokens": sorted(set(generated)),
        "batch_s_all": times,
        "keyframes_per_s": 1.0 / keyframe_s,
        "model_flops": sum(work[n][0] for n in s2_parts),
        "model_batch_s": model_s,
        "model_keyframes_per_s": len(images) / model_s if model_s else None,
        "fraction_of_peak": model_s / statistics.median(times) if model_s else None,
        "device": name,
    }


# ------------------------------------------------------------------------------------------------ update
def part_update(args) -> dict:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from benchmarks.aot_scale import Shapes, analytic_flops, build_prompt, update_step
    from omnir1_jax.config import GRPOSpec, ModelSpec
    from omnir1_jax.models.qwen2_5_omni import repeat_prompt
    from omnir1_jax.policy import build_policy, make_scorer
    from omnir1_jax.rl.update import LossSpec, make_optimizer

    spec = ModelSpec(preset="tiny" if args.tiny else "qwen2_5_omni_3b", dtype="bfloat16", remat=True)
    g = GRPOSpec()  # the recipe's loss: clip range, beta, KL estimator, aggregation
    policy = build_policy(spec, seed=0)  # float32 masters, bf16 compute (the learner's precision policy)
    mcfg = policy.config
    s = Shapes(
        prompts=args.prompts,
        group=args.group,
        prompt_len=args.prompt_len,
        completion_len=args.completion_len,
        frames=args.update_frames,
        frame_units=(2, 4) if args.tiny else (8, 16),
        image=False,
        audio_frames=0,
    )
    opt = nnx.Optimizer(policy, make_optimizer(1e-6, weight_decay=0.0), wrt=nnx.Param)
    pg, pstate = nnx.split(policy)
    og, ostate = nnx.split(opt)
    rstate = jax.tree.map(lambda x: x.astype(jnp.bfloat16) if jnp.issubdtype(x.dtype, jnp.floating) else x, pstate)
    scorer = make_scorer(True, 1.0, group_size=s.group)
    loss = LossSpec(
        epsilon_low=g.epsilon_low,
        epsilon_high=g.epsilon_high,
        beta=g.beta,
        kl=g.kl,
        agg=g.agg,
        max_len=s.completion_len,
    )
    fn = jax.jit(update_step(pg, og, scorer, loss, g.beta), donate_argnums=(0, 1))
    prompt = repeat_prompt(build_prompt(mcfg, s), s.group)
    rng = np.random.default_rng(0)
    comp = jnp.asarray(rng.integers(5, mcfg.text.vocab_size - 1, (s.rows, s.completion_len)), jnp.int32)
    adv = jnp.asarray(rng.standard_normal(s.rows), jnp.float32)
    flops = analytic_flops(mcfg, pstate, s, "update")
    t0 = time.perf_counter()
    pstate, ostate, metrics = fn(pstate, ostate, rstate, prompt, comp, adv)
    jax.block_until_ready(pstate)
    compile_s = time.perf_counter() - t0
    times, losses = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        pstate, ostate, metrics = fn(pstate, ostate, rstate, prompt, comp, adv)
        jax.block_until_ready((pstate, metrics))
        times.append(time.perf_counter() - t0)
        losses.append(float(metrics["loss"]))
    dev = jax.devices()[0]
    gpu = gpu_peak(dev.device_kind) if dev.platform == "gpu" else None
    step_s = statistics.median(times)
    return {
        "part": "update",
        "model": spec.preset,
        "params": int(sum(x.size for x in jax.tree.leaves(pstate))),
        "rows": s.rows,
        "prompt_len": s.prompt_len,
        "completion_len": s.completion_len,
        "frames": s.frames,
        "compile_s": compile_s,
        "update_s_all": times,
        "update_s": step_s,
        "losses": losses,
        "model_flops": flops,
        "mfu": flops / step_s / gpu["peak"] if gpu else None,
        "device": dev.device_kind,
    }


# ---------------------------------------------------------------------------------------------------- CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=(*PARTS, "all"), default="all")
    p.add_argument("--tiny", action="store_true", help="CPU settings (checks the counts; timings mean nothing)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", help="append one JSON row per part to this file")
    g = p.add_argument_group("sam2")
    g.add_argument("--rollouts", type=int, default=8)
    g.add_argument("--keyframes", type=int, default=4)
    g.add_argument("--frames", type=int, default=24)
    g.add_argument("--height", type=int, default=720)
    g.add_argument("--width", type=int, default=1280)
    g.add_argument("--encode-batch", type=int, default=4)
    g = p.add_argument_group("grounder")
    g.add_argument("--answer-tokens", type=int, default=40)
    g.add_argument("--grounder-batch", type=int, default=16)
    g = p.add_argument_group("update")
    g.add_argument("--prompts", type=int, default=2)
    g.add_argument("--group", type=int, default=8)
    g.add_argument("--prompt-len", type=int, default=2048)
    g.add_argument("--completion-len", type=int, default=256)
    g.add_argument("--update-frames", type=int, default=24)
    return p


def _tiny_defaults(args, argv: list[str]) -> None:
    given = {a.split("=", 1)[0] for a in argv}
    for flag, value in {
        "--rollouts": 2,
        "--keyframes": 2,
        "--frames": 4,
        "--height": 64,
        "--width": 96,
        "--encode-batch": 2,
        "--answer-tokens": 5,
        "--grounder-batch": 2,
        "--group": 2,
        "--prompt-len": 64,
        "--completion-len": 8,
        "--update-frames": 2,
        "--repeats": 1,
    }.items():
        if flag not in given:
            setattr(args, flag[2:].replace("-", "_"), value)


def _write(path: str | None, row: dict) -> None:
    print(json.dumps(row), flush=True)
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(dict(row, machine=platform.node(), date=time.strftime("%Y-%m-%d"))) + "\n")


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.tiny:
        _tiny_defaults(args, argv)
    if args.part != "all":
        print(f"[step_inputs] {args.part} ...", flush=True)
        _write(args.json, {"sam2": part_sam2, "grounder": part_grounder, "update": part_update}[args.part](args))
        return
    failed = []
    for part in PARTS:  # each in its own process: PyTorch and JAX never share the GPU
        env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false") if part != "update" else os.environ
        rc = subprocess.run([sys.executable, __file__, *argv, "--part", part], env=env).returncode
        if rc:
            failed.append(part)
            print(f"[step_inputs] {part} failed (exit {rc}); the other parts go on", flush=True)
    if failed:
        raise SystemExit(f"bench_step_inputs: {', '.join(failed)} failed")


if __name__ == "__main__":
    main()
