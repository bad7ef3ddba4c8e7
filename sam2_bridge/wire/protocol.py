"""The bridge's wire protocol: the contract between the JAX trainer and the PyTorch bridge.

This module imports neither torch nor jax (only numpy and msgpack), so the trainer can import it. The framing,
array encoding, limits and envelope code is in :mod:`sam2_bridge.wire.codec` (its public names are part of the
protocol and importable from here too).

Framing
-------
Every message (request or reply) is one byte string::

    MAGIC b"S2BR" | version u16 LE | flags u16 LE (0) | body length u64 LE | body (msgpack)

The declared length must equal the number of body bytes (so a truncated or padded message is detected), the
body must not exceed the receiver's ``max_message_bytes`` (default 512 MiB) and the version must be one of
:data:`SUPPORTED_VERSIONS`. Over ZeroMQ each message is exactly one frame (a DEALER client talks to the
server's ROUTER socket; zmq adds the routing frames).

Body: msgpack with plain values only (nil, bool, int, float, str, bytes, lists, maps with string keys) and
numpy arrays as msgpack extension type 1: ``dtype code u8 | ndim u8 | ndim x u64 LE shape | raw bytes``,
little-endian, C order; ``bool`` arrays travel as ``np.packbits`` bits (8 mask pixels per byte). Allowed
dtypes: bool, uint8, uint16, int16, int32, int64, float16, float32, float64. Nothing is ever unpickled and
no field names code: decoding can only ever produce those plain values and numeric arrays. A receiver bounds
what decoding may cost (:class:`DecodeLimits`): at most ``max_container_len`` entries in one list or map,
``max_items`` entries in all of them together, ``max_str_len`` bytes per string, nesting depth 1024; beyond
them the message gets ``too_large`` (a list or map too long, too many entries) or ``bad_body``.

Versions
--------
Version 2 added the optional envelope fields ``token`` and ``deadline_s`` and the error codes ``forbidden``,
``unauthorized`` and ``expired``; ``FrameRef`` frames are read only under the server's ``--data-root`` list.
Version 3 (this module) added the optional body field ``contexts`` of ``ground`` and ``ground_and_segment``
(System 1's rationale handed to System 2's grounding prompt, docs/design.md §8.5); a ``contexts`` field in a request
framed as version 1 or 2 gets ``bad_field`` (an older server would silently ignore it, so a client frames such
a request as version 3 and an older server answers ``bad_version`` instead). A server still serves version-1 and
-2 requests (version 1 carries neither envelope field; it gets ``unauthorized`` from a server started with
``--token-file``) and answers every request in the version it came in, so older clients keep working. The
client frames each request in the lowest version that carries its fields (:func:`request_version`: 3 only with
``contexts``), so a new client with ``bridge.s2_context`` off still talks to a version-2 bridge. A change that
an older peer would misread bumps the version.

Envelope
--------
Request: ``{"id": str (<= 64 chars), "type": "health" | "ground" | "segment" | "ground_and_segment" |
"judge", "token": str (optional), "deadline_s": float (optional), "body": map}``. ``token``: the shared
secret of a server started with ``--token-file`` (compared in constant time before the body is decoded).
``deadline_s``: seconds the client still waits for this answer, counted from when the server receives the
message (relative, so the two machines' clocks need not agree); work whose deadline has passed is dropped
before it starts and answered ``expired``. ``body`` should come last (the server then reads the envelope
without touching the body). Reply: ``{"id": <request id>, "type": <request type>, "ok": true, "body": map}``
or ``{"id", "type", "ok": false, "error": {"code": str, "message": str, "retryable": bool}}``. Error codes
(:data:`ERROR_CODES`): ``bad_header``, ``bad_version``, ``truncated``, ``too_large`` (over the message size
or one of the server's budgets: frames, pixels, rollouts, keyframes, detections, reply bytes, queued bytes,
msgpack containers), ``bad_body``, ``bad_type``, ``bad_field``, ``bad_frames`` (a referenced frame is not a
readable image under the server's ``--data-root``; the same message whether the file is missing, is not an
image, or lies outside the roots), ``forbidden`` (a ``FrameRef`` sent to a server started without
``--data-root``), ``unauthorized`` (missing / wrong ``token``), ``expired`` (the deadline passed before the
work started), ``overloaded`` (retryable: queue full), ``no_judge`` (a ``judge`` request to a bridge started
without ``--judge``), ``no_segmenter`` (a grounding / segmentation request to a judge-only bridge,
``--segmenter none``), ``worker_died`` (retryable), ``internal``.

Frames (field ``frames`` / ``clip``; a map with exactly one of)
---------------------------------------------------------------
- ``{"array": uint8 [T, H, W, 3]}``: RGB frames;
- ``{"ref": {"root": str, "video": str, "names": [str, ...], "subdir": str = "JPEGImages"}}``: the bridge
  reads ``root/subdir/video/name`` itself (ReVOS / MeViS layout; ``.jpg`` appended to a name without a
  suffix); names and video may not leave ``root`` (no ``..``, no absolute part, no NUL byte), and every file
  must resolve to a regular file under one of the server's ``--data-root`` directories (see
  :mod:`sam2_bridge.wire.frames`).

Requests and replies (``body`` maps; the dataclasses below build and parse them)
--------------------------------------------------------------------------------
- ``health``: ``{}`` -> ``{"version", "segmenter", "grounder", "uptime_s", "workers": [{"index", "pid",
  "device", "ready", "busy_with", "restarts"}]}``.
- ``ground`` (:class:`GroundRequest`): ``{"frames", "keyframes": [[frame_idx, description], ...], "contexts":
  [str | nil per keyframe] (optional, version 3)}`` ->
  (:class:`GroundReply`) ``{"boxes": [float32 [n_k, 4] per keyframe], "labels": [[str] per keyframe],
  "texts": [raw grounder output per keyframe], "n_unparseable": int, "timings": {name: seconds}}``.
  Boxes are ``(x1, y1, x2, y2)`` in pixels of the ORIGINAL frame (x2, y2 exclusive edges).
- ``segment`` (:class:`SegmentRequest`): ``{"clip", "num_rollouts": R, "det_rollout": int32 [D],
  "det_frame": int32 [D], "det_boxes": float32 [D, 4]}`` -> (:class:`SegmentReply`) ``{"masks": bool
  [R, T, H, W], "obj_ids": int32 [D], "timings"}``; detection d is the SAM2 object ``obj_ids[d]``.
- ``ground_and_segment`` (:class:`GroupRequest`, one GRPO group): ``{"clip", "rollouts": [[[frame_idx,
  description], ...] per rollout], "contexts": [str | nil per rollout] (optional, version 3)}`` ->
  (:class:`GroupReply`) ``{"boxes": [[float32 [n, 4] per keyframe] per rollout], "masks": bool [R, T, H, W],
  "n_unparseable": int, "n_detections": int, "timings"}``.
  Keyframes are grounded on the clip's frames at full resolution (the grounder resizes them itself).

- ``judge`` (:class:`JudgeRequest`, a text model scoring CrossOmni rationales): ``{"prompts": [str, ...]
  (1 to 1024 prompts of <= 65536 chars each), "max_new_tokens": int in [1, 512]}`` -> (:class:`JudgeReply`)
  ``{"texts": [str per prompt, in order], "timings"}``: the greedy continuation of each prompt (chat template
  applied when the model's tokenizer has one), new tokens only, special tokens removed. Served only by a bridge
  started with ``--judge hf:PATH``; otherwise the reply is the error ``no_judge``.

``contexts`` (version 3): System 1's rationale for each keyframe (``ground``) or each rollout
(``ground_and_segment``), at most :data:`MAX_CONTEXT_CHARS` characters each, ``nil`` for none; the grounder puts
it into its grounding prompt (:func:`sam2_bridge.server.grounder.grounding_prompt`). The client cuts it to its budget
(``bridge.s2_context_chars``) before sending; the bridge never cuts it again. A request whose contexts are all
``nil`` is answered exactly as one without the field.

A rollout with no detection gets all-False masks. Masks are the union, per frame, of the rollout's objects
over the forward and the backward SAM2 sweep (see :mod:`sam2_bridge.server.segmenter`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sam2_bridge.wire.codec import (  # noqa: F401  (the protocol's public names live here too)
    CONTEXT_VERSION,
    DEFAULT_MAX_MESSAGE_BYTES,
    ERROR_CODES,
    HEADER_BYTES,
    MAGIC,
    MAX_ID_CHARS,
    MAX_TOKEN_CHARS,
    PROTOCOL_VERSION,
    REQUEST_TYPES,
    SUPPORTED_VERSIONS,
    DecodeLimits,
    Envelope,
    ProtocolError,
    check_envelope,
    decode_body,
    decode_message,
    encode_message,
    frame_request,
    make_error,
    make_reply,
    make_request,
    pack_body,
    peek_envelope,
    read_envelope,
)
from sam2_bridge.wire.constants import MAX_CONTEXT_CHARS

# ------------------------------------------------------------------------------------ field validation


def _field(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in body:
        raise ProtocolError("bad_field", f"missing field {name!r}")
    value = body[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError("bad_field", f"field {name!r} is a {type(value).__name__}, expected {kind}")
    return value


def _array(body: Mapping[str, Any], name: str, dtype: str, shape: Sequence[int | None]) -> np.ndarray:
    value = _field(body, name, np.ndarray)
    if value.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, value.shape)):
        raise ProtocolError("bad_field", f"field {name!r} has shape {value.shape}, expected {tuple(shape)}")
    if value.dtype.kind == "f" and dtype.startswith("float"):
        return value.astype(dtype)
    if value.dtype.name != dtype and not (dtype.startswith("int") and value.dtype.kind in "iu"):
        raise ProtocolError("bad_field", f"field {name!r} has dtype {value.dtype}, expected {dtype}")
    if dtype.startswith("int"):
        return _int_array(value, name, dtype)
    return value.astype(dtype)


def _int_array(value: Any, name: str, dtype: str = "int32") -> np.ndarray:
    """``value`` as a 1-d+ integer array of ``dtype``, checking the range BEFORE the cast (an int64 2**32 + 1
    must not wrap around to 1)."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ProtocolError("bad_field", f"field {name!r}: {exc}") from None
    if arr.size == 0:
        return arr.astype(dtype)
    if arr.dtype.kind == "f" and np.isfinite(arr).all() and (arr == np.round(arr)).all():
        pass  # integral floats from a python list are fine; their range is checked below
    elif arr.dtype.kind not in "iu":
        raise ProtocolError("bad_field", f"field {name!r} has dtype {arr.dtype}, expected integers")
    info = np.iinfo(dtype)
    lo, hi = arr.min(), arr.max()
    if lo < info.min or hi > info.max:
        raise ProtocolError(
            "bad_field", f"field {name!r} holds {hi if hi > info.max else lo}, outside the {dtype} range"
        )
    return arr.astype(dtype)


