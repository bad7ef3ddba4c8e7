"""Minimal safetensors reader / writer on numpy memory maps (bfloat16 included, via ml_dtypes).

The ``safetensors`` package's numpy backend cannot return bfloat16 tensors, which released checkpoints use;
the format is simple (8-byte little-endian header length, JSON header, raw little-endian data), so a memory
map gives zero-copy views and lets a sharded loader read only the slice each device needs.
"""

from __future__ import annotations

import glob
import json
import os
import struct as _struct
import tempfile
from collections.abc import Iterator

import ml_dtypes
import numpy as np

DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("bool"),
}
_NAMES = {v: k for k, v in DTYPES.items()}


class CheckpointError(ValueError):
    """A checkpoint file is missing, malformed, or lacks / mis-shapes a tensor."""


class SafetensorsDir:
    """Index of every tensor in ``*.safetensors`` files of a directory; :meth:`get` returns a read-only view."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        files = sorted(glob.glob(os.path.join(self.path, "*.safetensors")))
        if not files:
            raise CheckpointError(f"{self.path}: no *.safetensors files")
        self._where: dict[str, tuple[str, str, tuple[int, ...], int, int]] = {}
        self._maps: dict[str, np.memmap] = {}
        for f in files:
            with open(f, "rb") as fh:
                raw = fh.read(8)
                if len(raw) != 8:
                    raise CheckpointError(f"{f}: truncated header")
                (n,) = _struct.unpack("<Q", raw)
                try:
                    header = json.loads(fh.read(n))
                except json.JSONDecodeError as e:
                    raise CheckpointError(f"{f}: invalid header ({e})") from None
            for key, meta in header.items():
                if key == "__metadata__":
                    continue
                if meta["dtype"] not in DTYPES:
                    raise CheckpointError(f"{f}: tensor {key!r} has unsupported dtype {meta['dtype']}")
                begin, end = meta["data_offsets"]
                self._where[key] = (f, meta["dtype"], tuple(meta["shape"]), 8 + n + begin, 8 + n + end)

    def keys(self) -> list[str]:
        return list(self._where)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def shape(self, key: str) -> tuple[int, ...]:
        return self._where[key][2]

    def dtype(self, key: str) -> np.dtype:
        """The stored numpy dtype of tensor ``key`` (from the header; nothing is read)."""
        return DTYPES[self._where[key][1]]

    def get(self, key: str) -> np.ndarray:
        """Memory-mapped read-only view of tensor ``key``."""
        try:
            f, dt, shape, start, end = self._where[key]
        except KeyError:
            raise CheckpointError(f"{self.path}: tensor {key!r} not found") from None
        if f not in self._maps:
            self._maps[f] = np.memmap(f, dtype=np.uint8, mode="r")
        buf = self._maps[f][start:end]
        return buf.view(DTYPES[dt]).reshape(shape)


def save_file(tensors: dict[str, np.ndarray], filename: str, metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` as one safetensors file, atomically (temp file + rename)."""
    header: dict = {"__metadata__": metadata or {"format": "pt"}}
    offset = 0
    arrays = []
    for key in sorted(tensors):
        a = np.ascontiguousarray(tensors[key])
        if a.dtype not in _NAMES:
            raise CheckpointError(f"{filename}: tensor {key!r} has unsupported dtype {a.dtype}")
        nbytes = a.nbytes
        header[key] = {"dtype": _NAMES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + nbytes]}
        arrays.append(a)
        offset += nbytes
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    d = os.path.dirname(os.path.abspath(filename))
    fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(_struct.pack("<Q", len(hb)))
            fh.write(hb)
            for a in arrays:
                fh.write(a.tobytes())
        os.replace(tmp, filename)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
