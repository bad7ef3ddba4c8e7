"""Benchmark of the SAM2 bridge: one-pass group batching vs per-rollout states, and the queue overhead.

    python benchmarks/bench_bridge.py                      # CPU: hiera_t at 256, N=8 x 4 keyframes x 16 frames
    python benchmarks/bench_bridge.py --device cuda --dtype bfloat16 \\
        --sam2-config configs/sam2.1/sam2.1_hiera_l.yaml --image-size 1024 --checkpoint PATH   # GPU setting

1. Group: the same detections (each rollout: 4 keyframes, one box each, on a synthetic 16-frame clip) segmented
   with the two full sweeps by (a) 8 stock ``SAM2VideoPredictor`` inference states, one per rollout (the
   baseline), (b) one stock state holding the whole group, (c) :class:`GroupSegmenter` one object at a time
   with sam2's memory-attention module, (d) batched objects, sam2's module, (e) batched objects with the
   rewritten memory attention of :mod:`sam2_bridge.server.memattn` (the bridge's default). Prints seconds and
   speed-ups vs (a).
2. Queue overhead: a ``segment`` request's (same group on a ``--queue-frames`` clip) round trip through
   ``python -m sam2_bridge.serve`` (1 worker) vs the same request body handled in-process by
   :class:`sam2_bridge.server.handler.Handler`, alternating, best of ``--queue-repeats`` each.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sam2_bridge.wire import protocol
from sam2_bridge.wire.constants import BACKGROUND, PALETTE


def make_group(num_rollouts: int, keyframes: int, frames: int, height: int, width: int, seed: int = 0):
    """A synthetic clip with three moving squares and, per rollout, ``keyframes`` boxes on random frames."""
    rng = np.random.default_rng(seed)
    clip = np.clip(np.asarray(BACKGROUND) + rng.integers(-6, 7, (frames, height, width, 3)), 0, 255).astype(np.uint8)
    objs = [("red", 0.1, 0.2, 0.6), ("blue", 0.6, 0.5, -0.3), ("green", 0.3, 0.7, 0.2)]
    boxes = np.zeros((len(objs), frames, 4), np.float32)
    s = min(height, width) // 8
    for t in range(frames):
        for k, (colour, x0, y0, vx) in enumerate(objs):
            cx = int((x0 + vx * t / frames) * width) % (width - 2 * s) + s
            cy = int(y0 * height)
            clip[t, cy - s : cy + s, cx - s : cx + s] = PALETTE[colour]
            boxes[k, t] = (cx - s, cy - s, cx + s, cy + s)
    det_rollout, det_frame, det_boxes = [], [], []
    for r in range(num_rollouts):
        for f in sorted(rng.choice(frames, keyframes, replace=False)):
            k = int(rng.integers(len(objs)))
            det_rollout.append(r)
            det_frame.append(int(f))
            det_boxes.append(boxes[k, f] + rng.normal(0, 1.5, 4))
    return clip, np.asarray(det_rollout, np.int32), np.asarray(det_frame, np.int32), np.asarray(det_boxes, np.float32)


def timed(fn, repeats: int, name: str = ""):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    if name:
        print(f"    ({name}: {best:.2f} s)", flush=True)
    return best, out


def bench_group(args) -> dict[str, float]:
    import torch

    from sam2_bridge.server.sam2_reference import as_stock, stock_group_masks, write_jpeg_clip
    from sam2_bridge.server.segmenter import GroupSegmenter, Sam2Config, build_predictor

    clip, det_r, det_f, det_b = make_group(args.rollouts, args.keyframes, args.frames, args.height, args.width)
    cfg = Sam2Config(
        config=args.sam2_config,
        checkpoint=args.checkpoint,
        image_size=args.image_size,
        device=args.device,
        dtype=args.dtype,
    )
    model = build_predictor(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        frames = write_jpeg_clip(clip, tmp)
        shape = frames.shape[:3]
        results = {}
        variants = {
            "group_fast_attention": cfg,
            "group_batched": dataclasses.replace(cfg, fast_memory_attention=False),
            "group_unbatched": dataclasses.replace(cfg, fast_memory_attention=False, batch_objects=False),
        }
        GroupSegmenter(cfg, model).segment(frames, args.rollouts, det_r[:2], det_f[:2], det_b[:2])  # warm-up
        for name, variant in variants.items():
            seg = GroupSegmenter(variant, model)
            results[name], out = timed(
                lambda: seg.segment(frames, args.rollouts, det_r, det_f, det_b).masks, args.repeats, name
            )
            if name == "group_fast_attention":
                masks = out
        if not args.skip_stock:
            stock = as_stock(model)
            if args.dtype == "bfloat16":
                ctx = torch.autocast("cuda", dtype=torch.bfloat16)
            else:
                ctx = torch.autocast(torch.device(args.device).type, enabled=False)
            with ctx:
                if not args.skip_one_state:
                    results["stock_one_state"], _ = timed(
                        lambda: stock_group_masks(
                            stock, tmp, shape, args.rollouts, det_r, det_f, det_b, per_rollout=False
                        ),
                        args.repeats,
                        "stock_one_state",
                    )
                results["stock_per_rollout"], ref = timed(
                    lambda: stock_group_masks(stock, tmp, shape, args.rollouts, det_r, det_f, det_b, per_rollout=True),
                    args.repeats,
                    "stock_per_rollout",
                )
            agree = float((ref == masks).mean())
            print(f"mask agreement with the per-rollout stock states: {agree:.6f}", flush=True)
    return results


def bench_queue(args):
    """``queue_repeats`` x (wall seconds, segmenter seconds) of the same ``segment`` request in-process and
    through a server; the two alternate (in-process, served, in-process, ...) so that drifts of the machine's
    load hit both."""
    # lazy: the bridge's server side (torch) loads only for this benchmark
    from sam2_bridge.server.handler import Handler, HandlerConfig
    from sam2_bridge.wire.client import BridgeClient
    from sam2_bridge.wire.pool import LocalServer

    clip, det_r, det_f, det_b = make_group(args.rollouts, args.keyframes, args.queue_frames, args.height, args.width)
    body = protocol.SegmentRequest(clip, args.rollouts, det_r, det_f, det_b).to_body()
    handler = Handler(
        HandlerConfig(
            segmenter="sam2",
            sam2_config=args.sam2_config,
            sam2_checkpoint=args.checkpoint,
            sam2_image_size=args.image_size,
            sam2_dtype=args.dtype,
            device=args.device,
        )
    )
    wire = protocol.decode_message(protocol.make_request("x", "segment", body))["body"]
    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            "--address",
            f"ipc://{tmp}/bench.sock",
            "--workers",
            "1",
            "--segmenter",
            "sam2",
            "--sam2-config",
            args.sam2_config,
            "--sam2-dtype",
            args.dtype,
            "--log-level",
            "WARNING",
            "--device",
            "cpu" if args.device == "cpu" else "cuda",
        ]
        argv += ["--sam2-image-size", str(args.image_size)] if args.image_size else []
        argv += ["--sam2-checkpoint", args.checkpoint] if args.checkpoint else []
        server = LocalServer(argv).start()
        try:
            with BridgeClient(server.address, deadline_s=3600) as client:
                client.wait_ready(600)
                client.submit("segment", body).result()  # warm-up
                handler.handle("segment", wire)  # warm-up
                in_process, served = [], []
                for _ in range(args.queue_repeats):
                    in_process.append(_wall_and_segment_s(lambda: handler.handle("segment", wire)))
                    served.append(_wall_and_segment_s(lambda: client.submit("segment", body).result()))
        finally:
            server.stop()
    print(
        f"    (in-process {', '.join(f'{w:.2f}' for w, _ in in_process)} s; "
        f"served {', '.join(f'{w:.2f}' for w, _ in served)} s)",
        flush=True,
    )
    return in_process, served


def _wall_and_segment_s(fn) -> tuple[float, float]:
    """(wall seconds of ``fn()``, seconds the segmenter itself took, from the reply's ``timings``)."""
    t0 = time.perf_counter()
    reply = fn()
    return time.perf_counter() - t0, float(reply["timings"]["segment_s"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sam2-config", default="configs/sam2.1/sam2.1_hiera_t.yaml")
    p.add_argument("--checkpoint", default=None, help="local SAM2 checkpoint (default: random weights)")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--rollouts", type=int, default=8)
    p.add_argument("--keyframes", type=int, default=4)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--queue-repeats", type=int, default=3)
    p.add_argument("--queue-frames", type=int, default=8, help="clip length of the queue-overhead request")
    p.add_argument("--skip-stock", action="store_true", help="skip the two stock-predictor references")
    p.add_argument("--skip-one-state", action="store_true", help="skip reference (b), one stock state")
    p.add_argument("--skip-queue", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    print(
        f"group: N={args.rollouts} rollouts x {args.keyframes} keyframes x {args.frames}-frame clip "
        f"({args.height}x{args.width}), {args.sam2_config} at {args.image_size}, {args.device} {args.dtype}",
        flush=True,
    )
    res = bench_group(args)
    base = res.get("stock_per_rollout")
    for name, sec in res.items():
        ratio = f"  speed-up vs per-rollout states: {base / sec:.2f}x" if base else ""
        print(f"  {name:20s} {sec:8.2f} s{ratio}", flush=True)
    if not args.skip_queue:
        in_process, served = bench_queue(args)
        best_in, best_served = min(w for w, _ in in_process), min(w for w, _ in served)
        print(
            f"queue overhead, wall: segment request in-process {best_in:.3f} s, via the server "
            f"{best_served:.3f} s (best of {args.queue_repeats}), {100 * (best_served / best_in - 1):+.2f}% "
            f"({1000 * (best_served - best_in):+.1f} ms; includes the segmenter's own run-to-run noise)"
        )
        outside_in = float(np.median([w - s for w, s in in_process]))
        outside_served = float(np.median([w - s for w, s in served]))
        cost = outside_served - outside_in
        print(
            f"queue overhead, outside the segmenter (median wall - segment_s): in-process "
            f"{1000 * outside_in:.1f} ms, via the server {1000 * outside_served:.1f} ms: the queue costs "
            f"{1000 * cost:+.1f} ms = {100 * cost / best_in:+.2f}% of the request"
        )


if __name__ == "__main__":
    main()