def _str(value: Any, where: str, max_chars: int = 4096) -> str:
    if not isinstance(value, str) or len(value) > max_chars:
        raise ProtocolError("bad_field", f"{where} must be a str of <= {max_chars} chars, got {value!r:.80}")
    return value


def _timings(body: Mapping[str, Any]) -> dict[str, float]:
    raw = body.get("timings", {})
    if not isinstance(raw, dict):
        raise ProtocolError("bad_field", "field 'timings' must be a map")
    return {str(k): float(v) for k, v in raw.items()}


# --------------------------------------------------------------------------------------------- frames


@dataclasses.dataclass(frozen=True)
class FrameRef:
    """Frames the bridge reads itself: ``root/subdir/video/name`` for each name, in order."""

    root: str
    video: str
    names: tuple[str, ...]
    subdir: str = "JPEGImages"

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(self.names))
        for where, value in (("root", self.root), ("video", self.video), ("subdir", self.subdir)):
            _str(value, f"FrameRef.{where}")
        if not self.names:
            raise ProtocolError("bad_field", "FrameRef.names is empty")
        for part in (self.video, self.subdir, *self.names):
            _str(part, "FrameRef name")
        for part in (self.root, self.video, self.subdir, *self.names):
            if "\0" in part:
                raise ProtocolError("bad_field", f"FrameRef path part {part!r:.80} holds a NUL byte")
        for part in (self.video, self.subdir, *self.names):
            if part.startswith(("/", "\\")) or ".." in part.replace("\\", "/").split("/"):
                raise ProtocolError("bad_field", f"FrameRef path part {part!r} leaves the dataset root")

    def __len__(self) -> int:
        return len(self.names)


