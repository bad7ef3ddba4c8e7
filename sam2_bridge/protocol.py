"""The bridge's wire protocol: the contract between the JAX trainer and the PyTorch bridge.

This module imports neither torch nor jax (only numpy and msgpack), so the trainer can import it.

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
Version 2 (this module) added the optional envelope fields ``token`` and ``deadline_s`` and the error codes
``forbidden``, ``unauthorized`` and ``expired``; ``FrameRef`` frames are read only under the server's
``--data-root`` list. A server still serves version-1 requests (they carry neither field; they get
``unauthorized`` from a server started with ``--token-file``) and answers every request in the version it
came in, so a version-1 client keeps working. A change that an older peer would misread bumps the version.

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
  :mod:`sam2_bridge.frames`).

Requests and replies (``body`` maps; the dataclasses below build and parse them)
--------------------------------------------------------------------------------
- ``health``: ``{}`` -> ``{"version", "segmenter", "grounder", "uptime_s", "workers": [{"index", "pid",
  "device", "ready", "busy_with", "restarts"}]}``.
- ``ground`` (:class:`GroundRequest`): ``{"frames", "keyframes": [[frame_idx, description], ...]}`` ->
  (:class:`GroundReply`) ``{"boxes": [float32 [n_k, 4] per keyframe], "labels": [[str] per keyframe],
  "texts": [raw grounder output per keyframe], "n_unparseable": int, "timings": {name: seconds}}``.
  Boxes are ``(x1, y1, x2, y2)`` in pixels of the ORIGINAL frame (x2, y2 exclusive edges).
- ``segment`` (:class:`SegmentRequest`): ``{"clip", "num_rollouts": R, "det_rollout": int32 [D],
  "det_frame": int32 [D], "det_boxes": float32 [D, 4]}`` -> (:class:`SegmentReply`) ``{"masks": bool
  [R, T, H, W], "obj_ids": int32 [D], "timings"}``; detection d is the SAM2 object ``obj_ids[d]``.
- ``ground_and_segment`` (:class:`GroupRequest`, one GRPO group): ``{"clip", "rollouts": [[[frame_idx,
  description], ...] per rollout]}`` -> (:class:`GroupReply`) ``{"boxes": [[float32 [n, 4] per keyframe]
  per rollout], "masks": bool [R, T, H, W], "n_unparseable": int, "n_detections": int, "timings"}``.
  Keyframes are grounded on the clip's frames at full resolution (the grounder resizes them itself).

- ``judge`` (:class:`JudgeRequest`, a text model scoring CrossOmni rationales): ``{"prompts": [str, ...]
  (1 to 1024 prompts of <= 65536 chars each), "max_new_tokens": int in [1, 512]}`` -> (:class:`JudgeReply`)
  ``{"texts": [str per prompt, in order], "timings"}``: the greedy continuation of each prompt (chat template
  applied when the model's tokenizer has one), new tokens only, special tokens removed. Served only by a bridge
  started with ``--judge hf:PATH``; otherwise the reply is the error ``no_judge``.

A rollout with no detection gets all-False masks. Masks are the union, per frame, of the rollout's objects
over the forward and the backward SAM2 sweep (see :mod:`sam2_bridge.segmenter`).
"""

from __future__ import annotations

import dataclasses
import math
import struct
from typing import Any, Mapping, Sequence

import msgpack
import numpy as np

PROTOCOL_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
MAGIC = b"S2BR"
_HEADER = struct.Struct("<4sHHQ")
HEADER_BYTES = _HEADER.size
DEFAULT_MAX_MESSAGE_BYTES = 512 * 1024 * 1024
REQUEST_TYPES = ("health", "ground", "segment", "ground_and_segment", "judge")
ERROR_CODES = ("bad_header", "bad_version", "truncated", "too_large", "bad_body", "bad_type", "bad_field",
               "bad_frames", "forbidden", "unauthorized", "expired", "overloaded", "no_judge", "no_segmenter",
               "worker_died", "internal")
