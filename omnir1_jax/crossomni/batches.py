"""CrossOmni model inputs: clip frames + audio + the Table-17 prompt, batched like the VOS pipeline.

A record's video is decoded with PyAV (or read from a frame folder), ``max_frames`` frames are sampled with
``linspace(0, L-1, n)`` and given the System-1 view, the audio (the record's ``audio`` file, else the clip's own
track) becomes Whisper features, and the prompt goes through the chat template with placeholder expansion
(the same transforms as :mod:`omnir1_jax.data.pipeline`). Batches are :func:`omnir1_jax.data.pipeline.collate`
layouts, so the policy's ``generate`` / ``completion_logprobs`` take them unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from omnir1_jax.config import ConfigError, DataSpec
from omnir1_jax.crossomni.prompts import qa_prompt
from omnir1_jax.data.crossomni import CrossOmniRecord, balanced_subset, read_crossomni
from omnir1_jax.data.errors import DataFormatError
from omnir1_jax.data.mcq import frames_in_bound
from omnir1_jax.data.media import Video, read_audio, read_video
from omnir1_jax.data.schema import FPS_S1, ExpressionRecord


def read_split(spec: DataSpec, split: str | None = None) -> list[CrossOmniRecord]:
    """Records of ``split``: ``spec.root`` is the JSONL file itself, or a directory holding ``<split>.jsonl``.

    The training split (``spec.split``) is cut to ``spec.balanced_subset`` task-balanced questions when that is
    > 0 (the paper's 982 GRPO instances; :func:`omnir1_jax.data.crossomni.balanced_subset`); other splits never.
    """
    split = split or spec.split
    path = spec.root if os.path.isfile(spec.root) else os.path.join(spec.root, f"{split}.jsonl")
    if not os.path.exists(path):
        raise ConfigError(f"data.root: no CrossOmni file {path} (give the JSONL file or a folder with <split>.jsonl)")
    records = read_crossomni(path)
    if spec.balanced_subset > 0 and split == spec.split:
        records = balanced_subset(records, spec.balanced_subset, spec.balanced_subset_seed)
    return records


def qa_example(
    record: CrossOmniRecord,
    tokenizer,
    *,
    max_frames: int = 24,
    s1_min_pixels: int = 16 * 28 * 28,
    s1_max_pixels: int = 128 * 28 * 28,
    use_audio: bool = True,
    prompt: str = "table17",
    thinking: bool = False,
) -> dict[str, Any]:
    """One unbatched example (``model_inputs`` + ``id``) for ``record``; ``prompt`` / ``thinking``: the
    instruction (:func:`omnir1_jax.crossomni.prompts.qa_prompt`)."""
    return clip_example(
        record.video,
        record.audio if use_audio else None,
        record.id,
        record.question,
        qa_prompt(record, prompt, thinking),
        tokenizer,
        max_frames=max_frames,
        s1_min_pixels=s1_min_pixels,
        s1_max_pixels=s1_max_pixels,
        use_audio=use_audio,
    )


def clip_example(
    video_path: str,
    audio_path: str | None,
    example_id: str,
    question: str,
    prompt: Any,
    tokenizer,
    *,
    max_frames: int = 24,
    s1_min_pixels: int = 16 * 28 * 28,
    s1_max_pixels: int = 128 * 28 * 28,
    use_audio: bool = True,
    dataset: str = "crossomni",
    split: str = "qa",
    image: bool = False,
    bound: tuple[float, float] | None = None,
    frame_fps: float | None = None,
) -> dict[str, Any]:
    """One unbatched example (``model_inputs`` + ``id``) of a question about a clip: ``max_frames`` frames of
    ``video_path`` in the System-1 view, the audio of ``audio_path`` (else the clip's own track; none when not
    ``use_audio``) as Whisper features, and ``prompt`` (chat messages) tokenised with placeholder expansion.

    ``image``: ``video_path`` is one still image, given to the policy as an image (OmniBench). ``bound``:
    ``(start, end)`` seconds of the clip the question is about (MVBench's bounded tasks); frames outside are
    dropped before sampling, at the video's frame rate or ``frame_fps`` (a frame folder has none of its own).
    """
    # lazy: the transforms pull in grain
    from omnir1_jax.data import transforms

    if image:
        video = Video(transforms.load_frame(video_path)[None], ("00000",))
    else:
        video = read_video(video_path, with_audio=use_audio and audio_path is None)
    frames = video.frames
    if bound is not None:
        fps = video.fps or frame_fps
        if not fps:
            raise DataFormatError("a bounded question needs the clip's frame rate", path=video_path)
        frames = frames[frames_in_bound(video.num_frames, fps, bound)]
    audio = None
    if use_audio:
        audio = read_audio(audio_path) if audio_path else video.audio
    names = tuple(f"{i:05d}" for i in range(frames.shape[0]))
    rec = ExpressionRecord(
        dataset=dataset,
        split=split,
        video_id=example_id,
        exp_id="0",
        expression=question,
        frame_names=names,
        frame_paths=tuple(f"{video_path}#{n}" for n in names),
        audio_waveform=None if audio is None or audio.size == 0 else audio,
    )
    idx = transforms.sample_frame_indices(frames.shape[0], max_frames)
    ex: dict[str, Any] = {
        "record": rec,
        "frame_indices": idx,
        "frames": frames[idx],
        "orig_size": np.asarray(frames.shape[1:3], np.int32),
    }
    ex = transforms.GroundTruth().map(ex)
    ex = transforms.System1View(s1_min_pixels, s1_max_pixels, FPS_S1, "image" if image else "video").map(ex)
    ex = transforms.AudioFeatures().map(ex)
    ex["prompt"] = prompt
    ex = transforms.Tokenize(tokenizer).map(ex)
    out = transforms.Finalize(keep_frames=False).map(ex)
    out["id"] = example_id
    return out


def qa_batch(
    records: Sequence[CrossOmniRecord], tokenizer, data: DataSpec, *, pad_to_multiple: int = 64
) -> dict[str, Any]:
    """A collated batch of ``records`` with the System-1 budget of ``data`` (``max_frames``, pixels)."""
    # lazy: the pipeline module pulls in grain
    from omnir1_jax.data.pipeline import collate

    exs = [
        qa_example(
            r,
            tokenizer,
            max_frames=data.max_frames,
            s1_min_pixels=data.s1_min_pixels,
            s1_max_pixels=data.s1_max_pixels,
            prompt=data.qa_prompt,
            thinking=data.thinking,
        )
        for r in records
    ]
    batch = collate(exs, pad_id=tokenizer.pad_token_id or 0, pad_to_multiple=pad_to_multiple)
    batch["id"] = [e["id"] for e in exs]
    return batch


def iterate_batches(
    records: Sequence[CrossOmniRecord],
    tokenizer,
    data: DataSpec,
    batch_size: int,
    *,
    seed: int = 0,
    shuffle: bool = True,
    epochs: int | None = 1,
) -> Iterator[tuple[list, dict]]:
    """``(records, batch)`` pairs over ``epochs`` passes (None = forever), reshuffled per epoch from ``seed``."""
    if not records:
        raise ValueError("no CrossOmni records")
    epoch = 0
    while epochs is None or epoch < epochs:
        order = np.random.default_rng(seed + epoch).permutation(len(records)) if shuffle else np.arange(len(records))
        for s in range(0, len(order), batch_size):
            chunk = [records[i] for i in order[s : s + batch_size]]
            yield chunk, qa_batch(chunk, tokenizer, data)
        epoch += 1
