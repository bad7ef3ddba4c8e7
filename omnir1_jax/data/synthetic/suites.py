"""Tiny synthetic copies of the multiple-choice suites, each in its published layout (the file and field
names of :mod:`omnir1_jax.data.suites_omni` / :mod:`omnir1_jax.data.suites_ood`), with media made here:
clips are a few frames of a moving square (with a sine-tone audio track where the suite has sound), images
are PNGs, audio files WAVs. Tests and the CPU smoke runs of the QA experiments read them; nothing is downloaded.

``write_suite(name, root)`` writes one; ``write_suites(root, names)`` writes each into ``root/<name>`` (the
layout of ``data.suites``). The questions are fixed (below), so a test can state what a reader must return.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from omnir1_jax.data.media import SAMPLE_RATE, write_video
from omnir1_jax.data.suites_omni import MVBENCH_TASKS, VIDEOMME_JSONL, VIDEOMME_PARQUET

SIZE = (32, 32)
FRAMES = 4


def _frames(seed: int, size=SIZE, n: int = FRAMES) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fr = np.full((n, *size, 3), 20, np.uint8)
    colour = rng.integers(80, 250, 3, dtype=np.uint8)
    for t in range(n):
        y, x = 2 + 2 * t, 4 + seed % 8
        fr[t, y : y + 10, x : x + 10] = colour
    return fr


def _tone(seed: int, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    return (0.2 * np.sin(2 * np.pi * (220 + 55 * seed) * t)).astype(np.float32)


def _clip(path: str, seed: int, audio: bool = True) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_video(path, _frames(seed), fps=2.0, audio=_tone(seed) if audio else None)


def _json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)


def _jsonl(path: str, rows) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))


# --------------------------------------------------------------------------------------------------- OmniBench
# (task type, audio type, options, index of the correct option)
OMNIBENCH = [
    ("Action and Activity", "speech", ["reading", "cooking", "praying", "running"], 2),
    ("Count and Quantity", "sound event", ["one", "two", "three", "four"], 0),
    ("Action and Activity", "music", ["singing", "dancing", "sleeping", "drumming"], 3),
]


def write_omnibench(root: str) -> str:
    import soundfile
    from PIL import Image

    rows = []
    for i, (task, atype, options, k) in enumerate(OMNIBENCH):
        image, audio = f"{i}_scene.png", f"{i}_clip.wav"
        os.makedirs(os.path.join(root, "mm_data", "image"), exist_ok=True)
        os.makedirs(os.path.join(root, "mm_data", "audio"), exist_ok=True)
        Image.fromarray(_frames(i)[0]).save(os.path.join(root, "mm_data", "image", image))
        soundfile.write(os.path.join(root, "mm_data", "audio", audio), _tone(i), SAMPLE_RATE)
        rows.append(
            {
                "task type": task,
                "audio type": atype,
                "question": f"What is happening in scene {i}?",
                "audio content": "synthetic tone",
                "image content": "a square",
                "audio_path": audio,
                "image_path": image,
                "index": i,
                "answer": options[k],
                "options": options,
            }
        )
    _jsonl(os.path.join(root, "dataset", "batch-5_1142_20240817.jsonl"), rows)
    return root


# ---------------------------------------------------------------------------------------------------- VideoMME
# (videoID, duration, task_type, answer letter) per question; two questions per video
VIDEOMME = [
    ("vidShort01", "short", "Object Recognition", "B"),
    ("vidShort01", "short", "Counting Problem", "A"),
    ("vidMedium1", "medium", "Object Recognition", "D"),
    ("vidMedium1", "medium", "Action Reasoning", "C"),
    ("vidLong0001", "long", "Counting Problem", "A"),
    ("vidLong0001", "long", "Action Reasoning", "B"),
]


def write_videomme(root: str, fmt: str = "parquet") -> str:
    """``fmt``: ``parquet`` (the release's file; needs pyarrow) or ``jsonl`` (the documented conversion)."""
    rows = []
    for n, (vid, dur, task, ans) in enumerate(VIDEOMME):
        v = vid.replace("vid", "")[:3]
        rows.append(
            {
                "video_id": f"{n // 2 + 1:03d}",
                "duration": dur,
                "domain": "Knowledge",
                "sub_category": "Humanity & History",
                "url": f"https://www.youtube.com/watch?v={vid}",
                "videoID": vid,
                "question_id": f"{n // 2 + 1:03d}-{n % 2 + 1}",
                "task_type": task,
                "question": f"Question {n} about the {v} video?",
                "options": [f"{L}. option {L.lower()}{n}" for L in "ABCD"],
                "answer": ans,
            }
        )
        path = os.path.join(root, "data", f"{vid}.mp4")
        if not os.path.exists(path):
            _clip(path, n)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        os.makedirs(os.path.join(root, "videomme"), exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), os.path.join(root, VIDEOMME_PARQUET))
    elif fmt == "jsonl":
        _jsonl(os.path.join(root, VIDEOMME_JSONL), rows)
    else:
        raise ValueError(f"fmt must be parquet or jsonl, got {fmt!r}")
    return root


# ----------------------------------------------------------------------------------------------------- MVBench
def mvbench_questions() -> list[tuple[str, int, list[str], int]]:
    """``(task, question index, candidates, index of the answer)``: one question per task, two for the first
    (so the mean over tasks differs from the pooled accuracy); 3 candidates on odd tasks, 4 on even ones."""
    out = []
    for t, (name, *_rest) in enumerate(MVBENCH_TASKS):
        for i in range(2 if t == 0 else 1):
            cands = [f"answer {c} of {t}" for c in range(3 if t % 2 else 4)]
            out.append((name, i, cands, (t + i) % len(cands)))
    return out