def frames_to_wire(frames: np.ndarray | FrameRef) -> dict[str, Any]:
    """Wire form of a clip: ``{"array": uint8 [T, H, W, 3]}`` or ``{"ref": {...}}``."""
    if isinstance(frames, FrameRef):
        return {
            "ref": {"root": frames.root, "video": frames.video, "names": list(frames.names), "subdir": frames.subdir}
        }
    return {"array": _check_clip(np.asarray(frames), "frames")}


def frames_from_wire(value: Any, where: str = "frames") -> np.ndarray | FrameRef:
    """Inverse of :func:`frames_to_wire` with validation."""
    if not isinstance(value, dict) or len(value) != 1 or not set(value) <= {"array", "ref"}:
        raise ProtocolError("bad_field", f"field {where!r} must be a map with exactly one of 'array', 'ref'")
    if "array" in value:
        return _check_clip(value["array"], where)
    ref = value["ref"]
    if not isinstance(ref, dict):
        raise ProtocolError("bad_field", f"field {where}.ref must be a map")
    names = _field(ref, "names", list)
    return FrameRef(
        root=_field(ref, "root", str),
        video=_field(ref, "video", str),
        names=tuple(names),
        subdir=ref.get("subdir", "JPEGImages"),
    )


def _check_clip(arr: Any, where: str) -> np.ndarray:
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        desc = f"{arr.dtype} {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
        raise ProtocolError("bad_field", f"field {where!r} must be uint8 [T, H, W, 3], got {desc}")
    if min(arr.shape[:3]) == 0:
        raise ProtocolError("bad_field", f"field {where!r} is empty: shape {arr.shape}")
    return arr


