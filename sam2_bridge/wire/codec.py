"""Framing, array encoding, decoding limits and the request envelope of the bridge's protocol.

The schema itself (messages, error codes, versions) is documented in :mod:`sam2_bridge.wire.protocol`, which
re-exports everything public here; this module imports neither torch nor jax (only numpy and msgpack).
"""

from __future__ import annotations

import dataclasses
import math
import struct
from collections.abc import Mapping
from typing import Any

import msgpack
import numpy as np

PROTOCOL_VERSION = 3
SUPPORTED_VERSIONS = (1, 2, 3)
CONTEXT_VERSION = 3  # the first version whose ground / ground_and_segment bodies may carry "contexts"
MAGIC = b"S2BR"
_HEADER = struct.Struct("<4sHHQ")
HEADER_BYTES = _HEADER.size
DEFAULT_MAX_MESSAGE_BYTES = 512 * 1024 * 1024
REQUEST_TYPES = ("health", "ground", "segment", "ground_and_segment", "judge")
ERROR_CODES = (
    "bad_header",
    "bad_version",
    "truncated",
    "too_large",
    "bad_body",
    "bad_type",
    "bad_field",
    "bad_frames",
    "forbidden",
    "unauthorized",
    "expired",
    "overloaded",
    "no_judge",
    "no_segmenter",
    "worker_died",
    "internal",
)
MAX_ID_CHARS = 64
MAX_TOKEN_CHARS = 1024
_EXT_NDARRAY = 1
_DTYPES: tuple[str, ...] = ("bool", "uint8", "uint16", "int16", "int32", "int64", "float16", "float32", "float64")
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
    # bool arrays travel as bits and unpack to 8x their size; no request has one (replies do: masks), so a
    # server bounds them tightly (128 M elements) and a client decoding replies passes a large value
    max_bool_elements: int = 1 << 27

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


def _unpack_array(code: int, payload: bytes, copy: bool = True, max_bool: int = 1 << 62) -> Any:
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
        if count > max_bool:
            raise ProtocolError("too_large", f"bool array of {count} elements > {max_bool}")
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


def encode_message(
    message: Mapping[str, Any], max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, version: int = PROTOCOL_VERSION
) -> bytes:
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
            raise ProtocolError(
                "too_large", f"more than {limits.max_items} msgpack list / map entries (--max-msgpack-items)"
            )
        return container

    def ext_hook(code: int, payload: bytes) -> Any:
        return _unpack_array(code, payload, copy_arrays, limits.max_bool_elements)

    n = max(len(body), 1)
    try:
        return msgpack.unpackb(
            body,
            ext_hook=ext_hook,
            raw=False,
            strict_map_key=True,
            use_list=True,
            list_hook=count,
            object_hook=count,
            max_str_len=min(n, limits.max_str_len),
            max_bin_len=n,
            max_array_len=min(n, limits.max_container_len),
            max_map_len=min(n, limits.max_container_len),
            max_ext_len=n,
        )
    except ProtocolError:
        raise
    except ValueError as exc:
        # msgpack says "... exceeds max_array_len(...)" for an over-long container: a budget, not a syntax error
        if "exceeds max_" in str(exc):
            raise ProtocolError("too_large", f"msgpack body: {exc} (--max-msgpack-container)") from None
        raise ProtocolError("bad_body", f"undecodable msgpack body: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # msgpack raises several types (ExtraData, StackError, FormatError...)
        raise ProtocolError("bad_body", f"undecodable msgpack body: {type(exc).__name__}: {exc}") from None


def decode_message(data: bytes, max_message_bytes: int | DecodeLimits = DEFAULT_MAX_MESSAGE_BYTES) -> dict[str, Any]:
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
    up = msgpack.Unpacker(
        raw=False,
        strict_map_key=True,
        max_buffer_size=max(len(body), 1),
        max_str_len=4 * MAX_TOKEN_CHARS,
        max_bin_len=4 * MAX_TOKEN_CHARS,
        max_array_len=16,
        max_map_len=16,
        max_ext_len=4 * MAX_TOKEN_CHARS,
    )
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
    return Envelope(
        version,
        req_id,
        fields.get("type"),
        fields.get("token"),
        fields.get("deadline_s"),
        None if span is None else body[span[0] : span[1]],
    )


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


def decode_body(env: Envelope, limits: DecodeLimits | int | None = None, copy_arrays: bool = True) -> dict[str, Any]:
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


def frame_request(
    req_id: str,
    req_type: str,
    body: bytes,
    *,
    token: str | None = None,
    deadline_s: float | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    version: int = PROTOCOL_VERSION,
) -> bytes:
    """A request message around already packed ``body`` bytes (the envelope's ``body`` is written last), framed
    as ``version`` (one of :data:`SUPPORTED_VERSIONS`)."""
    if version not in SUPPORTED_VERSIONS:
        raise ProtocolError("bad_version", f"protocol version {version}, this side speaks {SUPPORTED_VERSIONS}")
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
    return _HEADER.pack(MAGIC, version, 0, len(message)) + message


def make_request(
    req_id: str,
    req_type: str,
    body: Mapping[str, Any],
    *,
    token: str | None = None,
    deadline_s: float | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    version: int = PROTOCOL_VERSION,
) -> bytes:
    """Encode a request envelope (``body`` last, so the server can read the envelope without decoding it)."""
    return frame_request(
        req_id,
        req_type,
        pack_body(body),
        token=token,
        deadline_s=deadline_s,
        max_message_bytes=max_message_bytes,
        version=version,
    )


def make_reply(req_id: str, req_type: str, body: Mapping[str, Any], **kw: Any) -> bytes:
    """Encode a successful reply envelope (``version=`` the request's version)."""
    return encode_message({"id": req_id, "type": req_type, "ok": True, "body": dict(body)}, **kw)


def make_error(
    req_id: str, req_type: str, code: str, message: str, retryable: bool = False, version: int = PROTOCOL_VERSION
) -> bytes:
    """Encode an error reply envelope (the message is cut to 2000 characters)."""
    return encode_message(
        {
            "id": req_id,
            "type": req_type,
            "ok": False,
            "error": {"code": code, "message": message[:2000], "retryable": retryable},
        },
        version=version,
    )
