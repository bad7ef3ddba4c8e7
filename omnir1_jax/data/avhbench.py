"""AVHBench (Sung-Bin et al., ICLR 2025; the hallucination test set of Omni-R1's Table 6) as yes/no records.

Omni-R1 reports accuracy on AVHBench's *JUDGE* subset (5,302 yes/no questions): the three judgment tasks
:data:`JUDGE_TASKS`. The Omni-R1 papers give no file layout; this reader takes the layout of the dataset's public
release (its README, dataset v0)::

    ROOT/
      json/<video_id>.json      a JSON list of {"video_id": str, "task": str, "text": str, "label": str}
      video/<video_id>.mp4      the clip with its audio track (swapped-audio clips: <video_id>_swap.mp4)

``task`` is one of :data:`JUDGE_TASKS` (``label`` ``"Yes"`` / ``"No"``) or :data:`CAPTION_TASK` (``label`` a
reference caption; skipped unless asked for). ``ROOT`` may also be one JSON file holding such a list for many
videos (clips then in ``video/`` next to that file). Assumptions the release leaves open, made here:

- a record's clip is ``video/<video_id>.mp4`` with the record's own ``video_id`` (so questions about a swapped
  clip carry the ``_swap`` id);
- labels compare case-insensitively (``"yes"`` = ``"Yes"``);
- a record's ``id`` is ``<video_id>/<index in its file>``.

Every malformed file or record raises :class:`~omnir1_jax.data.errors.DataFormatError` naming the file and the
record (``avhbench <file stem>[i]``). Answers are scored by :class:`omnir1_jax.evaluation.metrics.qa.YesNoAccumulator`.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from collections.abc import Sequence

from omnir1_jax.data.errors import DataFormatError

JUDGE_TASKS = ("Audio-driven Video Hallucination", "Video-driven Audio Hallucination", "AV Matching")
CAPTION_TASK = "AV Captioning"
YES_NO = ("Yes", "No")

# The question's instruction (the papers give none for AVHBench): the Omni-R1 answer format, a yes/no answer.
INSTRUCTION = (
    "Watch the video and listen to its audio, then answer the question with Yes or No. Explain your "
    "reasoning in <think></think> and output the final answer (Yes or No) in <answer></answer>."
)


@dataclasses.dataclass(frozen=True)
class AVHBenchRecord:
    """One AVHBench question. ``answer`` is ``"Yes"`` / ``"No"`` for judgment tasks, the caption otherwise;
    ``audio`` is None (the clip's own track is the audio)."""

    id: str
    video_id: str
    video: str
    task: str
    question: str
    answer: str
    audio: str | None = None

    @property
    def judge(self) -> bool:
        return self.task in JUDGE_TASKS


def avhbench_prompt(record: AVHBenchRecord) -> str:
    """The user text for one record: :data:`INSTRUCTION` and the question."""
    return f"{INSTRUCTION}\nQuestion: {record.question}"


def _files(root: str) -> tuple[list[str], str]:
    if os.path.isfile(root):
        return [root], os.path.join(os.path.dirname(os.path.abspath(root)), "video")
    if not os.path.isdir(root):
        raise DataFormatError("no AVHBench file or folder here", path=root)
    files = sorted(glob.glob(os.path.join(root, "json", "*.json")))
    if not files:
        raise DataFormatError("no json/*.json question files", path=root)
    return files, os.path.join(os.path.abspath(root), "video")


def _record(obj, path: str, index: int, video_dir: str, tasks: Sequence[str]) -> AVHBenchRecord | None:
    where = f"avhbench {os.path.splitext(os.path.basename(path))[0]}[{index}]"
    if not isinstance(obj, dict):
        raise DataFormatError(f"entry is a {type(obj).__name__}, expected an object", path=path, record=where)
    for key in ("video_id", "task", "text", "label"):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            raise DataFormatError(
                f"field {key!r} must be a non-empty string, got {obj.get(key)!r}", path=path, record=where
            )
    task = obj["task"]
    if task not in JUDGE_TASKS + (CAPTION_TASK,):
        raise DataFormatError(f"task {task!r} is not one of {JUDGE_TASKS + (CAPTION_TASK,)}", path=path, record=where)
    if task not in tasks:
        return None
    answer = obj["label"].strip()
    if task in JUDGE_TASKS:
        matches = [yn for yn in YES_NO if yn.lower() == answer.lower()]
        if not matches:
            raise DataFormatError(
                f"label {obj['label']!r} of a {task!r} question is not Yes / No", path=path, record=where
            )
        answer = matches[0]
    vid = obj["video_id"].strip()
    if vid.startswith(("/", "\\")) or ".." in vid.replace("\\", "/").split("/"):
        raise DataFormatError(f"video_id {vid!r} leaves the video folder", path=path, record=where)
    return AVHBenchRecord(
        id=f"{vid}/{index}",
        video_id=vid,
        video=os.path.join(video_dir, f"{vid}.mp4"),
        task=task,
        question=obj["text"].strip(),
        answer=answer,
    )


def read_avhbench(root: str, *, tasks: Sequence[str] = JUDGE_TASKS, check_videos: bool = True) -> list[AVHBenchRecord]:
    """Records of ``tasks`` (default: the JUDGE subset) from an AVHBench folder or JSON file (module docstring),
    in file order.

    Args:
      root: the release folder (``json/``, ``video/``) or one JSON file of questions.
      tasks: task names to keep (others are validated, then skipped).
      check_videos: require each kept record's clip to exist.

    Raises:
      DataFormatError: unreadable JSON, a malformed entry, an unknown task or label, a duplicate id, a missing
        clip; the message names the file and the record.
    """
    unknown = set(tasks) - set(JUDGE_TASKS + (CAPTION_TASK,))
    if unknown:
        raise ValueError(f"unknown AVHBench tasks {sorted(unknown)}; known: {JUDGE_TASKS + (CAPTION_TASK,)}")
    files, video_dir = _files(root)
    out: list[AVHBenchRecord] = []
    ids: set[str] = set()
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                entries = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataFormatError(f"not valid JSON: {e}", path=path) from None
        if not isinstance(entries, list):
            raise DataFormatError(f"expected a JSON list of questions, got a {type(entries).__name__}", path=path)
        for i, obj in enumerate(entries):
            rec = _record(obj, path, i, video_dir, tasks)
            if rec is None:
                continue
            where = f"avhbench {os.path.splitext(os.path.basename(path))[0]}[{i}]"
            if rec.id in ids:
                raise DataFormatError(f"duplicate id {rec.id!r}", path=path, record=where)
            if check_videos and not os.path.isfile(rec.video):
                raise DataFormatError(f"clip of video_id {rec.video_id!r} not found", path=rec.video, record=where)
            ids.add(rec.id)
            out.append(rec)
    return out