# ------------------------------------------------------------------------------------------ messages


@dataclasses.dataclass(frozen=True)
class Keyframe:
    """One keyframe chosen by System 1: a frame index into the clip and its local description."""

    frame_idx: int
    description: str

    def __post_init__(self):
        if isinstance(self.frame_idx, bool) or not isinstance(self.frame_idx, (int, np.integer)):
            raise ProtocolError("bad_field", f"Keyframe.frame_idx = {self.frame_idx!r} is not an int")
        object.__setattr__(self, "frame_idx", int(self.frame_idx))
        _str(self.description, "Keyframe.description")


def _keyframes_to_wire(kfs: Sequence[Keyframe]) -> list[list[Any]]:
    return [[k.frame_idx, k.description] for k in kfs]


def _keyframes_from_wire(value: Any, where: str, t: int | None) -> tuple[Keyframe, ...]:
    if not isinstance(value, list):
        raise ProtocolError("bad_field", f"field {where!r} must be a list of [frame_idx, description]")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, list) or len(item) != 2:
            raise ProtocolError("bad_field", f"{where}[{i}] must be [frame_idx, description]")
        kf = Keyframe(item[0], item[1])
        if t is not None and not 0 <= kf.frame_idx < t:
            raise ProtocolError("bad_field", f"{where}[{i}].frame_idx = {kf.frame_idx} outside [0, {t})")
        out.append(kf)
    return tuple(out)


def _clip_len(frames: np.ndarray | FrameRef) -> int:
    return len(frames)


def _check_contexts(value: Any, where: str, n: int, what: str) -> tuple[str | None, ...] | None:
    """``None`` or one ``str`` (<= MAX_CONTEXT_CHARS) / ``None`` per keyframe or rollout (``n`` of them)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ProtocolError(
            "bad_field", f"field {where!r} must be a list of str | nil (one per {what}), got {type(value).__name__}"
        )
    if len(value) != n:
        raise ProtocolError("bad_field", f"field {where!r} holds {len(value)} entries for {n} {what}s")
    for i, c in enumerate(value):
        if c is not None:
            _str(c, f"field {where!r}[{i}]", MAX_CONTEXT_CHARS)
    return tuple(value)


def request_version(body: Mapping[str, Any]) -> int:
    """The lowest protocol version that carries a request body's fields: 3 with ``contexts``, else 2."""
    return CONTEXT_VERSION if "contexts" in body else 2


