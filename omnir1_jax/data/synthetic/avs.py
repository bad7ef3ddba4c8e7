"""Audio-visual variant of the synthetic world: shapes that sound distinct tones at known times.

A clip is 10 s at 16 kHz with 10 frames at 1 fps (the Ref-AVS layout). Each sounding shape plays one
instrument-like tone over a known interval; expressions refer to the sounds ("the object making the
violin-like sound", "the object that sounds after the violin-like tone", "the object that sounds first").
A null expression names a tone that nobody plays (Ref-AVS ``test_n``: the target is empty on every frame).
Pure numpy.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np

from omnir1_jax.data.synthetic.world import Expression, Track

SAMPLE_RATE = 16000
CLIP_SECONDS = 10
N_FRAMES = 10  # 1 fps, frames/{0..9}.jpg

TONES: tuple[str, ...] = ("violin-like", "flute-like", "drum-like", "bell-like", "horn-like")


def tone(name: str, n_samples: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A distinct synthetic timbre per tone name (float32 in [-1, 1])."""
    t = np.arange(n_samples) / sample_rate
    if name == "violin-like":  # bright sawtooth at A4 with vibrato
        f = 440.0 * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
        phase = np.cumsum(f) / sample_rate
        y = 2.0 * (phase - np.floor(phase + 0.5))
    elif name == "flute-like":  # nearly pure sine at A5
        y = np.sin(2 * np.pi * 880.0 * t) + 0.05 * np.sin(2 * np.pi * 1760.0 * t)
    elif name == "drum-like":  # low decaying thumps, 2 per second
        local = np.mod(t, 0.5)
        y = np.sin(2 * np.pi * 90.0 * local) * np.exp(-local * 12.0)
    elif name == "bell-like":  # inharmonic partials, decaying
        y = sum(a * np.sin(2 * np.pi * f * t) for f, a in ((1200.0, 1.0), (2760.0, 0.5), (4130.0, 0.25)))
        y = y * np.exp(-np.mod(t, 1.0) * 3.0)
    elif name == "horn-like":  # square wave at A3
        y = np.sign(np.sin(2 * np.pi * 220.0 * t)) * 0.8
    else:
        raise ValueError(f"unknown tone {name!r}; expected one of {TONES}")
    y = np.asarray(y, dtype=np.float64)
    return (0.6 * y / max(1e-9, np.abs(y).max())).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class SoundEvent:
    obj_id: int
    tone: str
    start_s: float
    end_s: float


def simulate_sounds(tracks: Sequence[Track], rng: np.random.Generator) -> list[SoundEvent]:
    """Give 2..len(tracks) objects distinct tones with start times >= 1.5 s apart (sorted by start)."""
    n_sounding = int(rng.integers(2, len(tracks) + 1))
    who = rng.permutation([tr.obj_id for tr in tracks])[:n_sounding]
    names = rng.choice(TONES, size=n_sounding, replace=False)
    slots = np.sort(rng.choice(np.arange(0, 7), size=n_sounding, replace=False)) * 1.5 % 8.5
    starts = np.sort(slots)
    if n_sounding > 1 and np.diff(starts).min() < 1.5:
        starts = np.arange(n_sounding) * (8.0 / n_sounding)
    events = []
    for obj, name, start in zip(who, names, starts):
        dur = float(rng.uniform(1.0, 2.0))
        events.append(SoundEvent(int(obj), str(name), float(start), min(float(start) + dur, CLIP_SECONDS)))
    return sorted(events, key=lambda e: e.start_s)


def mix_audio(events: Sequence[SoundEvent], rng: np.random.Generator) -> np.ndarray:
    """The 10 s mono waveform: every event's tone over its interval plus faint noise."""
    n = SAMPLE_RATE * CLIP_SECONDS
    y = rng.normal(0.0, 0.003, size=n)
    for ev in events:
        a, b = int(ev.start_s * SAMPLE_RATE), int(ev.end_s * SAMPLE_RATE)
        y[a:b] += tone(ev.tone, b - a)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def avs_expressions(events: Sequence[SoundEvent], rng: np.random.Generator) -> tuple[list[Expression], str | None]:
    """Expressions about the sounds, plus one null expression (a tone nobody plays) or ``None``."""
    out = [Expression(f"the object making the {ev.tone} sound", (ev.obj_id,), 0, "makes_tone") for ev in events]
    out.append(Expression("the object that sounds first", (events[0].obj_id,), 1, "sounds_first"))
    for prev, nxt in itertools.pairwise(events):
        out.append(Expression(f"the object that sounds after the {prev.tone} tone", (nxt.obj_id,), 1, "sounds_after"))
    unused = [t for t in TONES if t not in {ev.tone for ev in events}]
    null = f"the object making the {rng.choice(unused)} sound" if unused else None
    return out, null
