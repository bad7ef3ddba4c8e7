"""User media without torch: video files (PyAV), frame folders (PIL) and audio, as numpy arrays.

Used by the inference CLI (a video or a frame folder plus a query) and by the CrossOmni QA batches (a clip
with its own audio track). Shapes: T frames, H/W height/width; frames are uint8 ``[T, H, W, 3]`` RGB and
audio is mono float32 at 16 kHz (what the Whisper features of :mod:`omnir1_jax.data.audio` expect).

Every unreadable input raises :class:`~omnir1_jax.data.errors.DataFormatError` naming the file.
"""

from __future__ import annotations

import dataclasses
import fractions
import os
import re

import numpy as np

from omnir1_jax.data.audio import load_audio
from omnir1_jax.data.errors import DataFormatError

SAMPLE_RATE = 16000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclasses.dataclass(frozen=True)
class Video:
    """A decoded clip.

    Attributes:
      frames: uint8 ``[T, H, W, 3]`` RGB at the original resolution.
      names: one name per frame (a folder's file stems; ``00000``, ``00001``... for a video file).
      fps: the frame rate of the decoded frames (after ``stride``), ``None`` for a frame folder.
      audio: mono float32 waveform at 16 kHz, or ``None`` (no audio track / not asked for).
    """

    frames: np.ndarray
    names: tuple[str, ...]
    fps: float | None = None
    audio: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


def _natural_key(name: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def list_frame_files(folder: str) -> list[str]:
    """Image files of ``folder`` in natural order (``2.jpg`` before ``10.jpg``)."""
    if not os.path.isdir(folder):
        raise DataFormatError("not a directory", path=folder)
    files = [f for f in os.listdir(folder) if f.lower().endswith(IMAGE_SUFFIXES)]
    if not files:
        raise DataFormatError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in the folder", path=folder)
    return [os.path.join(folder, f) for f in sorted(files, key=_natural_key)]


def _read_folder(folder: str, stride: int, max_frames: int | None) -> Video:
    # lazy: the transforms pull in grain and jax
    from omnir1_jax.data.transforms import load_frame

    paths = list_frame_files(folder)[::stride]
    if max_frames:
        paths = paths[:max_frames]
    frames = [load_frame(p) for p in paths]
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise DataFormatError(f"frames differ in size: {sorted(shapes)}", path=folder)
    names = tuple(os.path.splitext(os.path.basename(p))[0] for p in paths)
    return Video(np.stack(frames), names)


def _decode_audio(container, path: str) -> np.ndarray | None:
    import av

    if not container.streams.audio:
        return None
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks = []
    try:
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as e:
        raise DataFormatError(f"cannot decode the audio track: {e}", path=path) from None
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def _read_file(path: str, stride: int, max_frames: int | None, with_audio: bool) -> Video:
    import av

    try:
        container = av.open(path)
    except FileNotFoundError:
        raise DataFormatError("video file missing", path=path) from None
    except av.error.FFmpegError as e:
        raise DataFormatError(f"cannot open video: {e}", path=path) from None
    with container:
        if not container.streams.video:
            raise DataFormatError("no video stream", path=path)
        stream = container.streams.video[0]
        rate = float(stream.average_rate) if stream.average_rate else None
        frames = []
        try:
            for i, frame in enumerate(container.decode(stream)):
                if i % stride:
                    continue
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames and len(frames) >= max_frames:
                    break
        except av.error.FFmpegError as e:
            raise DataFormatError(f"cannot decode frame {len(frames) * stride}: {e}", path=path) from None
    if not frames:
        raise DataFormatError("the video has no frames", path=path)
    audio = None
    if with_audio:
        with av.open(path) as container:
            audio = _decode_audio(container, path)
    names = tuple(f"{i:05d}" for i in range(len(frames)))
    return Video(np.stack(frames), names, None if rate is None else rate / stride, audio)


def read_video(path: str, *, stride: int = 1, max_frames: int | None = None, with_audio: bool = True) -> Video:
    """Decode a video file (any container FFmpeg reads) or a folder of frame images.

    Args:
      path: a video file, or a directory of ``.jpg`` / ``.png`` frames (natural order).
      stride: keep every ``stride``-th frame (segmentation cost grows with the frame count).
      max_frames: keep at most this many frames (after ``stride``).
      with_audio: also decode a video file's first audio track (mono, 16 kHz); folders have none.
    """
    if stride < 1:
        raise DataFormatError(f"stride must be >= 1, got {stride}", path=path)
    if os.path.isdir(path):
        return _read_folder(path, stride, max_frames)
    return _read_file(path, stride, max_frames, with_audio)


def read_audio(path: str) -> np.ndarray:
    """Mono 16 kHz float32 waveform of an audio file (WAV/FLAC via soundfile, anything else via PyAV)."""
    if path.lower().endswith((".wav", ".flac", ".ogg")):
        return load_audio(path)
    import av

    try:
        with av.open(path) as container:
            audio = _decode_audio(container, path)
    except FileNotFoundError:
        raise DataFormatError("audio file missing", path=path) from None
    except av.error.FFmpegError as e:
        raise DataFormatError(f"cannot open audio: {e}", path=path) from None
    if audio is None:
        raise DataFormatError("no audio stream", path=path)
    return audio


def write_video(path: str, frames: np.ndarray, fps: float = 10.0, audio: np.ndarray | None = None) -> str:
    """Encode uint8 ``[T, H, W, 3]`` frames as an H.264 MP4 (even sizes are padded), optionally with a mono
    16 kHz AAC track; written to a temporary name and renamed, so no half-written file is left behind."""
    import av

    frames = np.asarray(frames, np.uint8)
    t, h, w = frames.shape[:3]
    ph, pw = h + h % 2, w + w % 2
    tmp = f"{path}.tmp-{os.getpid()}.mp4"
    try:
        with av.open(tmp, mode="w") as out:
            vs = out.add_stream("libx264", rate=fractions.Fraction(fps).limit_denominator(1000))
            vs.width, vs.height, vs.pix_fmt = pw, ph, "yuv420p"
            vs.options = {"crf": "18", "preset": "veryfast"}
            astream = None
            if audio is not None:
                astream = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
            for f in frames:
                if (ph, pw) != (h, w):
                    f = np.pad(f, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
                for packet in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                    out.mux(packet)
            for packet in vs.encode(None):
                out.mux(packet)
            if astream is not None:
                wav = np.asarray(audio, np.float32).reshape(1, -1)
                af = av.AudioFrame.from_ndarray(wav, format="flt", layout="mono")
                af.sample_rate = SAMPLE_RATE
                for packet in astream.encode(af):
                    out.mux(packet)
                for packet in astream.encode(None):
                    out.mux(packet)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
