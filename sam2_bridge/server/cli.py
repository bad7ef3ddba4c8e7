"""The bridge command's flags and ``main``: ``python -m sam2_bridge.serve --address ipc://bridge.sock ...``.

A judge-only bridge (CrossOmni judge rewards, no SAM2):
``python -m sam2_bridge.serve --address ipc://judge.sock --segmenter none --judge hf:checkpoints/JUDGE``.

Starts :class:`sam2_bridge.server.Server` (one worker per GPU, one CPU worker when there is none, or
``--workers N``) and serves until SIGINT / SIGTERM. Exits 2 on a bad flag, 3 when a worker failed to start
``--worker-start-attempts`` times in a row (printing the worker's first error).

Security: binds only ipc:// or loopback tcp:// addresses unless ``--allow-remote`` is given; reads frame
references (``FrameRef``) only under the ``--data-root`` directories (none: it reads none); with
``--token-file`` every request must carry that shared token. ``--allow-remote`` WITHOUT ``--token-file`` is
unauthenticated: anyone who reaches the port can use the bridge's GPUs and read the images under its roots.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from sam2_bridge.server.broker import Server, check_address
from sam2_bridge.server.grounder import GROUNDERS, load_plugin
from sam2_bridge.server.judge import check_judge_dir, parse_judge_spec
from sam2_bridge.wire.budget import add_budget_flags, budget_from_args
from sam2_bridge.wire.command import EXIT_BAD_FLAGS, read_token_file


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sam2_bridge.serve", description="Serve System-2 grounding and SAM2 masks to the JAX trainer."
    )
    p.add_argument("--address", required=True, help="where clients connect: ipc://PATH.sock or tcp://127.0.0.1:PORT")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding a non-loopback tcp address (e.g. tcp://0.0.0.0:5555 for a remote pool); "
        "without --token-file anyone who reaches the port is served (unauthenticated)",
    )
    p.add_argument(
        "--token-file",
        default=None,
        metavar="PATH",
        help="require every request to carry this file's content (stripped) as its shared token, "
        "checked in constant time before the body is decoded; clients: BridgeClient(..., "
        "token_file=PATH). Plain text over tcp://: use it on a trusted network or a tunnel",
    )
    p.add_argument(
        "--workers", type=int, default=0, help="worker processes (default: one per visible CUDA GPU, else 1 CPU worker)"
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda: device family of the workers")
    p.add_argument(
        "--torch-threads", type=int, default=0, help="torch CPU threads per worker (default: CPU cores / workers)"
    )
    p.add_argument(
        "--segmenter",
        choices=("sam2", "synthetic", "none"),
        default="sam2",
        help="sam2: SAM2 video predictor; synthetic: colour-region tracker for the synthetic world; "
        "none: no grounding / segmentation (a judge-only bridge)",
    )
    p.add_argument(
        "--sam2-config",
        default="configs/sam2.1/sam2.1_hiera_l.yaml",
        help="packaged sam2 hydra config (e.g. configs/sam2.1/sam2.1_hiera_t.yaml)",
    )
    p.add_argument(
        "--sam2-checkpoint", default=None, help="local SAM2 checkpoint .pt (default: random weights, for tests only)"
    )
    p.add_argument(
        "--sam2-image-size",
        type=int,
        default=None,
        help="override the config's image size (multiple of 16; e.g. 256 for CPU tests)",
    )
    p.add_argument(
        "--sam2-dtype",
        choices=("float32", "bfloat16"),
        default="float32",
        help="bfloat16 runs SAM2 under CUDA autocast",
    )
    p.add_argument("--sam2-seed", type=int, default=0, help="torch seed for random SAM2 weights")
    p.add_argument(
        "--no-batch-objects", action="store_true", help="run SAM2 objects one at a time instead of in batches"
    )
    p.add_argument(
        "--sam2-object-batch",
        type=int,
        default=None,
        help="most SAM2 objects per batched call (default: 8 on CPU, 64 on CUDA)",
    )
    p.add_argument(
        "--grounder",
        default="synthetic",
        help="qwen2_5_vl:PATH | qwen2_5_omni:PATH (local model directories) | synthetic | KIND:PATH of a "
        "plug-in (--grounder-plugin)",
    )
    p.add_argument(
        "--grounder-plugin",
        action="append",
        default=[],
        metavar="MODULE_OR_FILE",
        help="import this module (or .py file) in every worker before building the grounder; it "
        "registers grounder kinds with sam2_bridge.server.grounder.register_grounder (repeatable)",
    )
    p.add_argument("--grounder-dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--grounder-max-new-tokens", type=int, default=256)
    p.add_argument(
        "--grounder-max-pixels",
        type=int,
        default=900 * 28 * 28,
        help="largest keyframe the grounder sees (pixels; docs/design.md §6.2: 900*28*28)",
    )
    p.add_argument(
        "--judge",
        default=None,
        metavar="KIND:PATH",
        help="serve 'judge' requests (CrossOmni judge rewards) with a text model: hf:PATH = a local "
        "transformers causal-LM directory (model + tokenizer), greedy batched decoding; "
        "default: no judge ('judge' requests get the error no_judge)",
    )
    p.add_argument("--judge-dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    p.add_argument("--judge-max-batch", type=int, default=16, help="most judge prompts decoded together")
    p.add_argument(
        "--data-root",
        action="append",
        default=[],
        help="read frame references (FrameRef) only under this directory (repeatable); without it "
        "every FrameRef is refused ('forbidden') and clients must send frames as arrays",
    )
    p.add_argument(
        "--max-message-bytes",
        type=int,
        default=512 * 1024 * 1024,
        help="largest accepted message body (a 24-frame 1080p uint8 clip is 150 MB)",
    )
    p.add_argument(
        "--worker-start-attempts",
        type=int,
        default=5,
        help="failed worker starts in a row (exit before ready) before the server exits 3",
    )
    p.add_argument(
        "--worker-start-backoff-s",
        type=float,
        default=1.0,
        help="pause before restarting a worker that failed to start, doubled each time (<= 30 s)",
    )
    add_budget_flags(p)
    p.add_argument("--log-level", default="INFO")
    return p


def _check_bind_target(address: str) -> None:
    """What check_address leaves to bind time: the tcp port's range, the ipc socket's directory."""
    if address.startswith("tcp://"):
        port = int(address.rpartition(":")[2])
        if not 1 <= port <= 65535:
            raise ValueError(f"--address {address!r}: port {port} is not in 1..65535")
    elif address.startswith("ipc://"):
        folder = os.path.dirname(os.path.abspath(address[len("ipc://") :]))
        if not os.path.isdir(folder):
            raise ValueError(f"--address {address!r}: directory {folder} does not exist")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        _check_bind_target(check_address(args.address, args.allow_remote))
        budget, limits = budget_from_args(args)
        token = read_token_file(args.token_file) if args.token_file else None
    except (ValueError, OSError) as e:
        print(f"python -m sam2_bridge.serve: error: {e}", file=sys.stderr)
        return EXIT_BAD_FLAGS
    if args.allow_remote and token is None:
        logging.getLogger("sam2_bridge").warning(
            "--allow-remote without --token-file: this bridge is unauthenticated; anyone who reaches %s can use it",
            args.address,
        )
    if args.grounder_plugin or args.grounder.partition(":")[0] not in ("synthetic", "qwen2_5_vl", "qwen2_5_omni"):
        try:  # an unknown kind or a broken plug-in is a flag error now, not a worker that never starts
            check_grounder_spec(args.grounder, args.grounder_plugin)
        except Exception as e:
            print(f"python -m sam2_bridge.serve: error: {type(e).__name__}: {e}", file=sys.stderr)
            return EXIT_BAD_FLAGS
    if args.judge:
        try:
            check_judge_dir(parse_judge_spec(args.judge)[1])
        except ValueError as e:
            raise SystemExit(f"error: {e}") from None
    device = args.device
    n_gpu = 0
    if device in ("auto", "cuda"):
        import torch

        n_gpu = torch.cuda.device_count()
        if device == "cuda" and n_gpu == 0:
            raise SystemExit("--device cuda but no CUDA device is visible")
    if n_gpu and device != "cpu":
        n = args.workers or n_gpu
        devices = [f"cuda:{i % n_gpu}" for i in range(n)]
    else:
        devices = ["cpu"] * (args.workers or 1)
    threads = args.torch_threads or max(1, (os.cpu_count() or 1) // len(devices))
    handler_config = dict(
        segmenter=args.segmenter,
        sam2_config=args.sam2_config,
        sam2_checkpoint=args.sam2_checkpoint,
        sam2_image_size=args.sam2_image_size,
        sam2_dtype=args.sam2_dtype,
        sam2_seed=args.sam2_seed,
        sam2_batch_objects=not args.no_batch_objects,
        sam2_object_batch=args.sam2_object_batch,
        grounder=args.grounder,
        grounder_plugins=[os.path.abspath(p) if p.endswith(".py") or os.sep in p else p for p in args.grounder_plugin],
        grounder_dtype=args.grounder_dtype,
        grounder_max_new_tokens=args.grounder_max_new_tokens,
        grounder_max_pixels=args.grounder_max_pixels,
        data_roots=args.data_root,
        judge=args.judge,
        judge_dtype=args.judge_dtype,
        judge_max_batch=args.judge_max_batch,
    )
    server = Server(
        args.address,
        handler_config,
        devices,
        allow_remote=args.allow_remote,
        torch_threads=threads,
        max_message_bytes=args.max_message_bytes,
        token=token,
        budget=budget,
        limits=limits,
        max_start_failures=args.worker_start_attempts,
        start_backoff_s=args.worker_start_backoff_s,
    )
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    signal.signal(signal.SIGINT, lambda *_: server.stop())
    code = server.serve_forever()
    if server.fatal:
        print(f"error: {server.fatal}", file=sys.stderr)
    return code


def check_grounder_spec(spec: str, plugins: list[str]) -> None:
    """ValueError unless ``spec`` names ``synthetic`` or a kind registered once ``plugins`` are imported."""
    for plugin in plugins:
        load_plugin(plugin)
    kind, sep, path = spec.partition(":")
    if spec != "synthetic" and (not sep or not path or kind not in GROUNDERS):
        raise ValueError(f"--grounder {spec!r}: expected synthetic or KIND:PATH with KIND one of {sorted(GROUNDERS)}")