MAX_ID_CHARS = 64
MAX_TOKEN_CHARS = 1024
_EXT_NDARRAY = 1
_DTYPES: tuple[str, ...] = ("bool", "uint8", "uint16", "int16", "int32", "int64", "float16", "float32",
                            "float64")
_MAX_NDIM = 8
# the envelope's own fields are short: a few keys, an id, a type name, a token, a number
_ENVELOPE_MAX_KEYS = 16
_ENVELOPE_PREFIX_BYTES = 64 * 1024


class ProtocolError(ValueError):
    """A message that does not follow the protocol; ``code`` is one of the documented error codes."""

    def __init__(self, code: str, message: str, retryable: bool = False):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable


@dataclasses.dataclass(frozen=True)
class DecodeLimits:
    """What decoding one message may cost the receiver.

    Defaults (the server's ``--max-msgpack-container`` / ``--max-msgpack-items`` flags): the longest list a
    valid request holds is a ``FrameRef``'s names (at most the frame budget, 1024 by default) or a judge
    request's prompts (at most 1024), so 4096 entries per list or map leave room; 65536 entries in all bound
    the Python objects decoding can create (~60 bytes each: a few MB) however the body is nested, where the
    old limit (the body length) let a 10 MB body of empty maps cost ~70x its size. Strings: a judge prompt is
    at most 65536 characters (<= 256 KiB of UTF-8), so 1 MiB. Arrays (frames, masks) are extension payloads
    bounded only by ``max_message_bytes``: they are one buffer each, not a Python object per element.
    """

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_container_len: int = 4096
    max_items: int = 65536
    max_str_len: int = 1024 * 1024

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"DecodeLimits.{f.name} = {v!r}, expected an int >= 1")


# ----------------------------------------------------------------------------------------------- arrays


def _pack_array(arr: np.ndarray) -> msgpack.ExtType:
    arr = np.asarray(arr)
    name = arr.dtype.name
    if name not in _DTYPES:
        raise ProtocolError("bad_field", f"array dtype {arr.dtype} is not one of {_DTYPES}")
    if arr.ndim > _MAX_NDIM:
        raise ProtocolError("bad_field", f"array has {arr.ndim} dims > {_MAX_NDIM}")
    head = struct.pack(f"<BB{arr.ndim}Q", _DTYPES.index(name), arr.ndim, *arr.shape)
    if name == "bool":
        data = np.packbits(arr.reshape(-1)).tobytes()
    else:
        data = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
    return msgpack.ExtType(_EXT_NDARRAY, head + data)