def check_request_version(body: Mapping[str, Any], version: int) -> None:
    """``bad_field`` when a body uses a field its message's version does not have (``contexts`` before 3)."""
    if "contexts" in body and version < CONTEXT_VERSION:
        raise ProtocolError(
            "bad_field",
            f"field 'contexts' needs protocol version {CONTEXT_VERSION}; this request came in version {version}",
        )


@dataclasses.dataclass(frozen=True)
class GroundRequest:
    """Ground each keyframe's description on its frame (``frames`` may hold only the keyframes)."""

    frames: Any  # np.ndarray uint8 [T, H, W, 3] | FrameRef
    keyframes: tuple[Keyframe, ...]
    contexts: tuple[str | None, ...] | None = None  # System 1's rationale per keyframe (version 3)

    TYPE = "ground"

    def __post_init__(self):
        object.__setattr__(self, "keyframes", tuple(self.keyframes))
        object.__setattr__(
            self, "contexts", _check_contexts(self.contexts, "contexts", len(self.keyframes), "keyframe")
        )

    def keyframe_contexts(self) -> tuple[str | None, ...]:
        """The context of each keyframe (None where there is none)."""
        return self.contexts or (None,) * len(self.keyframes)

    def to_body(self) -> dict[str, Any]:
        body = {"frames": frames_to_wire(self.frames), "keyframes": _keyframes_to_wire(self.keyframes)}
        if self.contexts is not None:
            body["contexts"] = list(self.contexts)
        return body

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> GroundRequest:
        frames = frames_from_wire(body.get("frames"), "frames")
        return cls(
            frames, _keyframes_from_wire(body.get("keyframes"), "keyframes", _clip_len(frames)), body.get("contexts")
        )


@dataclasses.dataclass(frozen=True)
class GroundReply:
    """Boxes ``float32 [n_k, 4]`` (x1, y1, x2, y2 in original-frame pixels) and labels per keyframe."""

    boxes: tuple[np.ndarray, ...]
    labels: tuple[tuple[str, ...], ...]
    texts: tuple[str, ...]
    n_unparseable: int
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_body(self) -> dict[str, Any]:
        return {
            "boxes": [np.asarray(b, np.float32).reshape(-1, 4) for b in self.boxes],
            "labels": [list(x) for x in self.labels],
            "texts": list(self.texts),
            "n_unparseable": int(self.n_unparseable),
            "timings": dict(self.timings),
        }

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> GroundReply:
        boxes = _field(body, "boxes", list)
        return cls(
            tuple(_array({"b": b}, "b", "float32", (None, 4)) for b in boxes),
            tuple(tuple(x) for x in _field(body, "labels", list)),
            tuple(_field(body, "texts", list)),
            _field(body, "n_unparseable", int),
            _timings(body),
        )


