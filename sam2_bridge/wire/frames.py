"""Reading clips named by a :class:`~sam2_bridge.wire.protocol.FrameRef` (the bridge reads dataset frames itself).

Security model: a bridge reads referenced frames only under its ``--data-root`` directories (none given: every
``FrameRef`` is refused, ``forbidden``). Each frame path is resolved (``realpath``) and must lie strictly under
one of the (resolved) roots; the file is then opened by walking the resolved path from the root directory one
component at a time with ``O_NOFOLLOW`` (``openat``), so a symlink swapped in after the check makes the open
fail instead of leading outside the root, and the opened descriptor must be a regular file (a FIFO or a
device is refused without blocking). Whatever the reason (missing, outside the roots, not a regular file, not
an image), the client gets the same ``bad_frames`` message naming only the frame's index: the reply does not
tell whether anything exists outside the roots.

Cost: every frame's header (its size) is read before any frame is decoded, and checked against the
:class:`~sam2_bridge.wire.budget.Budget` (pixels per frame, frames x pixels, reply size), so an oversized image or
clip is refused (``too_large``) without decoding it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence

import numpy as np

from sam2_bridge.wire.protocol import FrameRef, ProtocolError


def frame_paths(ref: FrameRef) -> list[str]:
    """``root/subdir/video/name`` per name (``.jpg`` appended when a name has no suffix)."""
    base = os.path.join(ref.root, ref.subdir, ref.video)
    return [os.path.join(base, n if os.path.splitext(n)[1] else n + ".jpg") for n in ref.names]


class _Refused(Exception):
    """A frame that may not or cannot be read (the reason stays on the server)."""


def _open_flags() -> tuple[int, int]:
    common = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    return common | getattr(os, "O_DIRECTORY", 0), common | getattr(os, "O_NONBLOCK", 0)


def open_beneath(path: str, roots: Sequence[str]) -> int:
    """A read-only descriptor of the regular file ``path`` resolves to, strictly under one of ``roots``
    (already ``realpath``-ed); raises ``_Refused`` otherwise. No symlink is followed below the root, so a
    component replaced by a symlink between the check and the open cannot redirect the open."""
    real = os.path.realpath(path)
    for root in roots:
        if real.startswith(root.rstrip(os.sep) + os.sep):
            rel = real[len(root.rstrip(os.sep)) + 1 :]
            break
    else:
        raise _Refused("outside the roots")
    parts = [p for p in rel.split(os.sep) if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise _Refused("not a file path")
    dir_flags, file_flags = _open_flags()
    try:
        dfd = os.open(root, dir_flags)
    except OSError as exc:
        raise _Refused(f"root: {exc}") from None
    try:
        for part in parts[:-1]:
            nfd = os.open(part, dir_flags, dir_fd=dfd)
            os.close(dfd)
            dfd = nfd
        fd = os.open(parts[-1], file_flags, dir_fd=dfd)
    except OSError as exc:  # ELOOP (a symlink appeared), ENOENT, ENOTDIR, EACCES...
        raise _Refused(str(exc)) from None
    finally:
        os.close(dfd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Refused("not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refused(i: int) -> ProtocolError:
    return ProtocolError(
        "bad_frames", f"frame {i} of the reference is not a readable image under an allowed --data-root"
    )


@contextlib.contextmanager
def _open_image(path: str, roots: Sequence[str], i: int):
    """A lazily opened PIL image (only its header read until it is converted); closes the file after."""
    from PIL import Image

    try:
        fd = open_beneath(path, roots)
    except _Refused:
        raise _refused(i) from None
    with os.fdopen(fd, "rb") as f:
        try:
            img = Image.open(f)
        except Image.DecompressionBombError as exc:  # a header Pillow refuses outright (> 2x its pixel limit)
            raise ProtocolError("too_large", f"frame {i}: {exc}") from None
        except Exception:  # not an image (UnidentifiedImageError, truncated header, ...)
            raise _refused(i) from None
        with img:
            yield img


def resolve_frames(
    frames: np.ndarray | FrameRef, allowed_roots: Sequence[str] = (), budget=None, rollouts: int = 0
) -> np.ndarray:
    """uint8 [T, H, W, 3]: the array itself, or the referenced files decoded as RGB.

    Raises ``ProtocolError``: ``forbidden`` when ``allowed_roots`` is empty, ``bad_frames`` when a frame is not
    a readable image under them (one message for every reason) or frames differ in size, ``too_large`` when the
    headers exceed ``budget`` (a :class:`~sam2_bridge.wire.budget.Budget`; ``rollouts`` > 0 also checks the size of
    the masks reply).
    """
    if not isinstance(frames, FrameRef):
        return frames
    if not allowed_roots:
        raise ProtocolError(
            "forbidden",
            "this bridge was started without --data-root: it reads no frame "
            "references (send the frames as an array, or start it with --data-root DIR)",
        )
    from PIL import Image

    roots = [os.path.realpath(r) for r in allowed_roots]
    paths = frame_paths(frames)
    if budget is not None and len(paths) > budget.max_frames:  # before touching a file
        raise ProtocolError("too_large", f"{len(paths)} frames > --max-frames {budget.max_frames}")
    sizes = []
    for i, path in enumerate(paths):  # pass 1: headers only
        with _open_image(path, roots, i) as img:
            sizes.append((img.height, img.width))
    if budget is not None:
        budget.check_frames(len(paths), sizes, rollouts)
    out = []
    for i, path in enumerate(paths):  # pass 2: decode what was checked (the same size, or refused)
        with _open_image(path, roots, i) as img:
            if (img.height, img.width) != sizes[i]:
                raise ProtocolError("bad_frames", f"frame {i} changed while it was being read")
            try:
                arr = np.asarray(img.convert("RGB"))
            except Image.DecompressionBombError as exc:
                raise ProtocolError("too_large", f"frame {i}: {exc}") from None
            except (OSError, ValueError, SyntaxError):  # a corrupt image body (truncated, bad chunks, ...)
                raise _refused(i) from None
        if out and arr.shape != out[0].shape:
            raise ProtocolError(
                "bad_frames", f"frame {i} is {arr.shape[1]}x{arr.shape[0]}, frame 0 {out[0].shape[1]}x{out[0].shape[0]}"
            )
        out.append(arr)
    return np.stack(out)