def write_mvbench(root: str) -> str:
    from PIL import Image

    spec = {name: (fname, prefix, kind, bounded) for name, fname, prefix, kind, bounded in MVBENCH_TASKS}
    entries: dict[str, list] = {}
    for t, (name, i, cands, k) in enumerate(mvbench_questions()):
        fname, prefix, kind, bounded = spec[name]
        video = f"{fname[:-5]}_{i}" + ("" if kind == "frame" else ".mp4")
        path = os.path.join(root, "video", prefix, video)
        if kind == "frame":  # a folder of frames (TVQA at 3 fps)
            os.makedirs(path, exist_ok=True)
            for f, fr in enumerate(_frames(t, n=6)):
                Image.fromarray(fr).save(os.path.join(path, f"{f + 1:05d}.jpg"))
        else:
            _clip(path, t, audio=False)
        e = {"video": video, "question": f"What happens in clip {t}?", "candidates": cands, "answer": cands[k]}
        if bounded:
            e.update(start=0.0, end=1.0)
        entries.setdefault(fname, []).append(e)
    for fname, es in entries.items():
        _json(os.path.join(root, "json", fname), es)
    return root


# -------------------------------------------------------------------------------------------------- Daily-Omni
# (video_id, Type, video_duration, Answer)
DAILYOMNI = [
    ("dOmniVid001", "AV Event Alignment", "30s", "C"),
    ("dOmniVid001", "Event Sequence", "30s", "A"),
    ("dOmniVid002", "Reasoning", "60s", "D"),
]


def write_dailyomni(root: str) -> str:
    rows = []
    for i, (vid, typ, dur, ans) in enumerate(DAILYOMNI):
        rows.append(
            {
                "Question": f"What is heard when the square moves ({i})?",
                "Choice": [f"{L}. sound {L.lower()}{i}" for L in "ABCD"],
                "Answer": ans,
                "video_id": vid,
                "Type": typ,
                "video_category": "Daily Life",
                "video_duration": dur,
            }
        )
        path = os.path.join(root, "Videos", vid, f"{vid}_video.mp4")
        if not os.path.exists(path):
            _clip(path, i)
    _json(os.path.join(root, "qa.json"), rows)
    return root


# -------------------------------------------------------------------------------------------------- WorldSense
# video -> [(task_type, answer)]
WORLDSENSE = {
    "wsVideoA": [("Audio Recognition", "B"), ("Object Counting", "D")],
    "wsVideoB": [("Spatial Relation", "A")],
}


def write_worldsense(root: str) -> str:
    doc = {}
    for v, (vid, qs) in enumerate(WORLDSENSE.items()):
        entry = {
            "video_id": vid,
            "video_duration": "60s",
            "duration": "<1min",
            "domain": "Daily Life",
            "sub_category": "Cooking",
            "audio_class": ["Speech"],
            "video_caption": "a square moves",
        }
        for t, (task, ans) in enumerate(qs):
            entry[f"task{t}"] = {
                "task_domain": "Recognition",
                "task_type": task,
                "question": f"Which sound goes with the square ({v}.{t})?",
                "candidates": [f"{L}. choice {L}" for L in "ABCD"],
                "answer": ans,
            }
        doc[vid] = entry
        _clip(os.path.join(root, "videos", f"{vid}.mp4"), v)
    _json(os.path.join(root, "worldsense_qa.json"), doc)
    return root


# -------------------------------------------------------------------------------------------------------- AVUT
# (QA_id, youtube id, task_type, answer, clip under data/ (True) or at the top level (False))
AVUT = [
    (7, "ytAAAAAAAAA", "Audio Information Extraction", "A", True),
    (8, "ytAAAAAAAAA", "Audio Content Counting", "C", True),
    (11, "ytBBBBBBBBB", "Character Matching", "B", False),
]


def write_avut(root: str) -> str:
    rows = []
    for n, (qa, yt, task, ans, under_data) in enumerate(AVUT):
        rows.append(
            {
                "video_id": n // 2,
                "url": f"https://www.youtube.com/watch?v={yt}",
                "video_type": "vlog",
                "task_type": task,
                "question": f"What does the speaker say ({qa})?",
                "option_A": "hello",
                "option_B": "goodbye",
                "option_C": "thanks",
                "option_D": "sorry",
                "answer": ans,
                "video_path": f"data/{yt}.mp4",
                "QA_id": qa,
            }
        )
        path = os.path.join(root, "data", f"{yt}.mp4") if under_data else os.path.join(root, f"{yt}.mp4")
        if not os.path.exists(path):
            _clip(path, n)
    _json(os.path.join(root, "AV_Human_data.json"), rows)
    return root


WRITERS = {
    "omnibench": write_omnibench,
    "videomme": write_videomme,
    "mvbench": write_mvbench,
    "dailyomni": write_dailyomni,
    "worldsense": write_worldsense,
    "avut": write_avut,
}


def write_suite(name: str, root: str) -> str:
    """Write the synthetic copy of suite ``name`` into ``root``; returns ``root``."""
    if name not in WRITERS:
        raise ValueError(f"no synthetic writer for {name!r}; known: {sorted(WRITERS)}")
    return WRITERS[name](root)


def write_suites(root: str, names: Sequence[str]) -> str:
    """Each suite of ``names`` into ``root/<name>`` (the layout ``data.suites`` points into)."""
    for name in names:
        write_suite(name, os.path.join(root, name))
    return root