def _unpack_array(code: int, payload: bytes, copy: bool = True) -> Any:
    if code != _EXT_NDARRAY:
        raise ProtocolError("bad_body", f"unknown msgpack extension type {code}")
    if len(payload) < 2:
        raise ProtocolError("bad_body", "array extension shorter than its header")
    dtype_code, ndim = payload[0], payload[1]
    if dtype_code >= len(_DTYPES) or ndim > _MAX_NDIM:
        raise ProtocolError("bad_body", f"array header: dtype code {dtype_code}, ndim {ndim}")
    head = 2 + 8 * ndim
    if len(payload) < head:
        raise ProtocolError("bad_body", "array extension shorter than its shape")
    shape = struct.unpack_from(f"<{ndim}Q", payload, 2)
    count = 1
    for s in shape:
        count *= s
    name = _DTYPES[dtype_code]
    data = memoryview(payload)[head:]
    if name == "bool":
        if len(data) != (count + 7) // 8:
            raise ProtocolError("bad_body", f"bool array of shape {shape}: {len(data)} bytes of bits")
        bits = np.unpackbits(np.frombuffer(data, np.uint8), count=count)
        return bits.astype(bool).reshape(shape)
    dtype = np.dtype(name).newbyteorder("<")
    if len(data) != count * dtype.itemsize:
        raise ProtocolError("bad_body", f"{name} array of shape {shape}: {len(data)} data bytes")
    arr = np.frombuffer(data, dtype)
    if not copy and dtype.isnative:  # a read-only view of the message (the broker only inspects shapes)
        return arr.reshape(shape)
    return arr.astype(np.dtype(name), copy=True).reshape(shape)


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return _pack_array(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return list(obj)
    raise ProtocolError("bad_field", f"cannot encode a {type(obj).__name__}")


# --------------------------------------------------------------------------------------------- framing


def encode_message(message: Mapping[str, Any], max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                   version: int = PROTOCOL_VERSION) -> bytes:
    """Header + msgpack body of a plain map (numpy arrays allowed anywhere as values)."""
    body = msgpack.packb(message, default=_default, use_bin_type=True, strict_types=False)
    if len(body) > max_message_bytes:
        raise ProtocolError("too_large", f"body of {len(body)} bytes > limit {max_message_bytes}")
    return _HEADER.pack(MAGIC, version, 0, len(body)) + body


def _limits(limits: DecodeLimits | int | None) -> DecodeLimits:
    if limits is None:
        return DecodeLimits()
    if isinstance(limits, DecodeLimits):
        return limits
    return DecodeLimits(max_message_bytes=int(limits))


def _split_frame(data: bytes, limits: DecodeLimits) -> tuple[int, memoryview]:
    """(version, body) of a framed message, or ProtocolError (bad header / version / length)."""
    if len(data) < HEADER_BYTES:
        raise ProtocolError("truncated", f"{len(data)} bytes, shorter than the {HEADER_BYTES}-byte header")
    magic, version, _flags, length = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ProtocolError("bad_header", f"magic {magic!r} != {MAGIC!r}")
    if version not in SUPPORTED_VERSIONS:
        raise ProtocolError("bad_version", f"protocol version {version}, this side speaks {SUPPORTED_VERSIONS}")
    if length > limits.max_message_bytes:
        raise ProtocolError("too_large", f"declared body of {length} bytes > limit {limits.max_message_bytes}")
    body = memoryview(data)[HEADER_BYTES:]
    if len(body) != length:
        code = "truncated" if len(body) < length else "bad_header"
        raise ProtocolError(code, f"declared body length {length}, got {len(body)} bytes")
    return version, body


def _unpack_body(body: memoryview, limits: DecodeLimits, copy_arrays: bool = True) -> Any:
    items = [0]

    def count(container: Any) -> Any:
        # called once per list / map as it completes: stops a body of many tiny containers early
        items[0] += len(container) + 1
        if items[0] > limits.max_items:
            raise ProtocolError("too_large", f"more than {limits.max_items} msgpack list / map entries "
                                "(--max-msgpack-items)")
        return container

    n = max(len(body), 1)
    try:
        return msgpack.unpackb(body, ext_hook=lambda c, d: _unpack_array(c, d, copy_arrays), raw=False,
                               strict_map_key=True, use_list=True, list_hook=count, object_hook=count,
                               max_str_len=min(n, limits.max_str_len), max_bin_len=n,
                               max_array_len=min(n, limits.max_container_len),
                               max_map_len=min(n, limits.max_container_len), max_ext_len=n)
    except ProtocolError:
        raise
    except ValueError as exc:
        # msgpack says "... exceeds max_array_len(...)" for an over-long container: a budget, not a syntax error
        if "exceeds max_" in str(exc):
            raise ProtocolError("too_large", f"msgpack body: {exc} (--max-msgpack-container)") from None
        raise ProtocolError("bad_body", f"undecodable msgpack body: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # msgpack raises several types (ExtraData, StackError, FormatError...)
        raise ProtocolError("bad_body", f"undecodable msgpack body: {type(exc).__name__}: {exc}") from None


def decode_message(data: bytes, max_message_bytes: int | DecodeLimits = DEFAULT_MAX_MESSAGE_BYTES
                   ) -> dict[str, Any]:
    """Inverse of :func:`encode_message`; raises :class:`ProtocolError` on any deviation.

    ``max_message_bytes``: an int (other limits at their defaults) or a :class:`DecodeLimits`."""
    limits = _limits(max_message_bytes)
    _, body = _split_frame(data, limits)
    obj = _unpack_body(body, limits)
    if not isinstance(obj, dict):
        raise ProtocolError("bad_body", f"body is a {type(obj).__name__}, expected a map")
    return obj


@dataclasses.dataclass(frozen=True)
class Envelope:
    """A request's envelope, read without decoding its body (see :func:`read_envelope`)."""

    version: int
    id: str | None  # None: missing or not a valid id (the error reply then says "?")
    type: Any
    token: Any
    deadline_s: Any
    body: memoryview | None  # the msgpack bytes of the "body" field (None: no body)


def _read_envelope_fields(body: memoryview, full: bool) -> tuple[dict[str, Any], tuple[int, int] | None]:
    up = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=max(len(body), 1),
                          max_str_len=4 * MAX_TOKEN_CHARS, max_bin_len=4 * MAX_TOKEN_CHARS, max_array_len=16,
                          max_map_len=16, max_ext_len=4 * MAX_TOKEN_CHARS)
    up.feed(body if full else body[:_ENVELOPE_PREFIX_BYTES])
    try:
        n = up.read_map_header()
    except msgpack.OutOfData:
        raise
    except Exception:
        raise ProtocolError("bad_body", "body is not a msgpack map") from None
    if n > _ENVELOPE_MAX_KEYS:
        raise ProtocolError("bad_body", f"envelope map with {n} keys > {_ENVELOPE_MAX_KEYS}")
    fields: dict[str, Any] = {}
    span = None
    for i in range(n):
        key = up.unpack()
        if not isinstance(key, str):
            raise ProtocolError("bad_body", f"envelope key {key!r:.40} is not a str")
        if key == "body":
            start = up.tell()
            if i == n - 1 and not full:  # the usual layout: the body is the rest of the message
                return fields, (start, len(body))
            up.skip()  # parses without building objects, calling hooks or applying the limits
            span = (start, up.tell())
        else:
            fields[key] = up.unpack()
    if up.tell() != len(body):
        raise ProtocolError("bad_body", f"{len(body) - up.tell()} bytes after the envelope map")
    return fields, span


def read_envelope(data: bytes, limits: DecodeLimits | int | None = None) -> Envelope:
    """Check the framing and read a request's envelope (id, type, token, deadline) WITHOUT decoding its body.

    The server checks the token on this, before any decoding work that the body could make expensive."""
    limits = _limits(limits)
    version, body = _split_frame(data, limits)
    try:
        try:
            fields, span = _read_envelope_fields(body, full=False)
        except msgpack.OutOfData:
            fields, span = _read_envelope_fields(body, full=True)
    except ProtocolError:
        raise
    except Exception as exc:  # OutOfData with the full body, over-long envelope values, bad bytes
        raise ProtocolError("bad_body", f"undecodable envelope: {type(exc).__name__}: {exc}") from None
    req_id = fields.get("id")
    if not isinstance(req_id, str) or not 0 < len(req_id) <= MAX_ID_CHARS:
        req_id = None
    return Envelope(version, req_id, fields.get("type"), fields.get("token"), fields.get("deadline_s"),
                    None if span is None else body[span[0]:span[1]])


def check_envelope(env: Envelope) -> tuple[str, str]:
    """Validated ``(id, type)`` of an envelope (``token`` and ``deadline_s`` are checked for type too)."""
    if env.id is None:
        raise ProtocolError("bad_field", f"field 'id' must be a non-empty str of <= {MAX_ID_CHARS} chars")
    if env.type not in REQUEST_TYPES:
        raise ProtocolError("bad_type", f"field 'type' = {env.type!r:.80} is not one of {REQUEST_TYPES}")
    if env.token is not None and not (isinstance(env.token, str) and len(env.token) <= MAX_TOKEN_CHARS):
        raise ProtocolError("bad_field", f"field 'token' must be a str of <= {MAX_TOKEN_CHARS} chars")
    d = env.deadline_s
    if d is not None and (isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d)):
        raise ProtocolError("bad_field", f"field 'deadline_s' = {d!r:.80} is not a finite number")
    return env.id, env.type


