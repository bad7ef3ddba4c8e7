"""Request handling inside a worker: decoded request -> reply body (grounder + segmenter + judge, in process).

``segmenter="none"`` builds no segmenter (``ground`` / ``segment`` / ``ground_and_segment`` then get the error
``no_segmenter``): a judge-only bridge. ``judge=None`` builds no judge (``judge`` gets ``no_judge``).

:class:`Handler` is also what the benchmarks call in-process, so the queue overhead is measured against the
exact same computation.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sam2_bridge.server.grounder import build_grounder, check_groundings
from sam2_bridge.server.judge import build_judge
from sam2_bridge.wire import protocol
from sam2_bridge.wire.budget import Budget
from sam2_bridge.wire.frames import resolve_frames


@dataclasses.dataclass(frozen=True)
class HandlerConfig:
    """What a worker builds: the segmenter, the grounder, the judge and their options."""

    segmenter: str = "sam2"  # "sam2" | "synthetic" | "none"
    sam2_config: str = "configs/sam2.1/sam2.1_hiera_l.yaml"
    sam2_checkpoint: str | None = None
    sam2_image_size: int | None = None
    sam2_dtype: str = "float32"
    sam2_seed: int = 0
    sam2_batch_objects: bool = True
    sam2_object_batch: int | None = None  # None: 8 on CPU, 64 on CUDA
    grounder: str = "synthetic"
    grounder_plugins: tuple[str, ...] = ()  # modules / .py files imported first (they register grounder kinds)
    grounder_dtype: str = "float32"
    grounder_max_new_tokens: int = 256
    grounder_max_pixels: int = 900 * 28 * 28
    data_roots: tuple[str, ...] = ()
    device: str = "cpu"
    judge: str | None = None  # "hf:PATH" | None
    judge_dtype: str = "float32"
    judge_max_batch: int = 16
    budget: dict | None = None  # Budget fields (None: the defaults)

    def __post_init__(self):
        if self.segmenter not in ("sam2", "synthetic", "none"):
            raise ValueError(f"HandlerConfig.segmenter = {self.segmenter!r}, expected 'sam2', 'synthetic' or 'none'")
        if self.judge_max_batch < 1:
            raise ValueError(f"HandlerConfig.judge_max_batch = {self.judge_max_batch}, expected >= 1")
        object.__setattr__(self, "data_roots", tuple(self.data_roots))
        object.__setattr__(self, "grounder_plugins", tuple(self.grounder_plugins))


class Handler:
    """Builds the models once and answers ``ground`` / ``segment`` / ``ground_and_segment`` / ``judge`` bodies."""

    def __init__(self, cfg: HandlerConfig):
        self.cfg = cfg
        self.budget = Budget(**(cfg.budget or {}))
        self.judge = build_judge(cfg.judge, device=cfg.device, dtype=cfg.judge_dtype, max_batch=cfg.judge_max_batch)
        self.segmenter = self.grounder = None
        if cfg.segmenter == "none":
            return
        if cfg.segmenter == "sam2":
            # lazy: the SAM2 segmenter pulls in torch and sam2
            from sam2_bridge.server.segmenter import GroupSegmenter, Sam2Config

            self.segmenter = GroupSegmenter(
                Sam2Config(
                    config=cfg.sam2_config,
                    checkpoint=cfg.sam2_checkpoint,
                    image_size=cfg.sam2_image_size,
                    device=cfg.device,
                    dtype=cfg.sam2_dtype,
                    seed=cfg.sam2_seed,
                    batch_objects=cfg.sam2_batch_objects,
                    object_batch=cfg.sam2_object_batch,
                )
            )
        else:
            # lazy: the synthetic models pull in scipy
            from sam2_bridge.server.synthetic import SyntheticSegmenter

            self.segmenter = SyntheticSegmenter()
        kwargs = (
            {}
            if cfg.grounder == "synthetic"
            else dict(
                dtype=cfg.grounder_dtype, max_new_tokens=cfg.grounder_max_new_tokens, max_pixels=cfg.grounder_max_pixels
            )
        )
        self.grounder = build_grounder(cfg.grounder, device=cfg.device, plugins=cfg.grounder_plugins, **kwargs)

    # ------------------------------------------------------------------------------------------ parts

    def segment_arrays(
        self, frames: np.ndarray, num_rollouts: int, det_rollout, det_frame, det_boxes
    ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        """(masks bool [R, T, H, W], obj_ids int32 [D], timings)."""
        if self.cfg.segmenter == "sam2":
            out = self.segmenter.segment(frames, num_rollouts, det_rollout, det_frame, det_boxes)
            return out.masks, out.table.obj_ids, out.timings
        masks, table = self.segmenter.segment(frames, num_rollouts, det_rollout, det_frame, det_boxes)
        return masks, table.obj_ids, {}

    def ground_keyframes(
        self, frames: np.ndarray, keyframes: Sequence[protocol.Keyframe], contexts: Sequence[str | None] | None = None
    ):
        """Groundings per keyframe; identical (frame, description, context) triples are decoded once (greedy =
        same). ``contexts``: System 1's rationale per keyframe; the grounder gets ``contexts=`` only when one is
        given (a plug-in written without it keeps working for every other request)."""
        ctx = [c if isinstance(c, str) and c.strip() else None for c in (contexts or [None] * len(keyframes))]
        keys = [(k.frame_idx, k.description, c) for k, c in zip(keyframes, ctx)]
        unique = list(dict.fromkeys(keys))
        images, descs = [frames[f] for f, _, _ in unique], [d for _, d, _ in unique]
        if any(c is not None for c in ctx):
            if not accepts_contexts(self.grounder):
                name = getattr(self.grounder, "name", "?")
                raise protocol.ProtocolError(
                    "bad_field",
                    f"this bridge's grounder {name!r} takes no 'contexts' "
                    "(System 1's rationale); send the request without them",
                )
            results = self.grounder.ground(images, descs, contexts=[c for _, _, c in unique])
        else:
            results = self.grounder.ground(images, descs)
        # a plug-in's output is checked like a model's (count, shapes, finite; clipped to the frame)
        results = check_groundings(results, images, getattr(self.grounder, "name", self.cfg.grounder))
        by_key = dict(zip(unique, results))
        return [by_key[key] for key in keys]

    # --------------------------------------------------------------------------------------- requests

    def handle(self, req_type: str, body: Mapping[str, Any], deadline: float | None = None) -> dict[str, Any]:
        """Reply body for a request body (raises ProtocolError on invalid fields or frames, ``too_large`` over
        the budget, ``expired`` once ``time.monotonic()`` passes ``deadline`` between stages)."""
        t0 = time.perf_counter()
        request = protocol.REQUEST_CLASSES[req_type].from_body(body)
        self.budget.check_request(request)
        if req_type == "judge":
            if self.judge is None:
                raise protocol.ProtocolError("no_judge", "this bridge was started without --judge")
            _check_deadline(deadline, "before the judge")
            texts, timings = self.judge.generate(request.prompts, request.max_new_tokens)
            return protocol.JudgeReply(tuple(texts), timings).to_body()
        if self.segmenter is None:
            raise protocol.ProtocolError(
                "no_segmenter", f"this bridge was started with --segmenter none; it cannot answer {req_type!r}"
            )
        if req_type == "ground":
            frames = self.frames(request.frames)
            _check_deadline(deadline, "after reading the frames")
            t1 = time.perf_counter()
            res = self.ground_keyframes(frames, request.keyframes, request.keyframe_contexts())
            t2 = time.perf_counter()
            reply = protocol.GroundReply(
                tuple(g.boxes for g in res),
                tuple(g.labels for g in res),
                tuple(g.text for g in res),
                sum(not g.parsed for g in res),
                {"frames_s": t1 - t0, "ground_s": t2 - t1},
            )
        elif req_type == "segment":
            frames = self.frames(request.clip, request.num_rollouts)
            _check_deadline(deadline, "after reading the frames")
            t1 = time.perf_counter()
            masks, obj_ids, timings = self.segment_arrays(
                frames, request.num_rollouts, request.det_rollout, request.det_frame, request.det_boxes
            )
            reply = protocol.SegmentReply(
                masks, obj_ids, {"frames_s": t1 - t0, "segment_s": time.perf_counter() - t1, **timings}
            )
        else:
            reply = self.group(request, t0, deadline)
        return reply.to_body()

    def frames(self, clip: Any, rollouts: int = 0) -> np.ndarray:
        """uint8 [T, H, W, 3] of a clip (array or FrameRef under the data roots, within the budget)."""
        return resolve_frames(clip, self.cfg.data_roots, self.budget, rollouts)

    def group(
        self, request: protocol.GroupRequest, t0: float | None = None, deadline: float | None = None
    ) -> protocol.GroupReply:
        """Ground every keyframe of every rollout (one batch), then segment all detections in one pass."""
        t0 = time.perf_counter() if t0 is None else t0
        frames = self.frames(request.clip, len(request.rollouts))
        _check_deadline(deadline, "after reading the frames")
        t1 = time.perf_counter()
        flat = [k for r in request.rollouts for k in r]
        flat_contexts = [c for r, c in zip(request.rollouts, request.rollout_contexts()) for _ in r]
        groundings = self.ground_keyframes(frames, flat, flat_contexts)
        t2 = time.perf_counter()
        boxes, det_rollout, det_frame, det_boxes, i = [], [], [], [], 0
        for r, kfs in enumerate(request.rollouts):
            per_kf = []
            for k in kfs:
                g = groundings[i]
                i += 1
                per_kf.append(g.boxes)
                det_rollout += [r] * len(g.boxes)
                det_frame += [k.frame_idx] * len(g.boxes)
                det_boxes += g.boxes.tolist()
            boxes.append(tuple(per_kf))
        self.budget.check_detections(len(det_boxes))
        _check_deadline(deadline, "after grounding")
        masks, _, timings = self.segment_arrays(
            frames,
            len(request.rollouts),
            np.asarray(det_rollout, np.int32),
            np.asarray(det_frame, np.int32),
            np.asarray(det_boxes, np.float32).reshape(-1, 4),
        )
        t3 = time.perf_counter()
        return protocol.GroupReply(
            tuple(boxes),
            masks,
            sum(not g.parsed for g in groundings),
            len(det_boxes),
            {"frames_s": t1 - t0, "ground_s": t2 - t1, "segment_s": t3 - t2, **timings},
        )


def accepts_contexts(grounder: Any) -> bool:
    """Whether ``grounder.ground`` takes the keyword ``contexts`` (or any keyword)."""
    try:
        params = inspect.signature(grounder.ground).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "contexts" or p.kind is p.VAR_KEYWORD for p in params)


def _check_deadline(deadline: float | None, stage: str) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise protocol.ProtocolError("expired", f"the request's deadline passed {stage}; dropped")