@dataclasses.dataclass(frozen=True)
class SegmentRequest:
    """Segment detections (rollout, frame, box) of one group in ONE SAM2 state over ``clip``."""

    clip: Any  # np.ndarray uint8 [T, H, W, 3] | FrameRef
    num_rollouts: int
    det_rollout: np.ndarray  # int32 [D]
    det_frame: np.ndarray  # int32 [D]
    det_boxes: np.ndarray  # float32 [D, 4], original-frame pixels

    TYPE = "segment"

    def __post_init__(self):
        for name in ("det_rollout", "det_frame"):
            object.__setattr__(self, name, _int_array(getattr(self, name), name).reshape(-1))
        try:
            boxes = np.asarray(self.det_boxes, np.float32).reshape(-1, 4)
        except (ValueError, TypeError) as exc:
            raise ProtocolError("bad_field", f"field 'det_boxes': {exc}") from None
        object.__setattr__(self, "det_boxes", boxes)
        d = len(self.det_boxes)
        if len(self.det_rollout) != d or len(self.det_frame) != d:
            raise ProtocolError(
                "bad_field",
                f"detection arrays disagree: {len(self.det_rollout)} rollouts, {len(self.det_frame)} frames, {d} boxes",
            )
        if isinstance(self.num_rollouts, bool) or not isinstance(self.num_rollouts, int) or self.num_rollouts < 0:
            raise ProtocolError("bad_field", f"num_rollouts = {self.num_rollouts!r}")
        if d and (self.det_rollout.min() < 0 or self.det_rollout.max() >= self.num_rollouts):
            raise ProtocolError("bad_field", f"det_rollout outside [0, {self.num_rollouts})")
        t = _clip_len(self.clip)
        if d and (self.det_frame.min() < 0 or self.det_frame.max() >= t):
            raise ProtocolError("bad_field", f"det_frame outside [0, {t})")
        if not np.isfinite(self.det_boxes).all():
            raise ProtocolError("bad_field", "det_boxes holds a non-finite value")

    def to_body(self) -> dict[str, Any]:
        return {
            "clip": frames_to_wire(self.clip),
            "num_rollouts": self.num_rollouts,
            "det_rollout": self.det_rollout,
            "det_frame": self.det_frame,
            "det_boxes": self.det_boxes,
        }

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> SegmentRequest:
        return cls(
            frames_from_wire(body.get("clip"), "clip"),
            _field(body, "num_rollouts", int),
            _array(body, "det_rollout", "int32", (None,)),
            _array(body, "det_frame", "int32", (None,)),
            _array(body, "det_boxes", "float32", (None, 4)),
        )


@dataclasses.dataclass(frozen=True)
class SegmentReply:
    """``masks`` bool [R, T, H, W] per rollout and frame; ``obj_ids`` int32 [D]: the SAM2 object per detection."""

    masks: np.ndarray
    obj_ids: np.ndarray
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_body(self) -> dict[str, Any]:
        return {
            "masks": np.asarray(self.masks, bool),
            "obj_ids": np.asarray(self.obj_ids, np.int32),
            "timings": dict(self.timings),
        }

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> SegmentReply:
        return cls(
            _array(body, "masks", "bool", (None,) * 4), _array(body, "obj_ids", "int32", (None,)), _timings(body)
        )


@dataclasses.dataclass(frozen=True)
class GroupRequest:
    """The whole reward query of one GRPO group: the clip and, per rollout, its keyframes."""

    clip: Any  # np.ndarray uint8 [T, H, W, 3] | FrameRef
    rollouts: tuple[tuple[Keyframe, ...], ...]
    contexts: tuple[str | None, ...] | None = None  # System 1's rationale per rollout (version 3)

    TYPE = "ground_and_segment"

    def __post_init__(self):
        object.__setattr__(self, "rollouts", tuple(tuple(r) for r in self.rollouts))
        t = _clip_len(self.clip)
        for r, kfs in enumerate(self.rollouts):
            for k in kfs:
                if not isinstance(k, Keyframe) or not 0 <= k.frame_idx < t:
                    raise ProtocolError("bad_field", f"rollouts[{r}] keyframe {k!r} outside the {t}-frame clip")
        object.__setattr__(self, "contexts", _check_contexts(self.contexts, "contexts", len(self.rollouts), "rollout"))

    def rollout_contexts(self) -> tuple[str | None, ...]:
        """The context of each rollout (None where there is none)."""
        return self.contexts or (None,) * len(self.rollouts)

    def to_body(self) -> dict[str, Any]:
        body = {"clip": frames_to_wire(self.clip), "rollouts": [_keyframes_to_wire(r) for r in self.rollouts]}
        if self.contexts is not None:
            body["contexts"] = list(self.contexts)
        return body

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> GroupRequest:
        clip = frames_from_wire(body.get("clip"), "clip")
        rollouts = _field(body, "rollouts", list)
        return cls(
            clip,
            tuple(_keyframes_from_wire(r, f"rollouts[{i}]", _clip_len(clip)) for i, r in enumerate(rollouts)),
            body.get("contexts"),
        )