def decode_body(env: Envelope, limits: DecodeLimits | int | None = None, copy_arrays: bool = True
                ) -> dict[str, Any]:
    """The request body map of an envelope (``{}`` when it has none). ``copy_arrays=False``: arrays are
    read-only views of the message (enough to check shapes)."""
    if env.body is None:
        return {}
    obj = _unpack_body(env.body, _limits(limits), copy_arrays)
    if not isinstance(obj, dict):
        raise ProtocolError("bad_field", "field 'body' must be a map")
    return obj


def peek_envelope(message: Mapping[str, Any]) -> tuple[str, str]:
    """Validated ``(id, type)`` of a decoded request."""
    req_id = message.get("id")
    if not isinstance(req_id, str) or not 0 < len(req_id) <= MAX_ID_CHARS:
        raise ProtocolError("bad_field", f"field 'id' must be a non-empty str of <= {MAX_ID_CHARS} chars")
    req_type = message.get("type")
    if req_type not in REQUEST_TYPES:
        raise ProtocolError("bad_type", f"field 'type' = {req_type!r} is not one of {REQUEST_TYPES}")
    if not isinstance(message.get("body", {}), dict):
        raise ProtocolError("bad_field", "field 'body' must be a map")
    return req_id, req_type


def pack_body(body: Mapping[str, Any]) -> bytes:
    """The msgpack bytes of a request body (encode once, frame per attempt with :func:`frame_request`)."""
    return msgpack.packb(dict(body), default=_default, use_bin_type=True, strict_types=False)


