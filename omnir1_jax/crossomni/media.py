"""User media (video files, frame folders, audio) as numpy arrays: moved to :mod:`omnir1_jax.data.media` (the data
layer, so the synthetic suite fixtures can write clips); these names stay importable from here."""

from omnir1_jax.data.media import (
    IMAGE_SUFFIXES,
    SAMPLE_RATE,
    Video,
    list_frame_files,
    read_audio,
    read_video,
    write_video,
)

__all__ = ["IMAGE_SUFFIXES", "SAMPLE_RATE", "Video", "list_frame_files", "read_audio", "read_video", "write_video"]
