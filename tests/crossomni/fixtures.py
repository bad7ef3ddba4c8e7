"""A tiny CrossOmni JSONL fixture: short clips with an audio track, four questions over three tasks."""

import json
import os

import numpy as np

from omnir1_jax.crossomni.media import write_video

QUESTIONS = [
    ("q0", "Vi->Te", "B", "The man in red is Sheldon; his biography says he grew up in Texas."),
    ("q1", "Au->Au", "A", "The first voice is high; it says hello."),
    ("q2", "Te->Vi", "C", "Penny is described as blonde; the blonde woman stands left."),
    ("q3", "Vi->Te", "D", None),
]


def write_fixture(root: str, size=(56, 84), frames: int = 6) -> str:
    """Writes ``root/train.jsonl`` (and ``test.jsonl``, the same rows) plus the clips; returns the train path."""
    os.makedirs(os.path.join(root, "clips"), exist_ok=True)
    rows = []
    for i, (qid, task, answer, rationale) in enumerate(QUESTIONS):
        rng = np.random.default_rng(i)
        fr = np.full((frames, *size, 3), 25, np.uint8)
        for t in range(frames):
            y, x = 8 + 2 * t, 10 + 5 * i
            fr[t, y : y + 16, x : x + 16] = rng.integers(60, 250, 3, dtype=np.uint8)
        t = np.arange(16000) / 16000.0
        wav = (0.2 * np.sin(2 * np.pi * (220 + 110 * i) * t)).astype(np.float32)
        write_video(os.path.join(root, "clips", f"{qid}.mp4"), fr, fps=4.0, audio=wav)
        row = {
            "id": qid,
            "video": f"clips/{qid}.mp4",
            "biography": "Sheldon grew up in Texas. Penny is blonde.",
            "question": f"Question {i} about the person?",
            "options": ["w", "x", "y", "z"],
            "answer": answer,
            "task": task,
        }
        if rationale:
            row["rationale"] = rationale
        rows.append(row)
    for split in ("train", "test"):
        with open(os.path.join(root, f"{split}.jsonl"), "w") as f:
            f.write("\n".join(json.dumps(r) for r in rows) + "\n")
    return os.path.join(root, "train.jsonl")


def length_judge(prompt: str) -> str:
    """A deterministic stand-in judge (used where the judge model itself is not under test)."""
    return str(len(prompt) % 4)
