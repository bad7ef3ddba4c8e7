"""Readers of CrossOmni's out-of-domain suites (Table 10): Daily-Omni, WorldSense, AVUT (its AV-Human set).

Each takes the suite's release folder in its published layout and returns
:class:`~omnir1_jax.data.mcq.MCQRecord` s in file order; the audio is each video's own track. Every malformed file
or entry raises :class:`~omnir1_jax.data.errors.DataFormatError` naming the file, the entry and the field.

**Daily-Omni** (Hugging Face ``liarliar/Daily-Omni``: ``qa.json`` and ``Videos.tar`` unpacked; 684 videos,
1,197 questions)::

    ROOT/qa.json                                  a JSON list of questions
    ROOT/Videos/<video_id>/<video_id>_video.mp4   the clip (the folder also holds the separate audio tracks)

  fields: ``video_id``, ``Question``, ``Choice`` (list of option texts, a leading ``"A."`` is dropped),
  ``Answer`` (letter), ``Type`` (the task), ``video_duration`` (``30s`` / ``60s``: group ``duration=...``),
  ``video_category`` (optional). Id: ``<video_id>/<index in qa.json>``.

**WorldSense** (Hugging Face ``honglyhly/WorldSense``; 1,662 videos, 3,172 questions)::

    ROOT/worldsense_qa.json     {"<video>": {"duration", "domain", ..., "task0": {...}, "task1": {...}}, ...}
    ROOT/videos/<video>.mp4     the clips (the release's zip archives unpacked)

  each ``task*`` object: ``question``, ``candidates`` (``"A. ..."`` x 4), ``answer`` (letter), ``task_type`` (the
  task), ``task_domain``; the video's ``duration`` and ``domain`` become groups. Id: ``<video>/<task key>``.

**AVUT** (Hugging Face ``tsinghua-ee/AVUTBenchmark``; CrossOmni evaluates the human-annotated AV-Human set)::

    ROOT/AV_Human_data.json     a JSON list of questions
    ROOT/<video_path>           the clip, e.g. ``data/<youtube id>.mp4``; when absent, ``ROOT/<file name>``
                                (the dataset repository keeps the clips at its top level)

  fields: ``QA_id`` (int, id), ``question``, ``option_A`` ... ``option_D`` (strings; an empty one stays an empty
  option so letters keep their meaning), ``answer`` (letter), ``task_type`` (the task), ``video_path``,
  ``video_type`` (optional group).
"""

from __future__ import annotations

import os

from omnir1_jax.data.errors import DataFormatError
from omnir1_jax.data.mcq import (
    LETTERS,
    MCQRecord,
    check_media,
    gold_letter,
    lettered,
    load_json,
    require,
    unique,
    where,
)


def _list(doc, path: str, what: str) -> list:
    if not isinstance(doc, list):
        raise DataFormatError(f"{what}: expected a JSON list of questions, got a {type(doc).__name__}", path=path)
    return doc


def _safe(name: str, field: str, path: str, rec: str) -> str:
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts:
        raise DataFormatError(f"field {field!r} = {name!r} leaves the suite's folder", path=path, record=rec)
    return name


# -------------------------------------------------------------------------------------------------- Daily-Omni
def read_dailyomni(root: str, *, check_files: bool = True) -> list[MCQRecord]:
    """Daily-Omni questions from ``root`` (module docstring); ``check_files``: every clip must exist."""
    path = os.path.join(root, "qa.json")
    out = []
    for i, obj in enumerate(_list(load_json(path, "dailyomni"), path, "dailyomni")):
        rec = where("dailyomni", f"[{i}]")
        require(obj, ("video_id", "Question", "Answer", "Type"), (str,), path, rec)
        vid = _safe(obj["video_id"].strip(), "video_id", path, rec)
        rec = where("dailyomni", f"{vid}/{i}")
        options = lettered(obj.get("Choice"), "Choice", path, rec)
        answer = gold_letter(obj["Answer"], options, "Answer", path, rec)
        video = os.path.join(root, "Videos", vid, f"{vid}_video.mp4")
        if check_files:
            check_media(video, rec, f"clip of video_id {vid!r}")
        groups = tuple(
            (g, str(obj[k]))
            for g, k in (("duration", "video_duration"), ("category", "video_category"))
            if isinstance(obj.get(k), str)
        )
        out.append(
            MCQRecord(
                id=f"{vid}/{i}",
                suite="dailyomni",
                task=obj["Type"].strip(),
                question=obj["Question"].strip(),
                options=options,
                answer=answer,
                video=video,
                groups=groups,
            )
        )
    return unique(out, path)


