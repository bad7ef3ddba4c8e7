"""What one request may cost the bridge: limits checked BEFORE the work they bound (reply ``too_large``).

The broker checks everything a request's fields tell (frame count, array pixels, rollouts, keyframes,
detections, the reply's size) before queueing it; the worker checks them again and, for a ``FrameRef``, reads
each frame's header (its size) before decoding any frame; the number of detections a ``ground_and_segment``
request produces is checked after grounding, before segmenting. A request over budget gets ``too_large`` and
nothing else is spent on it.

The defaults are sized for the 7B recipe (docs/design.md §4.1, §6.1 and §7.5) with room to spare:

- training: a GRPO group is 8 rollouts over a clip of 8 to 24 frames at the dataset's resolution (ReVOS /
  MeViS ~480x854 to 1080p); every keyframe is a distinct frame of the clip, so a group has at most
  8 x 24 = 192 keyframes;
- evaluation: one rollout over the full video, read by reference (hundreds of frames).

==========================  ========================  ============================================================
flag                        default                   why
==========================  ========================  ============================================================
``--max-frames``            1024                      full evaluation videos (hundreds of frames); SAM2 keeps each
                                                      frame as a 1024x1024 float32 image (12 MB), so 1024 frames
                                                      are ~13 GB of video state
``--max-frame-pixels``      3840 x 2160 (8.3 Mpx)     4K UHD, above any dataset's 1080p; a 12000x12000 PNG
                                                      (144 Mpx, 430 MB decoded) is refused from its header
``--max-request-pixels``    2**30 (1.07 Gpx)          frames x pixels: 3 GiB of decoded RGB; a 24-frame 1080p clip
                                                      is 50 Mpx, a 500-frame 1080p or 2,600-frame 480p video fits
``--max-rollouts``          64                        8 per group in the recipe; groups of up to 64
``--max-keyframes``         512                       all rollouts together: 8 x 24 = 192 distinct keyframes at most
``--max-detections``        1024                      SAM2 objects in one state (each tracked over every frame);
                                                      192 keyframes x a few boxes each
``--max-reply-bytes``       512 MiB                   masks travel as bits: 8 x 24 x 1080p = 50 MB; one rollout over
                                                      a 1024-frame 1080p video = 265 MB
``--max-queued-bytes``      4 GiB                     requests waiting in the broker (one step's groups of a host:
                                                      e.g. 16 x 24 frames x 1080p x 3 = 2.4 GB); a full queue
                                                      answers the retryable ``overloaded``
==========================  ========================  ============================================================

The msgpack limits (``--max-msgpack-container``, ``--max-msgpack-items``) are in
:class:`sam2_bridge.wire.protocol.DecodeLimits`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from sam2_bridge.wire import protocol


@dataclasses.dataclass(frozen=True)
class Budget:
    """Per-request limits (see the module docstring for the defaults' reasoning)."""

    max_frames: int = 1024
    max_frame_pixels: int = 3840 * 2160
    max_request_pixels: int = 2**30
    max_rollouts: int = 64
    max_keyframes: int = 512
    max_detections: int = 1024
    max_reply_bytes: int = 512 * 1024 * 1024
    max_queued_bytes: int = 4 * 1024**3

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"--{f.name.replace('_', '-')} (Budget.{f.name}) = {v!r}, expected an int >= 1")

    # ------------------------------------------------------------------------------------------ checks

    def check_frames(self, t: int, sizes: list[tuple[int, int]] | tuple[int, int], rollouts: int = 0) -> None:
        """``t`` frames of ``sizes`` (one (H, W) for all, or one per frame); ``rollouts`` > 0: the masks of a
        segmentation reply, bool [rollouts, T, H, W] as bits."""
        if t > self.max_frames:
            raise protocol.ProtocolError("too_large", f"{t} frames > --max-frames {self.max_frames}")
        per_frame = [sizes] * t if isinstance(sizes, tuple) else sizes
        total = 0
        for i, (h, w) in enumerate(per_frame):
            if h * w > self.max_frame_pixels:
                raise protocol.ProtocolError(
                    "too_large", f"frame {i} is {w}x{h} = {h * w} pixels > --max-frame-pixels {self.max_frame_pixels}"
                )
            total += h * w
        if total > self.max_request_pixels:
            raise protocol.ProtocolError(
                "too_large", f"{t} frames of {total} pixels in all > --max-request-pixels {self.max_request_pixels}"
            )
        if rollouts and per_frame:
            h, w = per_frame[0]
            reply = rollouts * t * h * w // 8
            if reply > self.max_reply_bytes:
                raise protocol.ProtocolError(
                    "too_large",
                    f"the masks of {rollouts} rollouts x {t} frames of {w}x{h} "
                    f"are {reply} bytes > --max-reply-bytes {self.max_reply_bytes}",
                )

    def check_detections(self, d: int) -> None:
        if d > self.max_detections:
            raise protocol.ProtocolError("too_large", f"{d} detections > --max-detections {self.max_detections}")

    def check_request(self, request: Any) -> None:
        """Everything the request's fields tell, before any work on it (array clips fully; for a FrameRef the
        frame count here, the pixels from the files' headers in :func:`sam2_bridge.wire.frames.resolve_frames`)."""
        if isinstance(request, protocol.JudgeRequest):
            return  # bounded by JudgeRequest's own limits (prompts, characters, new tokens)
        clip = request.frames if isinstance(request, protocol.GroundRequest) else request.clip
        if isinstance(request, protocol.GroupRequest):
            rollouts = len(request.rollouts)
            keyframes = sum(len(r) for r in request.rollouts)
        elif isinstance(request, protocol.SegmentRequest):
            rollouts, keyframes = request.num_rollouts, 0
            self.check_detections(len(request.det_boxes))
        else:
            rollouts, keyframes = 0, len(request.keyframes)
        if rollouts > self.max_rollouts:
            raise protocol.ProtocolError("too_large", f"{rollouts} rollouts > --max-rollouts {self.max_rollouts}")
        if keyframes > self.max_keyframes:
            raise protocol.ProtocolError("too_large", f"{keyframes} keyframes > --max-keyframes {self.max_keyframes}")
        if isinstance(clip, np.ndarray):
            t, h, w = (int(x) for x in clip.shape[:3])
            self.check_frames(t, (h, w), rollouts)
        elif len(clip) > self.max_frames:
            raise protocol.ProtocolError("too_large", f"{len(clip)} frames > --max-frames {self.max_frames}")

    def to_json(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def add_budget_flags(p: Any) -> None:
    """The budget's command-line flags (``python -m sam2_bridge.serve --help`` shows the defaults)."""
    d = Budget()
    g = p.add_argument_group("budget (per request; over budget -> 'too_large'; see sam2_bridge/wire/budget.py)")
    g.add_argument(
        "--max-frames",
        type=int,
        default=d.max_frames,
        help="frames per request (full evaluation videos; SAM2 holds each as a 12 MB 1024^2 float32 "
        "image) [%(default)s]",
    )
    g.add_argument(
        "--max-frame-pixels",
        type=int,
        default=d.max_frame_pixels,
        help="pixels of one frame, checked from the image header before decoding (4K UHD) [%(default)s]",
    )
    g.add_argument(
        "--max-request-pixels",
        type=int,
        default=d.max_request_pixels,
        help="frames x pixels per request: 3 GiB of RGB (a 24-frame 1080p clip is 50 Mpx, a 500-frame "
        "1080p video 1.04 Gpx) [%(default)s]",
    )
    g.add_argument(
        "--max-rollouts",
        type=int,
        default=d.max_rollouts,
        help="rollouts per request (the recipe's groups have 8) [%(default)s]",
    )
    g.add_argument(
        "--max-keyframes",
        type=int,
        default=d.max_keyframes,
        help="keyframes per request, all rollouts together (8 rollouts x 24 distinct frames = 192) [%(default)s]",
    )
    g.add_argument(
        "--max-detections",
        type=int,
        default=d.max_detections,
        help="detections (SAM2 objects) per request [%(default)s]",
    )
    g.add_argument(
        "--max-reply-bytes",
        type=int,
        default=d.max_reply_bytes,
        help="reply size, estimated from the request before computing it (8 x 24 x 1080p masks are "
        "50 MB) [%(default)s]",
    )
    g.add_argument(
        "--max-queued-bytes",
        type=int,
        default=d.max_queued_bytes,
        help="bytes of requests waiting in the broker; beyond: 'overloaded' (retryable) [%(default)s]",
    )
    lim = protocol.DecodeLimits()
    g.add_argument(
        "--max-msgpack-container",
        type=int,
        default=lim.max_container_len,
        help="entries of one msgpack list / map (FrameRef names, judge prompts) [%(default)s]",
    )
    g.add_argument(
        "--max-msgpack-items",
        type=int,
        default=lim.max_items,
        help="msgpack list / map entries of one message in all [%(default)s]",
    )


def budget_from_args(args: Any) -> tuple[Budget, protocol.DecodeLimits]:
    """(Budget, DecodeLimits) from parsed flags; ValueError naming the flag on a bad value."""
    budget = Budget(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Budget)})
    limits = protocol.DecodeLimits(
        max_message_bytes=args.max_message_bytes,
        max_container_len=args.max_msgpack_container,
        max_items=args.max_msgpack_items,
    )
    return budget, limits
