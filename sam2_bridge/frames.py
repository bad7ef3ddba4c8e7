"""Reading clips named by a :class:`~sam2_bridge.protocol.FrameRef` (the bridge reads dataset frames itself)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from sam2_bridge.protocol import FrameRef, ProtocolError


def frame_paths(ref: FrameRef) -> list[str]:
    """``root/subdir/video/name`` per name (``.jpg`` appended when a name has no suffix)."""
    base = os.path.join(ref.root, ref.subdir, ref.video)
    return [os.path.join(base, n if os.path.splitext(n)[1] else n + ".jpg") for n in ref.names]


def resolve_frames(frames: np.ndarray | FrameRef, allowed_roots: Sequence[str] = ()) -> np.ndarray:
    """uint8 [T, H, W, 3]: the array itself, or the referenced files decoded as RGB.

    Raises ``ProtocolError("bad_frames")`` naming the file when one is missing, unreadable or of another
    size, or when ``allowed_roots`` is given and the root is not under one of them.
    """
    if not isinstance(frames, FrameRef):
        return frames
    from PIL import Image

    root = os.path.realpath(frames.root)
    if allowed_roots and not any(root == os.path.realpath(a) or root.startswith(os.path.realpath(a) + os.sep)
                                 for a in allowed_roots):
        raise ProtocolError("bad_frames", f"dataset root {frames.root!r} is not under an allowed --data-root")
    out = []
    for path in frame_paths(frames):
        if not os.path.realpath(path).startswith(root + os.sep):
            raise ProtocolError("bad_frames", f"frame {path!r} leaves the dataset root")
        try:
            with Image.open(path) as img:
                arr = np.asarray(img.convert("RGB"))
        except (OSError, ValueError) as exc:
            raise ProtocolError("bad_frames", f"cannot read frame {path!r}: {exc}") from None
        if out and arr.shape != out[0].shape:
            raise ProtocolError("bad_frames", f"frame {path!r} has shape {arr.shape}, first frame {out[0].shape}")
        out.append(arr)
    return np.stack(out)
