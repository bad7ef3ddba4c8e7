"""A run's records and pipelines (docs/design.md §6): expression records from the dataset a config names (a
mixture of sources included), the run's step count derived from them, the per-epoch one-expression-per-video
draw, and the Grain ``PipelineConfig`` of a data section."""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np

from omnir1_jax.config import ConfigError, DataSpec, derive_steps
from omnir1_jax.data.pipeline import PipelineConfig
from omnir1_jax.data.readers import read_mevis, read_refavs, read_revos
from omnir1_jax.data.refcoco import read_refcocog
from omnir1_jax.runtime.world import ensure_synthetic

log = logging.getLogger("omnir1_jax")


def read_records(spec: DataSpec, split: str | None = None):
    """Expression records of ``split`` (default ``spec.split``) from the dataset named in ``spec``."""
    split = split or spec.split
    if spec.task == "mixture":  # every task's records, in task order (each keeps its dataset name)
        return [r for _, part, _ in spec.task_parts() for r in read_records(part, split)]
    if spec.dataset == "mixture":
        return read_mixture(spec, split)
    if spec.dataset == "synthetic":
        ensure_synthetic(spec)
        return read_revos(spec.root, split, dataset="synthetic")
    if spec.dataset == "revos":
        return read_revos(spec.root, split)
    if spec.dataset == "mevis":
        return read_mevis(spec.root, split)
    if spec.dataset == "refavs":
        return read_refavs(spec.root, split)
    if spec.dataset == "refcocog":
        # REFER layout under root: refs(umd).p, instances.json and the COCO train2014 images.
        return read_refcocog(
            os.path.join(spec.root, "refs(umd).p"),
            os.path.join(spec.root, "instances.json"),
            os.path.join(spec.root, "train2014"),
            split,
        )
    raise ConfigError(
        f"data.dataset={spec.dataset!r} has no expression reader (use revos, mevis, refavs, refcocog, synthetic)"
    )


def resolve_steps(cfg, records, global_batch: int | None = None) -> int:
    """The run's optimizer steps for these training ``records`` (:func:`omnir1_jax.config.derive_steps`):
    ``cfg.run.steps`` when > 0, else ``cfg.run.epochs`` passes over the records' expressions or videos (a video
    = one ``(dataset, video_id)``) at ``global_batch`` (default ``cfg.data.batch_size``) examples per step."""
    # a video: (dataset, video_id) of an expression record, or the clip of a CrossOmni question
    videos = {(getattr(r, "dataset", ""), getattr(r, "video_id", None) or getattr(r, "video", None)) for r in records}
    return derive_steps(
        cfg.run, num_expressions=len(records), num_videos=len(videos), global_batch=global_batch or cfg.data.batch_size
    )


def one_expression_per_video(records, seed: int, epoch: int = 0) -> list:
    """One record per video (``(dataset, video_id)``), drawn uniformly among that video's expressions with a
    generator seeded by ``(seed, epoch)``; videos keep their first-appearance order. The training records of one
    epoch when ``run.epoch_unit == "videos"`` (the released data loader's sampling)."""
    by_video: dict = {}
    for r in records:
        by_video.setdefault((r.dataset, r.video_id), []).append(r)
    rng = np.random.default_rng([seed, epoch])
    return [recs[int(rng.integers(len(recs)))] for recs in by_video.values()]


def read_mixture(spec: DataSpec, split: str | None = None):
    """Records of the mixture ``spec.mixture`` (``(dataset, directory under spec.root)`` sources, each read with
    its own reader): every video of every source when ``spec.mixture_videos == 0``, else that many videos drawn
    uniformly without replacement from the union (seed ``spec.mixture_seed``; a drawn video keeps all its
    expressions). Records keep their source's ``dataset`` name and come in source order. A ``synthetic`` source
    must already exist (it is not generated).

    Raises:
      ConfigError: two sources yield the same record key, or more videos are asked for than there are.
    """

    def read(name: str, root: str):  # a synthetic source is read as it is on disk (never generated here)
        if name == "synthetic":
            return read_revos(root, split, dataset="synthetic")
        return read_records(dataclasses.replace(spec, dataset=name, root=root, mixture=()), split)

    split = split or spec.split
    sources = [(name, sub, read(name, os.path.join(spec.root, sub))) for name, sub in spec.mixture]
    seen: dict[str, str] = {}
    videos: list[tuple[int, str]] = []
    for i, (_name, sub, recs) in enumerate(sources):
        for r in recs:
            if seen.setdefault(r.key, sub) != sub:
                raise ConfigError(f"data.mixture: record {r.key} is in both {seen[r.key]!r} and {sub!r}")
        videos += list(dict.fromkeys((i, r.video_id) for r in recs))
    n = spec.mixture_videos
    if n > len(videos):
        raise ConfigError(
            f"data.mixture_videos={n} but the sources hold {len(videos)} {split!r} videos "
            f"({', '.join(f'{sub}: {len({r.video_id for r in recs})}' for _, sub, recs in sources)})"
        )
    keep = set(videos)
    if n:
        picked = np.random.default_rng(spec.mixture_seed).choice(len(videos), size=n, replace=False)
        keep = {videos[int(j)] for j in picked}
    out = [r for i, (_, _, recs) in enumerate(sources) for r in recs if (i, r.video_id) in keep]
    counts = ", ".join(f"{sub}: {sum(1 for j, _ in keep if j == i)} videos" for i, (_, sub, _) in enumerate(sources))
    log.info("[data] mixture %s: %s, %d expressions", split, counts, len(out))
    return out


def pipeline_config(
    spec: DataSpec,
    *,
    train: bool,
    seed: int,
    batch_size: int | None = None,
    num_epochs: int | None = None,
    num_keyframes: int | None = None,
    split: str | None = None,
    share: tuple[int, int] = (0, 1),
):
    """The Grain ``PipelineConfig`` of ``spec``; ``num_keyframes`` is ``grpo.num_keyframes`` (the prompt asks for
    exactly that many moments); ``split`` (default: ``spec.split`` when training) names the records' split in the
    error an empty split raises; ``share = (i, n)``: this process's block of each batch (``PipelineConfig.share``)."""
    split = split or (spec.split if train else None)
    source = f"data.dataset={spec.dataset!r}" + (f", split {split!r}" if split else "") + f" under {spec.root}"

    return PipelineConfig(
        task="grounding" if spec.task == "grounding" else "avs" if spec.dataset == "refavs" else "vos",
        train=train,
        batch_size=batch_size or spec.batch_size,
        seed=seed,
        min_frames=spec.min_frames,
        max_frames=spec.max_frames,
        eval_max_frames=spec.max_frames,
        s1_min_pixels=spec.s1_min_pixels,
        s1_max_pixels=spec.s1_max_pixels,
        visual_mode="image" if spec.task in ("refaid", "grounding") else "video",
        num_epochs=num_epochs,
        num_workers=spec.workers,
        keep_frames=True,
        drop_remainder=train,
        pad_to_multiple=spec.pad_to_multiple,
        share=tuple(share),
        prompt=spec.prompt,
        num_keyframes=num_keyframes,
        source=source,
        source_path=spec.root,
    )
