"""Benchmark-protocol evaluation of the two-system pipeline on VOS data (SPEC section 6).

System 1 sees at most ``eval_max_frames`` sampled frames (the eval pipeline), answers greedily; its keyframes
are mapped back to positions in the full video; System 2 grounds them and SAM2 segments the **full** video;
J and F are computed on every frame against the expression's union mask and accumulated with the ReVOS /
MeViS protocol (:class:`~omnir1_jax.eval.protocols.VOSAccumulator`).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from omnir1_jax.eval.protocols import VOSAccumulator, expression_jf
from omnir1_jax.rewards import parse_answer


def clip_reference(record):
    """A ``FrameRef`` when the record's frames follow ``root/JPEGImages/<video>/<name>`` (the bridge reads them
    itself), else the uint8 frames [T, H, W, 3] loaded here."""
    from sam2_bridge.protocol import FrameRef

    paths = list(record.frame_paths)
    if record.frame_bytes is None:
        video_dir = os.path.dirname(paths[0])
        suffix = os.path.normpath(record.video_id)
        if video_dir.endswith(os.sep + os.path.join("JPEGImages", suffix)):
            root = video_dir[: -len(os.path.join("JPEGImages", suffix)) - 1]
            names = [os.path.basename(p) for p in paths]
            if all(os.path.dirname(p) == video_dir for p in paths):
                return FrameRef(root=root, video=record.video_id, names=tuple(names))
    return load_frames(record)


def load_frames(record, positions: Sequence[int] | None = None) -> np.ndarray:
    """uint8 RGB frames [T, H, W, 3] of a record (all, or the given positions)."""
    import io

    idx = range(record.num_frames) if positions is None else positions
    frames = []
    for i in idx:
        src = io.BytesIO(record.frame_bytes[i]) if record.frame_bytes is not None else record.frame_paths[i]
        with Image.open(src) as im:
            frames.append(np.asarray(im.convert("RGB")))
    return np.stack(frames)


def evaluate_vos(
    model,
    tokenizer,
    records: Sequence[Any],
    client,
    *,
    pipeline_config,
    max_new_tokens: int,
    eos_ids: Sequence[int],
    pad_id: int = 0,
    max_keyframes: int | None = None,
    accumulator: VOSAccumulator | None = None,
    skip: Iterable[str] = (),
    on_expression: Callable[[dict], None] | None = None,
    progress: bool = True,
    full_video: bool = True,
) -> VOSAccumulator:
    """Evaluate ``records`` and return the filled accumulator.

    Args:
      model: the System-1 policy (greedy decoding).
      records: expression records with GT masks.
      client: a ``BridgeClient`` (System 2 + segmenter).
      pipeline_config: an evaluation ``PipelineConfig`` (``train=False``).
      skip: expression keys (``record.key``) already evaluated (resuming an interrupted evaluation).
      on_expression: called with a JSON-able row per expression (id, subset, J, F, keyframes, answer).
      full_video: segment and score the whole video (benchmark protocol); False = the sampled clip only.
    """
    from omnir1_jax.data import build_pipeline
    from omnir1_jax.models.qwen2_5_omni import generate
    from omnir1_jax.rl.rollout import decode_completions, keyframe_queries
    from sam2_bridge.protocol import Keyframe

    acc = accumulator or VOSAccumulator()
    skip = set(skip)
    todo = [r for r in records if r.key not in skip and r.masks is not None]
    by_id = {(r.video_id, r.exp_id): r for r in todo}
    if not todo:
        return acc
    pipe = build_pipeline(todo, tokenizer, pipeline_config)
    done, t0 = 0, time.time()
    for batch in pipe:
        out = generate(model, batch["model_inputs"], max_new_tokens=max_new_tokens, greedy=True,
                       eos_token_id=list(eos_ids), pad_token_id=pad_id)
        texts = decode_completions(tokenizer, np.asarray(out.tokens), np.asarray(out.lengths), eos_ids)
        futures, jobs = [], []
        for b, text in enumerate(texts):
            rec = by_id[(batch["video_id"][b], batch["exp_id"][b])]
            t = int(batch["num_frames"][b])
            ans = parse_answer(text, t, batch["fps_s1"])
            queries = keyframe_queries(ans, max_keyframes)
            positions = np.asarray(batch["frame_indices"][b][:t])
            if full_video:
                clip = clip_reference(rec)
                queries = [Keyframe(int(positions[q.frame_idx]), q.description) for q in queries]
                n_frames = rec.num_frames
            else:
                clip = batch["frames"][b]
                n_frames = t
            futures.append(client.submit_group(clip, [queries]))
            jobs.append((rec, ans, text, queries, n_frames, positions))
        for fut, (rec, ans, text, queries, n_frames, positions) in zip(futures, jobs):
            res = fut.result().raise_for_status()
            pred = np.asarray(res.rollouts[0].masks, bool)
            h, w = pred.shape[1:]
            pos = list(range(n_frames)) if full_video else positions.tolist()
            gt = rec.load_masks(pos, h, w)
            j, f = expression_jf(gt, pred, use_jax=True)
            num_objects = max(1, len(rec.anno_ids) or len(rec.obj_ids))
            if rec.type_id in (0, 1, 2):
                acc.add_revos(rec.key, rec.type_id, num_objects, j, f)
            else:
                acc.add(rec.key, rec.subset or rec.split, num_objects, j, f)
            if on_expression is not None:
                on_expression({"id": rec.key, "video_id": rec.video_id, "exp_id": rec.exp_id,
                               "subset": rec.subset, "type_id": rec.type_id, "num_objects": num_objects,
                               "J": float(np.mean(j)), "F": float(np.mean(f)), "answer": text,
                               "valid": ans.valid, "keyframes": [q.frame_idx for q in queries],
                               "descriptions": [q.description for q in queries]})
            done += 1
        if progress:
            rate = done / max(time.time() - t0, 1e-9)
            print(f"\r[eval] {done}/{len(todo)} expressions ({rate:.2f}/s)", end="", flush=True)
    if progress:
        print(flush=True)
    return acc
