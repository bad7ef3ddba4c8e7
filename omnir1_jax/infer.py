"""Two-system inference on one video: System 1 picks moments and rewrites the query, System 2 + SAM2 segment.

    python -m omnir1_jax.infer --video DIR_OR_MP4 --query "the red circle" --policy PATH [--audio WAV] \
        [--bridge ipc://bridge.sock | --grounder KIND[:PATH] --segmenter synthetic|sam2 ...] --out DIR

Steps (docs/design.md §2.2, §6.2 and §7.5): the video is decoded at full resolution (PyAV for files, PIL for frame
folders); System 1 (the Flax Thinker, greedy) sees at most ``--max-frames`` (24) evenly sampled frames at the
low System-1 resolution (128*28*28 px) plus the audio, shown at 2 fps, and answers keyframes + descriptions;
the keyframes are mapped back to positions in the full video; the bridge grounds each description on its
high-resolution keyframe (System 2) and SAM2 propagates the boxes over the **full** video. Written under
``--out``: ``masks/<frame>.png`` (one 0/255 PNG per frame at the original resolution), ``contact_sheet.png``,
``overlay.mp4`` (``--overlay-video``) and ``answer.json``; System 1's reasoning and moments are printed.

Tasks: ``vos`` (Figure-3 prompt, keyframes in a JSON answer), ``avs`` (Figure-4 prompt, video + audio, one
description grounded on the first frame) and ``refaid`` (first frame as an image + audio, as RefAID trains).

The prediction itself (System 1 greedy, keyframes mapped to the video, the bridge) is the evaluator's
(:mod:`omnir1_jax.evaluation`, also behind :mod:`omnir1_jax.evaluate` and training); this module builds the
one-video batch (:func:`system1_batch`), runs it and writes the outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from omnir1_jax.cli import guarded_main
from omnir1_jax.config import BridgeSpec, ConfigError, ModelSpec, load_config
from omnir1_jax.crossomni.media import read_audio, read_video, write_video
from omnir1_jax.data import transforms
from omnir1_jax.data.pipeline import collate
from omnir1_jax.data.schema import FPS_S1, ExpressionRecord
from omnir1_jax.evaluation.figures import overlay_sheet, save_sheet, tint
from omnir1_jax.evaluation.results import write_masks
from omnir1_jax.evaluation.two_system import TASKS, Moment, Prediction, predict_batch
from omnir1_jax.runtime.bridge import open_bridge
from omnir1_jax.testing.tokenizer import build_tiny_tokenizer


# ------------------------------------------------------------------------------------------- System 1 input
def system1_batch(
    frames: np.ndarray,
    query: str,
    tokenizer,
    *,
    task: str = "vos",
    max_frames: int = 24,
    s1_min_pixels: int = 16 * 28 * 28,
    s1_max_pixels: int = 128 * 28 * 28,
    audio: np.ndarray | None = None,
    name: str = "video",
    prompt: str = "paper",
) -> dict[str, Any]:
    """A one-example batch (the evaluation pipeline's layout) for a decoded video.

    Runs the same transforms as the Grain evaluation pipeline (frame sampling ``linspace(0, L-1, n)``,
    System-1 view, Whisper features, the paper's prompt, chat template and placeholder expansion) on frames that
    are already in memory. ``frames``: uint8 ``[L, H, W, 3]``; ``audio``: mono 16 kHz waveform or None;
    ``prompt``: ``"paper"``, ``"short"`` or ``"minimal"`` (the compact VOS prompts of tiny policies).
    """
    # lazy: the policy module pulls in flax
    from omnir1_jax.policy import pad_id_of

    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [L, H, W, 3], got {frames.dtype} {frames.shape}")
    names = tuple(f"{i:05d}" for i in range(len(frames)))
    rec = ExpressionRecord(
        dataset="infer",
        split="infer",
        video_id=name,
        exp_id="0",
        expression=query,
        frame_names=names,
        frame_paths=tuple(f"{name}#{n}" for n in names),
        audio_waveform=None if audio is None else np.asarray(audio, np.float32),
    )
    idx = transforms.sample_frame_indices(len(frames), max_frames)
    if task == "refaid":
        idx = idx[:1]
    ex: dict[str, Any] = {
        "record": rec,
        "frame_indices": idx,
        "frames": frames[idx],
        "orig_size": np.asarray(frames.shape[1:3], np.int32),
    }
    ex = transforms.GroundTruth().map(ex)
    ex = transforms.System1View(s1_min_pixels, s1_max_pixels, FPS_S1, "image" if task == "refaid" else "video").map(ex)
    ex = transforms.AudioFeatures().map(ex)
    ex = transforms.BuildPrompt(
        "vos" if task == "vos" else "avs", FPS_S1, random_timestamps=False, style=prompt if task == "vos" else "paper"
    ).random_map(ex, np.random.default_rng(0))
    ex = transforms.Tokenize(tokenizer).map(ex)
    return collate([transforms.Finalize(keep_frames=True).map(ex)], pad_id=pad_id_of(tokenizer))


def contact_sheet(
    frames: np.ndarray,
    masks: np.ndarray,
    path: str,
    moments: Sequence[Moment] = (),
    columns: int = 4,
    title: str = "",
    max_frames: int = 8,
) -> str:
    """Up to ``max_frames`` labelled frames in a grid with the prediction filled green (the keyframes System 1
    chose always included, labelled in yellow), the query as the title."""
    image, _ = overlay_sheet(
        frames,
        masks,
        None,
        title=title,
        keyframes=[m.video_index for m in moments],
        max_frames=max_frames,
        columns=columns,
    )
    return save_sheet(image, path)


def print_prediction(pred: Prediction, fps_video: float | None, file=sys.stdout) -> None:
    print("System 1 reasoning:", pred.reasoning or "(none)", file=file)
    if not pred.valid:
        print(f"System 1 answer did not parse; no moments (answer: {pred.text[:300]!r})", file=file)
    for m in pred.moments:
        when = f", {m.video_index / fps_video:.2f} s in the video" if fps_video else ""
        print(
            f"  moment: clip frame {m.clip_index} ({m.time_s:.2f} s at {FPS_S1:g} fps) -> video frame "
            f"{m.video_index}{when}: {m.description!r}",
            file=file,
        )


# ------------------------------------------------------------------------------------------------------ CLI
def load_policy(path: str, *, dtype: str = "float32", seed: int = 0):
    """A Thinker from a local Hugging Face directory, or ``tiny`` (random init, for smoke runs)."""
    # lazy: the policy module pulls in flax
    from omnir1_jax.policy import build_policy

    if path == "tiny":
        return build_policy(ModelSpec(preset="tiny", dtype=dtype), seed=seed, trainable=False)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--policy: no such directory: {path}")
    return build_policy(ModelSpec(checkpoint=path, dtype=dtype), seed=seed, trainable=False)


def load_tokenizer(spec: str | None, policy_path: str):
    """``tiny`` -> the offline tiny tokenizer; a directory -> AutoTokenizer; None -> the policy's directory
    when it holds a tokenizer, else the tiny one for the ``tiny`` policy."""
    if spec == "tiny" or (spec is None and policy_path == "tiny"):
        return build_tiny_tokenizer()
    path = spec or policy_path
    if not os.path.exists(os.path.join(path, "tokenizer_config.json")):
        raise FileNotFoundError(
            f"no tokenizer in {path} (pass --tokenizer DIR, or --tokenizer tiny for the tiny test models)"
        )
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m omnir1_jax.infer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--video", required=True, help="a video file (mp4, mkv, ...) or a folder of frame images")
    p.add_argument("--query", required=True, help="the referring expression / question")
    p.add_argument("--policy", required=True, help="System 1: a local HF Thinker directory, or 'tiny'")
    p.add_argument("--tokenizer", default=None, help="tokenizer directory or 'tiny' (default: the policy's)")
    p.add_argument("--audio", default=None, help="audio file (default: the video file's own track, if any)")
    p.add_argument("--no-audio", action="store_true", help="ignore any audio")
    p.add_argument("--task", choices=TASKS, default="vos")
    p.add_argument("--out", default="runs/infer", help="output directory")
    p.add_argument(
        "--config",
        default=None,
        help="experiment file (or FILE:VARIANT) the policy was trained with: the defaults of --max-frames, "
        "--prompt and --s1-{max,min}-pixels come from its data section",
    )
    p.add_argument("--max-frames", type=int, default=None, help="frames System 1 sees (default 24, the paper's)")
    p.add_argument(
        "--prompt",
        choices=("paper", "short", "minimal"),
        default=None,
        help="System-1 prompt the policy was trained with (default paper: Figure 3/4; the CPU demo: minimal)",
    )
    p.add_argument("--s1-max-pixels", type=int, default=None, help="default 128 * 28 * 28")
    p.add_argument("--s1-min-pixels", type=int, default=None, help="default 16 * 28 * 28")
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--stride", type=int, default=1, help="segment every stride-th frame of the video")
    p.add_argument("--max-video-frames", type=int, default=None, help="decode at most this many frames")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--bridge", default=None, help="connect to a running bridge (ipc://... or tcp://...)")
    p.add_argument(
        "--grounder", default="synthetic", help="local bridge: synthetic | qwen2_5_vl:PATH | qwen2_5_omni:PATH"
    )
    p.add_argument("--segmenter", choices=("synthetic", "sam2"), default="synthetic")
    p.add_argument("--sam2-config", default="configs/sam2.1/sam2.1_hiera_l.yaml")
    p.add_argument("--sam2-checkpoint", default=None)
    p.add_argument("--overlay-video", action="store_true", help="also write overlay.mp4")
    return p


@guarded_main
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    defaults = {"max_frames": 24, "prompt": "paper", "s1_max_pixels": 128 * 28 * 28, "s1_min_pixels": 16 * 28 * 28}
    if args.config:
        try:
            d = load_config(args.config).data
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        defaults = {
            "max_frames": d.max_frames,
            "prompt": d.prompt,
            "s1_max_pixels": d.s1_max_pixels,
            "s1_min_pixels": d.s1_min_pixels,
        }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    t0 = time.time()
    video = read_video(
        args.video,
        stride=args.stride,
        max_frames=args.max_video_frames,
        with_audio=not args.no_audio and args.audio is None,
    )
    audio = None if args.no_audio else (read_audio(args.audio) if args.audio else video.audio)
    print(
        f"[infer] {video.num_frames} frames {video.frames.shape[1]}x{video.frames.shape[2]}"
        f"{' + audio %.1f s' % (audio.size / 16000) if audio is not None else ''}",
        flush=True,
    )
    tokenizer = load_tokenizer(args.tokenizer, args.policy)
    policy = load_policy(args.policy, dtype=args.dtype)
    batch = system1_batch(
        video.frames,
        args.query,
        tokenizer,
        task=args.task,
        max_frames=args.max_frames,
        prompt=args.prompt,
        s1_min_pixels=args.s1_min_pixels,
        s1_max_pixels=args.s1_max_pixels,
        audio=audio,
        name=os.path.basename(os.path.normpath(args.video)),
    )
    os.makedirs(args.out, exist_ok=True)
    if args.bridge:
        spec = BridgeSpec(start=False, addresses=(args.bridge,))
    else:
        spec = BridgeSpec(
            start=True,
            grounder=args.grounder,
            segmenter=args.segmenter,
            sam2_config=args.sam2_config,
            sam2_checkpoint=args.sam2_checkpoint,
            workers=1,
        )
    bridge = open_bridge(spec, args.out)
    try:
        pred = predict_batch(
            policy, tokenizer, bridge.client, batch, [video.frames], task=args.task, max_new_tokens=args.max_new_tokens
        )[0]
    finally:
        bridge.close()
    print_prediction(pred, video.fps)
    write_masks(os.path.join(args.out, "masks"), pred.masks, video.names)
    contact_sheet(video.frames, pred.masks, os.path.join(args.out, "contact_sheet.png"), pred.moments, title=args.query)
    if args.overlay_video:
        tinted = np.stack([tint(f, m) for f, m in zip(video.frames, pred.masks)])
        write_video(os.path.join(args.out, "overlay.mp4"), tinted, video.fps or 10.0)
    with open(os.path.join(args.out, "answer.json"), "w") as f:
        json.dump(
            {
                "query": args.query,
                "video": args.video,
                "num_frames": video.num_frames,
                "mask_pixels": int(pred.masks.sum()),
                **pred.to_json(),
            },
            f,
            indent=1,
        )
    print(
        f"[infer] wrote {video.num_frames} masks to {os.path.join(args.out, 'masks')} and the contact sheet "
        f"({time.time() - t0:.1f} s)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
