"""Two-system inference on one video: System 1 picks moments and rewrites the query, System 2 + SAM2 segment.

    python -m omnir1_jax.infer --video DIR_OR_MP4 --query "the red circle" --policy PATH [--audio WAV] \
        [--bridge ipc://bridge.sock | --grounder KIND[:PATH] --segmenter synthetic|sam2 ...] --out DIR

Steps (SPEC sections 2, 5 and 6): the video is decoded at full resolution (PyAV for files, PIL for frame
folders); System 1 (the Flax Thinker, greedy) sees at most ``--max-frames`` (24) evenly sampled frames at the
low System-1 resolution (128*28*28 px) plus the audio, shown at 2 fps, and answers keyframes + descriptions;
the keyframes are mapped back to positions in the full video; the bridge grounds each description on its
high-resolution keyframe (System 2) and SAM2 propagates the boxes over the **full** video. Written under
``--out``: ``masks/<frame>.png`` (one 0/255 PNG per frame at the original resolution), ``contact_sheet.png``,
``overlay.mp4`` (``--overlay-video``) and ``answer.json``; System 1's reasoning and moments are printed.

Tasks: ``vos`` (Figure-3 prompt, keyframes in a JSON answer), ``avs`` (Figure-4 prompt, video + audio, one
description grounded on the first frame) and ``refaid`` (first frame as an image + audio, as RefAID trains).

The functions here (:func:`system1_batch`, :func:`predict_batch`, :func:`write_masks`) are what
:mod:`omnir1_jax.evaluate` runs on benchmark splits.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Any, Sequence

import numpy as np

from omnir1_jax.cli import guarded_main
from omnir1_jax.data.schema import FPS_S1
from omnir1_jax.rewards import ParsedAnswer, extract_tag, parse_answer, parse_description

TASKS = ("vos", "avs", "refaid")


@dataclasses.dataclass(frozen=True)
class Moment:
    """One keyframe System 1 chose: its index in the sampled clip, in the full video, and the description."""

    clip_index: int
    video_index: int
    time_s: float
    description: str


@dataclasses.dataclass
class Prediction:
    """The two-system result for one query.

    Attributes:
      text: System 1's raw answer.
      valid: the answer parsed (VOS: at least one valid interval; AVS / RefAID: a description).
      moments: the keyframes sent to System 2, in frame order.
      masks: bool ``[L, H, W]`` over every frame of the full video (all False when nothing was found).
      boxes: System 2's boxes per moment, ``[n, 4]`` float32 ``(x1, y1, x2, y2)`` in original pixels.
    """

    text: str
    valid: bool
    moments: list[Moment]
    masks: np.ndarray
    boxes: list[np.ndarray] = dataclasses.field(default_factory=list)

    @property
    def reasoning(self) -> str:
        return (extract_tag(self.text, "think") or "").strip()

    def to_json(self) -> dict[str, Any]:
        return {"answer": self.text, "valid": self.valid, "reasoning": self.reasoning,
                "moments": [dataclasses.asdict(m) for m in self.moments],
                "boxes": [np.asarray(b).tolist() for b in self.boxes]}


# ------------------------------------------------------------------------------------------- System 1 input
def system1_batch(frames: np.ndarray, query: str, tokenizer, *, task: str = "vos", max_frames: int = 24,
                  s1_min_pixels: int = 16 * 28 * 28, s1_max_pixels: int = 128 * 28 * 28,
                  audio: np.ndarray | None = None, name: str = "video", prompt: str = "paper") -> dict[str, Any]:
    """A one-example batch (the evaluation pipeline's layout) for a decoded video.

    Runs the same transforms as the Grain evaluation pipeline (frame sampling ``linspace(0, L-1, n)``,
    System-1 view, Whisper features, the paper's prompt, chat template and placeholder expansion) on frames that
    are already in memory. ``frames``: uint8 ``[L, H, W, 3]``; ``audio``: mono 16 kHz waveform or None;
    ``prompt``: ``"paper"`` or ``"short"`` (the compact VOS prompt a CPU-demo policy was trained with).
    """
    from omnir1_jax.data import transforms as T
    from omnir1_jax.data.pipeline import collate
    from omnir1_jax.data.schema import ExpressionRecord

    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [L, H, W, 3], got {frames.dtype} {frames.shape}")
    names = tuple(f"{i:05d}" for i in range(len(frames)))
    rec = ExpressionRecord(dataset="infer", split="infer", video_id=name, exp_id="0", expression=query,
                           frame_names=names, frame_paths=tuple(f"{name}#{n}" for n in names),
                           audio_waveform=None if audio is None else np.asarray(audio, np.float32))
    idx = T.sample_frame_indices(len(frames), max_frames)
    if task == "refaid":
        idx = idx[:1]
    ex: dict[str, Any] = {"record": rec, "frame_indices": idx, "frames": frames[idx],
                          "orig_size": np.asarray(frames.shape[1:3], np.int32)}
    ex = T.GroundTruth().map(ex)
    ex = T.System1View(s1_min_pixels, s1_max_pixels, FPS_S1, "image" if task == "refaid" else "video").map(ex)
    ex = T.AudioFeatures().map(ex)
    ex = T.BuildPrompt("vos" if task == "vos" else "avs", FPS_S1, random_timestamps=False,
                       style=prompt if task == "vos" else "paper").random_map(
        ex, np.random.default_rng(0))
    ex = T.Tokenize(tokenizer).map(ex)
    return collate([T.Finalize(keep_frames=True).map(ex)], pad_id=tokenizer.pad_token_id or 0)


def system1_answers(policy, tokenizer, batch: dict[str, Any], *, max_new_tokens: int) -> list[str]:
    """Greedy System-1 answers (text) for every example of a batch."""
    from omnir1_jax.models.qwen2_5_omni import generate
    from omnir1_jax.models.qwen2_5_omni.thinker import as_model_inputs
    from omnir1_jax.rl.rollout import decode_completions
    from omnir1_jax.trainer import eos_ids_of

    eos = eos_ids_of(tokenizer)
    out = generate(policy, as_model_inputs(policy.config, batch["model_inputs"]), max_new_tokens=max_new_tokens,
                   greedy=True, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id or 0)
    return decode_completions(tokenizer, np.asarray(out.tokens), np.asarray(out.lengths), eos)


# ------------------------------------------------------------------------------------------- System 2 side
def moments_of(text: str, task: str, positions: Sequence[int], fps: float = FPS_S1,
               max_keyframes: int | None = None) -> tuple[bool, list[Moment]]:
    """Parse an answer into moments; ``positions[i]`` is the full-video index of clip frame ``i``.

    VOS: each distinct keyframe of the JSON answer (:meth:`ParsedAnswer.queries`). AVS / RefAID: the answer's
    description on the first frame (RefAID grounds on frame 0; SAM2 then propagates over the clip).
    """
    positions = [int(p) for p in positions]
    if task == "vos":
        ans: ParsedAnswer = parse_answer(text, len(positions), fps)
        if not ans.valid:
            return False, []
        return True, [Moment(f, positions[f], f / fps, d) for f, d in ans.queries(max_keyframes)]
    desc = parse_description(text)
    if desc is None:
        return False, []
    return True, [Moment(0, positions[0], 0.0, desc)]


def submit(client, clip, moments: Sequence[Moment]):
    """Future of the bridge's :class:`GroupResult` for one query (one rollout) on ``clip`` (array or FrameRef)."""
    from sam2_bridge.protocol import Keyframe

    return client.submit_group(clip, [[Keyframe(m.video_index, m.description) for m in moments]])


def predict_batch(policy, tokenizer, client, batch: dict[str, Any], clips: Sequence[Any], *, task: str = "vos",
                  max_new_tokens: int = 256, max_keyframes: int | None = None,
                  texts: Sequence[str] | None = None) -> list[Prediction]:
    """System 1 on a batch, then System 2 + SAM2 on each example's full video (``clips[b]``: uint8 frames
    ``[L, H, W, 3]`` or a ``FrameRef``). ``texts`` replaces System 1's answers (scripted / cached answers)."""
    if texts is None:
        texts = system1_answers(policy, tokenizer, batch, max_new_tokens=max_new_tokens)
    jobs = []
    for b, text in enumerate(texts):
        t = int(batch["num_frames"][b])
        valid, moments = moments_of(text, task, batch["frame_indices"][b][:t], batch["fps_s1"], max_keyframes)
        jobs.append((text, valid, moments, submit(client, clips[b], moments)))
    out = []
    for text, valid, moments, fut in jobs:
        res = fut.result().raise_for_status()
        r = res.rollouts[0]
        out.append(Prediction(text, valid, moments, np.asarray(r.masks, bool),
                              [np.asarray(b, np.float32).reshape(-1, 4) for b in r.boxes]))
    return out


# --------------------------------------------------------------------------------------------------- output
def write_masks(directory: str, masks: np.ndarray, names: Sequence[str]) -> list[str]:
    """One 8-bit PNG per frame (0 background, 255 object) named ``<name>.png``, written into a temporary
    directory that is renamed into place (an interrupted write leaves no partial folder)."""
    import shutil
    import tempfile

    from PIL import Image

    masks = np.asarray(masks, bool)
    if len(names) != len(masks):
        raise ValueError(f"{len(masks)} masks but {len(names)} frame names")
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.tmp-", dir=parent)
    try:
        for m, n in zip(masks, names):
            Image.fromarray(m.astype(np.uint8) * 255).save(os.path.join(tmp, f"{n}.png"))
        if os.path.exists(directory):
            shutil.rmtree(directory)
        os.rename(tmp, directory)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    return [os.path.join(directory, f"{n}.png") for n in names]


def read_masks(directory: str, names: Sequence[str]) -> np.ndarray:
    """Masks written by :func:`write_masks` as bool ``[L, H, W]``."""
    from PIL import Image

    out = []
    for n in names:
        with Image.open(os.path.join(directory, f"{n}.png")) as im:
            out.append(np.asarray(im.convert("L")) > 127)
    return np.stack(out)


def tint(frame: np.ndarray, mask: np.ndarray, colour=(40, 220, 60)) -> np.ndarray:
    """RGB frame with ``mask`` tinted half-way to ``colour``."""
    out = frame.astype(np.float32).copy()
    out[mask] = 0.5 * out[mask] + 0.5 * np.asarray(colour, np.float32)
    return out.clip(0, 255).astype(np.uint8)


def contact_sheet(frames: np.ndarray, masks: np.ndarray, path: str, moments: Sequence[Moment] = (),
                  columns: int = 6, title: str = "") -> str:
    """Evenly spaced frames with their masks tinted (keyframes System 1 chose are always included)."""
    from PIL import Image, ImageDraw

    n = len(frames)
    chosen = {m.video_index for m in moments}
    idx = sorted(set(np.linspace(0, n - 1, min(columns, n)).round().astype(int).tolist()) | chosen)
    tiles = []
    for i in idx:
        tile = Image.fromarray(tint(frames[i], masks[i]))
        ImageDraw.Draw(tile).text((3, 3), f"{i}{' *' if i in chosen else ''}", fill=(255, 255, 0))
        tiles.append(np.asarray(tile))
    sheet = Image.fromarray(np.concatenate(tiles, axis=1))
    if title:
        ImageDraw.Draw(sheet).text((3, sheet.height - 14), title[:200], fill=(255, 255, 255))
    sheet.save(path)
    return path


def print_prediction(pred: Prediction, fps_video: float | None, file=sys.stdout) -> None:
    print("System 1 reasoning:", pred.reasoning or "(none)", file=file)
    if not pred.valid:
        print("System 1 answer did not parse; no moments (answer: %r)" % pred.text[:300], file=file)
    for m in pred.moments:
        when = f", {m.video_index / fps_video:.2f} s in the video" if fps_video else ""
        print(f"  moment: clip frame {m.clip_index} ({m.time_s:.2f} s at {FPS_S1:g} fps) -> video frame "
              f"{m.video_index}{when}: {m.description!r}", file=file)


# ------------------------------------------------------------------------------------------------------ CLI
def load_policy(path: str, *, dtype: str = "float32", seed: int = 0):
    """A Thinker from a local Hugging Face directory, or ``tiny`` (random init, for smoke runs)."""
    import jax.numpy as jnp

    from omnir1_jax.models import qwen2_5_omni as q

    if path == "tiny":
        return q.init_model(q.tiny(), seed=seed)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--policy: no such directory: {path}")
    return q.from_hf(path, dtype={"float32": jnp.float32, "bfloat16": jnp.bfloat16}[dtype])


def load_tokenizer(spec: str | None, policy_path: str):
    """``tiny`` -> the offline tiny tokenizer; a directory -> AutoTokenizer; None -> the policy's directory
    when it holds a tokenizer, else the tiny one for the ``tiny`` policy."""
    if spec == "tiny" or (spec is None and policy_path == "tiny"):
        from omnir1_jax.testing.tokenizer import build_tiny_tokenizer

        return build_tiny_tokenizer()
    path = spec or policy_path
    if not os.path.exists(os.path.join(path, "tokenizer_config.json")):
        raise FileNotFoundError(f"no tokenizer in {path} (pass --tokenizer DIR, or --tokenizer tiny for the "
                                "tiny test models)")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m omnir1_jax.infer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", required=True, help="a video file (mp4, mkv, ...) or a folder of frame images")
    p.add_argument("--query", required=True, help="the referring expression / question")
    p.add_argument("--policy", required=True, help="System 1: a local HF Thinker directory, or 'tiny'")
    p.add_argument("--tokenizer", default=None, help="tokenizer directory or 'tiny' (default: the policy's)")
    p.add_argument("--audio", default=None, help="audio file (default: the video file's own track, if any)")
    p.add_argument("--no-audio", action="store_true", help="ignore any audio")
    p.add_argument("--task", choices=TASKS, default="vos")
    p.add_argument("--out", default="runs/infer", help="output directory")
    p.add_argument("--config", default=None,
                   help="experiment file the policy was trained with: the defaults of --max-frames, --prompt and "
                        "--s1-{max,min}-pixels come from its data section")
    p.add_argument("--max-frames", type=int, default=None, help="frames System 1 sees (default 24, the paper's)")
    p.add_argument("--prompt", choices=("paper", "short"), default=None,
                   help="System-1 prompt the policy was trained with (default paper: Figure 3/4; the CPU demo: short)")
    p.add_argument("--s1-max-pixels", type=int, default=None, help="default 128 * 28 * 28")
    p.add_argument("--s1-min-pixels", type=int, default=None, help="default 16 * 28 * 28")
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--stride", type=int, default=1, help="segment every stride-th frame of the video")
    p.add_argument("--max-video-frames", type=int, default=None, help="decode at most this many frames")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--bridge", default=None, help="connect to a running bridge (ipc://... or tcp://...)")
    p.add_argument("--grounder", default="synthetic", help="local bridge: synthetic | qwen2_5_vl:PATH | "
                   "qwen2_5_omni:PATH")
    p.add_argument("--segmenter", choices=("synthetic", "sam2"), default="synthetic")
    p.add_argument("--sam2-config", default="configs/sam2.1/sam2.1_hiera_l.yaml")
    p.add_argument("--sam2-checkpoint", default=None)
    p.add_argument("--overlay-video", action="store_true", help="also write overlay.mp4")
    return p


@guarded_main
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from omnir1_jax.config import BridgeSpec, ConfigError, load_config

    defaults = {"max_frames": 24, "prompt": "paper", "s1_max_pixels": 128 * 28 * 28, "s1_min_pixels": 16 * 28 * 28}
    if args.config:
        try:
            d = load_config(args.config).data
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        defaults = {"max_frames": d.max_frames, "prompt": d.prompt, "s1_max_pixels": d.s1_max_pixels,
                    "s1_min_pixels": d.s1_min_pixels}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    from omnir1_jax.crossomni.media import read_audio, read_video, write_video
    from omnir1_jax.runtime import setup as S

    t0 = time.time()
    video = read_video(args.video, stride=args.stride, max_frames=args.max_video_frames,
                       with_audio=not args.no_audio and args.audio is None)
    audio = None if args.no_audio else (read_audio(args.audio) if args.audio else video.audio)
    print(f"[infer] {video.num_frames} frames {video.frames.shape[1]}x{video.frames.shape[2]}"
          f"{' + audio %.1f s' % (audio.size / 16000) if audio is not None else ''}", flush=True)
    tokenizer = load_tokenizer(args.tokenizer, args.policy)
    policy = load_policy(args.policy, dtype=args.dtype)
    batch = system1_batch(video.frames, args.query, tokenizer, task=args.task, max_frames=args.max_frames,
                          prompt=args.prompt,
                          s1_min_pixels=args.s1_min_pixels, s1_max_pixels=args.s1_max_pixels, audio=audio,
                          name=os.path.basename(os.path.normpath(args.video)))
    os.makedirs(args.out, exist_ok=True)
    if args.bridge:
        spec = BridgeSpec(start=False, addresses=(args.bridge,))
    else:
        spec = BridgeSpec(start=True, grounder=args.grounder, segmenter=args.segmenter,
                          sam2_config=args.sam2_config, sam2_checkpoint=args.sam2_checkpoint, workers=1)
    bridge = S.open_bridge(spec, args.out)
    try:
        pred = predict_batch(policy, tokenizer, bridge.client, batch, [video.frames], task=args.task,
                             max_new_tokens=args.max_new_tokens)[0]
    finally:
        bridge.close()
    print_prediction(pred, video.fps)
    write_masks(os.path.join(args.out, "masks"), pred.masks, video.names)
    contact_sheet(video.frames, pred.masks, os.path.join(args.out, "contact_sheet.png"), pred.moments,
                  title=args.query)
    if args.overlay_video:
        tinted = np.stack([tint(f, m) for f, m in zip(video.frames, pred.masks)])
        write_video(os.path.join(args.out, "overlay.mp4"), tinted, video.fps or 10.0)
    with open(os.path.join(args.out, "answer.json"), "w") as f:
        json.dump({"query": args.query, "video": args.video, "num_frames": video.num_frames,
                   "mask_pixels": int(pred.masks.sum()), **pred.to_json()}, f, indent=1)
    print(f"[infer] wrote {video.num_frames} masks to {os.path.join(args.out, 'masks')} and the contact sheet "
          f"({time.time() - t0:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