@dataclasses.dataclass(frozen=True)
class RolloutResult:
    """One rollout's System-2 output: boxes per keyframe (original-frame pixels) and masks [T, H, W] bool."""

    boxes: tuple[np.ndarray, ...]
    masks: np.ndarray


@dataclasses.dataclass(frozen=True)
class GroupReply:
    """Reply to a :class:`GroupRequest` (wire form; the client wraps it in a ``GroupResult``)."""

    boxes: tuple[tuple[np.ndarray, ...], ...]
    masks: np.ndarray  # bool [R, T, H, W]
    n_unparseable: int
    n_detections: int
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_body(self) -> dict[str, Any]:
        return {
            "boxes": [[np.asarray(b, np.float32).reshape(-1, 4) for b in r] for r in self.boxes],
            "masks": np.asarray(self.masks, bool),
            "n_unparseable": int(self.n_unparseable),
            "n_detections": int(self.n_detections),
            "timings": dict(self.timings),
        }

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> GroupReply:
        boxes = tuple(
            tuple(_array({"b": b}, "b", "float32", (None, 4)) for b in r) for r in _field(body, "boxes", list)
        )
        return cls(
            boxes,
            _array(body, "masks", "bool", (None,) * 4),
            _field(body, "n_unparseable", int),
            _field(body, "n_detections", int),
            _timings(body),
        )

    def rollout_results(self) -> tuple[RolloutResult, ...]:
        return tuple(RolloutResult(b, m) for b, m in zip(self.boxes, self.masks))


@dataclasses.dataclass(frozen=True)
class JudgeRequest:
    """Prompts for the bridge's judge model (greedy decoding, at most ``max_new_tokens`` new tokens each)."""

    prompts: tuple[str, ...]
    max_new_tokens: int = 8

    TYPE = "judge"
    MAX_PROMPTS = 1024
    MAX_PROMPT_CHARS = 65536
    MAX_NEW_TOKENS = 512

    def __post_init__(self):
        if isinstance(self.prompts, (str, bytes)) or not isinstance(self.prompts, (list, tuple)):
            raise ProtocolError(
                "bad_field", f"field 'prompts' must be a list of str, got {type(self.prompts).__name__}"
            )
        object.__setattr__(self, "prompts", tuple(self.prompts))
        if not 0 < len(self.prompts) <= self.MAX_PROMPTS:
            raise ProtocolError(
                "bad_field", f"field 'prompts' holds {len(self.prompts)} prompts, expected 1 to {self.MAX_PROMPTS}"
            )
        for i, prompt in enumerate(self.prompts):
            _str(prompt, f"field 'prompts'[{i}]", self.MAX_PROMPT_CHARS)
        n = self.max_new_tokens
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= self.MAX_NEW_TOKENS:
            raise ProtocolError(
                "bad_field", f"field 'max_new_tokens' = {n!r:.80} is not an int in [1, {self.MAX_NEW_TOKENS}]"
            )
        object.__setattr__(self, "max_new_tokens", int(n))

    def to_body(self) -> dict[str, Any]:
        return {"prompts": list(self.prompts), "max_new_tokens": self.max_new_tokens}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> JudgeRequest:
        return cls(_field(body, "prompts", list), _field(body, "max_new_tokens", int))


@dataclasses.dataclass(frozen=True)
class JudgeReply:
    """One decoded continuation per prompt, in the request's order."""

    texts: tuple[str, ...]
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_body(self) -> dict[str, Any]:
        return {"texts": list(self.texts), "timings": dict(self.timings)}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> JudgeReply:
        texts = _field(body, "texts", list)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ProtocolError("bad_field", f"field 'texts'[{i}] is a {type(t).__name__}, expected str")
        return cls(tuple(texts), _timings(body))


REQUEST_CLASSES = {c.TYPE: c for c in (GroundRequest, SegmentRequest, GroupRequest, JudgeRequest)}
REPLY_CLASSES = {"ground": GroundReply, "segment": SegmentReply, "ground_and_segment": GroupReply, "judge": JudgeReply}