# -------------------------------------------------------------------------------------------------- WorldSense
def read_worldsense(root: str, *, check_files: bool = True) -> list[MCQRecord]:
    """WorldSense questions from ``root`` (module docstring); ``check_files``: every clip must exist."""
    path = os.path.join(root, "worldsense_qa.json")
    doc = load_json(path, "worldsense")
    if not isinstance(doc, dict):
        raise DataFormatError(
            f"worldsense: expected a JSON object keyed by video, got a {type(doc).__name__}", path=path
        )
    out = []
    for key, entry in doc.items():
        rec = where("worldsense", key)
        if not isinstance(entry, dict):
            raise DataFormatError(f"entry is a {type(entry).__name__}, expected an object", path=path, record=rec)
        vid = _safe(str(key), "video key", path, rec)
        video = os.path.join(root, "videos", f"{vid}.mp4")
        tasks = [k for k in entry if k.startswith("task") and isinstance(entry[k], dict)]
        if not tasks:
            raise DataFormatError("no task* question objects", path=path, record=rec)
        if check_files:
            check_media(video, rec, f"clip of video {vid!r}")
        base = [(g, str(entry[g])) for g in ("duration", "domain") if isinstance(entry.get(g), str)]
        for tk in tasks:
            q = entry[tk]
            rec = where("worldsense", f"{vid}/{tk}")
            require(q, ("question", "answer", "task_type"), (str,), path, rec)
            options = lettered(q.get("candidates"), "candidates", path, rec)
            answer = gold_letter(q["answer"], options, "answer", path, rec)
            groups = base + ([("task_domain", q["task_domain"])] if isinstance(q.get("task_domain"), str) else [])
            out.append(
                MCQRecord(
                    id=f"{vid}/{tk}",
                    suite="worldsense",
                    task=q["task_type"].strip(),
                    question=q["question"].strip(),
                    options=options,
                    answer=answer,
                    video=video,
                    groups=tuple(groups),
                )
            )
    return unique(out, path)


# -------------------------------------------------------------------------------------------------------- AVUT
def read_avut(root: str, *, check_files: bool = True) -> list[MCQRecord]:
    """AVUT AV-Human questions from ``root`` (module docstring); ``check_files``: every clip must exist."""
    path = os.path.join(root, "AV_Human_data.json")
    out = []
    for i, obj in enumerate(_list(load_json(path, "avut"), path, "avut")):
        rec = where("avut", f"[{i}]")
        require(obj, ("QA_id",), (int,), path, rec)
        rec = where("avut", f"QA_id {obj['QA_id']}")
        require(obj, ("question", "answer", "task_type", "video_path"), (str,), path, rec)
        keys = [f"option_{k}" for k in LETTERS if f"option_{k}" in obj]
        if len(keys) < 2 or keys != [f"option_{k}" for k in LETTERS[: len(keys)]]:
            raise DataFormatError(
                f"fields option_A, option_B, ... must be consecutive from option_A, got {keys}", path=path, record=rec
            )
        bad = [k for k in keys if not isinstance(obj[k], str)]
        if bad:
            raise DataFormatError(f"field {bad[0]!r} must be a string, got {obj[bad[0]]!r}", path=path, record=rec)
        options = lettered([obj[k] for k in keys], "option_*", path, rec)
        answer = gold_letter(obj["answer"], options, "answer", path, rec)
        rel = _safe(obj["video_path"].strip(), "video_path", path, rec)
        video = os.path.join(root, rel)
        if not os.path.exists(video) and os.path.exists(os.path.join(root, os.path.basename(rel))):
            video = os.path.join(root, os.path.basename(rel))
        if check_files:
            check_media(video, rec, "clip of video_path")
        groups = (("video_type", obj["video_type"]),) if isinstance(obj.get("video_type"), str) else ()
        out.append(
            MCQRecord(
                id=str(obj["QA_id"]),
                suite="avut",
                task=obj["task_type"].strip(),
                question=obj["question"].strip(),
                options=options,
                answer=answer,
                video=video,
                groups=groups,
            )
        )
    return unique(out, path)