def frame_request(req_id: str, req_type: str, body: bytes, *, token: str | None = None,
                  deadline_s: float | None = None, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bytes:
    """A request message around already packed ``body`` bytes (the envelope's ``body`` is written last)."""
    head: dict[str, Any] = {"id": req_id, "type": req_type}
    if token is not None:
        head["token"] = token
    if deadline_s is not None:
        head["deadline_s"] = float(deadline_s)
    packed = msgpack.packb(head, use_bin_type=True)
    # a map of len(head) + 1 entries: the head's entries, then "body" -> the packed body map
    n = len(head) + 1
    prefix = packed[1:] if packed[0] & 0xF0 == 0x80 else None
    if prefix is None or n > 15:
        raise ProtocolError("bad_field", "envelope too large")
    message = bytes([0x80 | n]) + prefix + msgpack.packb("body") + body
    if len(message) > max_message_bytes:
        raise ProtocolError("too_large", f"body of {len(message)} bytes > limit {max_message_bytes}")
    return _HEADER.pack(MAGIC, PROTOCOL_VERSION, 0, len(message)) + message


def make_request(req_id: str, req_type: str, body: Mapping[str, Any], *, token: str | None = None,
                 deadline_s: float | None = None, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bytes:
    """Encode a request envelope (``body`` last, so the server can read the envelope without decoding it)."""
    return frame_request(req_id, req_type, pack_body(body), token=token, deadline_s=deadline_s,
                         max_message_bytes=max_message_bytes)


def make_reply(req_id: str, req_type: str, body: Mapping[str, Any], **kw: Any) -> bytes:
    """Encode a successful reply envelope (``version=`` the request's version)."""
    return encode_message({"id": req_id, "type": req_type, "ok": True, "body": dict(body)}, **kw)


def make_error(req_id: str, req_type: str, code: str, message: str, retryable: bool = False,
               version: int = PROTOCOL_VERSION) -> bytes:
    """Encode an error reply envelope (the message is cut to 2000 characters)."""
    return encode_message({"id": req_id, "type": req_type, "ok": False,
                           "error": {"code": code, "message": message[:2000], "retryable": retryable}},
                          version=version)


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
        raise ProtocolError("bad_field", f"field {name!r} holds {hi if hi > info.max else lo}, outside the "
                            f"{dtype} range")
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
        return {"ref": {"root": frames.root, "video": frames.video, "names": list(frames.names),
                        "subdir": frames.subdir}}
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
    return FrameRef(root=_field(ref, "root", str), video=_field(ref, "video", str), names=tuple(names),
                    subdir=ref.get("subdir", "JPEGImages"))


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


@dataclasses.dataclass(frozen=True)
class GroundRequest:
    """Ground each keyframe's description on its frame (``frames`` may hold only the keyframes)."""

    frames: Any  # np.ndarray uint8 [T, H, W, 3] | FrameRef
    keyframes: tuple[Keyframe, ...]

    TYPE = "ground"

    def to_body(self) -> dict[str, Any]:
        return {"frames": frames_to_wire(self.frames), "keyframes": _keyframes_to_wire(self.keyframes)}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "GroundRequest":
        frames = frames_from_wire(body.get("frames"), "frames")
        return cls(frames, _keyframes_from_wire(body.get("keyframes"), "keyframes", _clip_len(frames)))


@dataclasses.dataclass(frozen=True)
class GroundReply:
    """Boxes ``float32 [n_k, 4]`` (x1, y1, x2, y2 in original-frame pixels) and labels per keyframe."""

    boxes: tuple[np.ndarray, ...]
    labels: tuple[tuple[str, ...], ...]
    texts: tuple[str, ...]
    n_unparseable: int
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_body(self) -> dict[str, Any]:
        return {"boxes": [np.asarray(b, np.float32).reshape(-1, 4) for b in self.boxes],
                "labels": [list(x) for x in self.labels], "texts": list(self.texts),
                "n_unparseable": int(self.n_unparseable), "timings": dict(self.timings)}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "GroundReply":
        boxes = _field(body, "boxes", list)
        return cls(tuple(_array({"b": b}, "b", "float32", (None, 4)) for b in boxes),
                   tuple(tuple(x) for x in _field(body, "labels", list)),
                   tuple(_field(body, "texts", list)), _field(body, "n_unparseable", int), _timings(body))


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
            raise ProtocolError("bad_field", f"detection arrays disagree: {len(self.det_rollout)} rollouts, "
                                f"{len(self.det_frame)} frames, {d} boxes")
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
        return {"clip": frames_to_wire(self.clip), "num_rollouts": self.num_rollouts,
                "det_rollout": self.det_rollout, "det_frame": self.det_frame, "det_boxes": self.det_boxes}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "SegmentRequest":
        return cls(frames_from_wire(body.get("clip"), "clip"), _field(body, "num_rollouts", int),
                   _array(body, "det_rollout", "int32", (None,)), _array(body, "det_frame", "int32", (None,)),
                   _array(body, "det_boxes", "float32", (None, 4)))


@dataclasses.dataclass(frozen=True)
class SegmentReply:
    """``masks`` bool [R, T, H, W] per rollout and frame; ``obj_ids`` int32 [D]: the SAM2 object per detection."""

    masks: np.ndarray
    obj_ids: np.ndarray
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_body(self) -> dict[str, Any]:
        return {"masks": np.asarray(self.masks, bool), "obj_ids": np.asarray(self.obj_ids, np.int32),
                "timings": dict(self.timings)}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "SegmentReply":
        return cls(_array(body, "masks", "bool", (None,) * 4), _array(body, "obj_ids", "int32", (None,)),
                   _timings(body))


@dataclasses.dataclass(frozen=True)
class GroupRequest:
    """The whole reward query of one GRPO group: the clip and, per rollout, its keyframes."""

    clip: Any  # np.ndarray uint8 [T, H, W, 3] | FrameRef
    rollouts: tuple[tuple[Keyframe, ...], ...]

    TYPE = "ground_and_segment"

    def __post_init__(self):
        object.__setattr__(self, "rollouts", tuple(tuple(r) for r in self.rollouts))
        t = _clip_len(self.clip)
        for r, kfs in enumerate(self.rollouts):
            for k in kfs:
                if not isinstance(k, Keyframe) or not 0 <= k.frame_idx < t:
                    raise ProtocolError("bad_field", f"rollouts[{r}] keyframe {k!r} outside the {t}-frame clip")

    def to_body(self) -> dict[str, Any]:
        return {"clip": frames_to_wire(self.clip), "rollouts": [_keyframes_to_wire(r) for r in self.rollouts]}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "GroupRequest":
        clip = frames_from_wire(body.get("clip"), "clip")
        rollouts = _field(body, "rollouts", list)
        return cls(clip, tuple(_keyframes_from_wire(r, f"rollouts[{i}]", _clip_len(clip))
                               for i, r in enumerate(rollouts)))


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
        return {"boxes": [[np.asarray(b, np.float32).reshape(-1, 4) for b in r] for r in self.boxes],
                "masks": np.asarray(self.masks, bool), "n_unparseable": int(self.n_unparseable),
                "n_detections": int(self.n_detections), "timings": dict(self.timings)}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "GroupReply":
        boxes = tuple(tuple(_array({"b": b}, "b", "float32", (None, 4)) for b in r)
                      for r in _field(body, "boxes", list))
        return cls(boxes, _array(body, "masks", "bool", (None,) * 4), _field(body, "n_unparseable", int),
                   _field(body, "n_detections", int), _timings(body))

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
            raise ProtocolError("bad_field", f"field 'prompts' must be a list of str, got "
                                f"{type(self.prompts).__name__}")
        object.__setattr__(self, "prompts", tuple(self.prompts))
        if not 0 < len(self.prompts) <= self.MAX_PROMPTS:
            raise ProtocolError("bad_field", f"field 'prompts' holds {len(self.prompts)} prompts, expected 1 to "
                                f"{self.MAX_PROMPTS}")
        for i, prompt in enumerate(self.prompts):
            _str(prompt, f"field 'prompts'[{i}]", self.MAX_PROMPT_CHARS)
        n = self.max_new_tokens
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= self.MAX_NEW_TOKENS:
            raise ProtocolError("bad_field", f"field 'max_new_tokens' = {n!r:.80} is not an int in "
                                f"[1, {self.MAX_NEW_TOKENS}]")
        object.__setattr__(self, "max_new_tokens", int(n))

    def to_body(self) -> dict[str, Any]:
        return {"prompts": list(self.prompts), "max_new_tokens": self.max_new_tokens}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "JudgeRequest":
        return cls(_field(body, "prompts", list), _field(body, "max_new_tokens", int))


@dataclasses.dataclass(frozen=True)
class JudgeReply:
    """One decoded continuation per prompt, in the request's order."""

    texts: tuple[str, ...]
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_body(self) -> dict[str, Any]:
        return {"texts": list(self.texts), "timings": dict(self.timings)}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "JudgeReply":
        texts = _field(body, "texts", list)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ProtocolError("bad_field", f"field 'texts'[{i}] is a {type(t).__name__}, expected str")
        return cls(tuple(texts), _timings(body))


REQUEST_CLASSES = {c.TYPE: c for c in (GroundRequest, SegmentRequest, GroupRequest, JudgeRequest)}
REPLY_CLASSES = {"ground": GroundReply, "segment": SegmentReply, "ground_and_segment": GroupReply,
                 "judge": JudgeReply}
