"""Audio for Qwen2.5-Omni: load mono 16 kHz, Whisper log-mel features (128 bins), audio token counts. numpy only.

Matches ``WhisperFeatureExtractor(feature_size=128)`` as ``Qwen2_5OmniProcessor`` calls it (``padding="max_length"``,
``return_attention_mask=True``): the waveform is zero-padded (or truncated) to 30 s = 480000 samples; a
centred STFT (reflect padding ``n_fft // 2``, periodic Hann window, ``n_fft = 400``, hop 160) gives 3001 frames,
the power spectrum goes through a Slaney-normalised Slaney-scale mel filter bank (0..8000 Hz), then
``log10(max(mel, 1e-10))``, the last frame is dropped, values are floored at ``max - 8`` and mapped by
``(x + 4) / 4``. ``feature_attention_mask`` marks the frames of real (unpadded) audio: the sample mask taken
every 160 samples. The audio encoder turns ``L`` feature frames into
``((L - 1) // 2 + 1 - 2) // 2 + 1`` tokens.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from omnir1_jax.data.errors import DataFormatError

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
N_MELS = 128
CHUNK_SECONDS = 30
N_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    lin = 3.0 * f / 200.0
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    lin = 200.0 * m / 3.0
    log = 1000.0 * np.exp(np.log(6.4) * (m - 15.0) / 27.0)
    return np.where(m >= 15.0, log, lin)


@functools.lru_cache(maxsize=4)
def mel_filters(
    n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE, f_max: float = 8000.0
) -> np.ndarray:
    """Slaney-scale, Slaney-normalised triangular filter bank ``[n_fft // 2 + 1, n_mels]`` float64."""
    fft_freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(f_max), n_mels + 2))
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    up = (fft_freqs[:, None] - lo[None]) / (mid - lo)[None]
    down = (hi[None] - fft_freqs[:, None]) / (hi - mid)[None]
    fb = np.maximum(0.0, np.minimum(up, down))
    return fb * (2.0 / (hi - lo))[None]


def _hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)  # periodic


def log_mel(waveform: np.ndarray, n_mels: int = N_MELS) -> np.ndarray:
    """Whisper log-mel of an already padded waveform ``[N]`` -> ``[n_mels, N // 160]`` float32."""
    x = np.asarray(waveform, dtype=np.float32).astype(np.float64)
    x = np.pad(x, (N_FFT // 2, N_FFT // 2), mode="reflect")
    n_frames = 1 + (x.size - N_FFT) // HOP_LENGTH
    idx = np.arange(N_FFT)[None] + HOP_LENGTH * np.arange(n_frames)[:, None]
    spec = np.fft.rfft(x[idx] * _hann(N_FFT)[None], axis=-1)
    power = spec.real**2 + spec.imag**2  # [frames, freq]
    mel = mel_filters(n_mels).T @ power.T  # [n_mels, frames]
    logm = np.log10(np.maximum(mel, 1e-10))[:, :-1]
    logm = np.maximum(logm, logm.max() - 8.0)
    return ((logm + 4.0) / 4.0).astype(np.float32)


def whisper_features(waveform: np.ndarray, n_mels: int = N_MELS) -> dict[str, np.ndarray]:
    """Mono 16 kHz ``[N]`` -> ``input_features [n_mels, 3000]`` float32, ``feature_attention_mask [3000]`` int32.

    Audio longer than 30 s is truncated to its first 30 s (as the reference extractor does).
    """
    w = np.asarray(waveform, dtype=np.float32).reshape(-1)
    n = min(w.size, N_SAMPLES)
    padded = np.zeros(N_SAMPLES, dtype=np.float32)
    padded[:n] = w[:n]
    mask = np.zeros(N_SAMPLES, dtype=np.int32)
    mask[:n] = 1
    return {"input_features": log_mel(padded, n_mels), "feature_attention_mask": mask[::HOP_LENGTH].copy()}


def num_audio_tokens(feature_length: int) -> int:
    """Audio placeholder tokens for ``feature_length`` valid feature frames (two stride-2 reductions)."""
    n = (int(feature_length) - 1) // 2 + 1
    return (n - 2) // 2 + 1


def load_audio(path: str, *, record: str | None = None, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as mono float32 at ``sample_rate`` (channels averaged, polyphase resampling)."""
    import soundfile as sf

    if not os.path.isfile(path):  # libsndfile reports a missing file as "System error"
        raise DataFormatError("audio file missing", path=path, record=record)
    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise DataFormatError("audio file missing", path=path, record=record) from None
    except Exception as e:
        raise DataFormatError(f"cannot decode audio: {e}", path=path, record=record) from None
    mono = data.mean(axis=1)
    if sr != sample_rate:
        from scipy.signal import resample_poly

        g = np.gcd(int(sr), int(sample_rate))
        mono = resample_poly(mono, sample_rate // g, int(sr) // g).astype(np.float32)
    return mono.astype(np.float32)
