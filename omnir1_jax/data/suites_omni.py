"""Readers of Omni-R1's general-understanding suites (Tables 3 and 7): OmniBench, VideoMME, MVBench.

Each takes the suite's release folder in its published layout and returns
:class:`~omnir1_jax.data.mcq.MCQRecord` s in file order. Every malformed file or entry raises
:class:`~omnir1_jax.data.errors.DataFormatError` naming the file, the entry and the field.

**OmniBench** (github.com/multimodal-art-projection/OmniBench; the same rows as the Hugging Face ``m-a-p/OmniBench``
parquet)::

    ROOT/dataset/batch-5_1142_20240817.jsonl    one JSON object per line (any dataset/*.jsonl is read)
    ROOT/mm_data/image/<image_path>             the question's image
    ROOT/mm_data/audio/<audio_path>             its audio clip

  fields: ``index`` (int, id), ``task type`` (the task), ``audio type`` (reported as group ``audio type=...``),
  ``question``, ``options`` (list of 4 texts), ``answer`` (the text of the correct option), ``image_path``,
  ``audio_path``. The paper's "OmniBench Avg" is the accuracy over every question (image and audio given).

**VideoMME** (Hugging Face ``lmms-lab/Video-MME``)::

    ROOT/videomme/test-00000-of-00001.parquet   2,700 rows (read with pyarrow, installed with tensorflow-datasets)
    ROOT/data/<videoID>.mp4                     the videos (``videos_chunked_*.zip`` unpacked)

  columns: ``question_id`` (id), ``videoID`` (video file stem), ``duration`` (``short`` / ``medium`` / ``long``),
  ``domain``, ``task_type`` (the task), ``question``, ``options`` (``"A. ..."`` x 4), ``answer`` (letter).
  Without pyarrow, convert once (``pq.read_table(p).to_pylist()`` written one row per line) to
  ``ROOT/videomme/test.jsonl``, which is read when the parquet file is absent. Table 3's "VideoMME General" is
  every question, "Short" the ``duration=short`` ones.

**MVBench** (Hugging Face ``OpenGVLab/MVBench``)::

    ROOT/json/<task file>.json                  20 files (:data:`MVBENCH_TASKS`), each a JSON list of
                                                {"video", "question", "candidates", "answer", ["start", "end"]}
    ROOT/video/<prefix>/<video>                 the clip (or, Episodic Reasoning, a folder of 3 fps frames)

  ``answer`` is the text of the correct candidate; ``start`` / ``end`` (seconds) bound the clip of the tasks
  marked bounded. Table 3's "MVBench Avg" is the mean of the 20 task accuracies (``task_mean``).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

from omnir1_jax.data.errors import DataFormatError
from omnir1_jax.data.mcq import (
    MCQRecord,
    check_media,
    gold_letter,
    lettered,
    load_json,
    load_jsonl,
    require,
    unique,
    where,
)

# MVBench's 20 tasks: (name, json file, video prefix under ROOT/video, media kind, bounded by start / end).
MVBENCH_TASKS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("Action Sequence", "action_sequence.json", "star/Charades_v1_480", "video", True),
    ("Action Prediction", "action_prediction.json", "star/Charades_v1_480", "video", True),
    ("Action Antonym", "action_antonym.json", "ssv2_video", "video", False),
    ("Fine-grained Action", "fine_grained_action.json", "Moments_in_Time_Raw/videos", "video", False),
    ("Unexpected Action", "unexpected_action.json", "FunQA_test/test", "video", False),
    ("Object Existence", "object_existence.json", "clevrer/video_validation", "video", False),
    ("Object Interaction", "object_interaction.json", "star/Charades_v1_480", "video", True),
    ("Object Shuffle", "object_shuffle.json", "perception/videos", "video", False),
    ("Moving Direction", "moving_direction.json", "clevrer/video_validation", "video", False),
    ("Action Localization", "action_localization.json", "sta/sta_video", "video", True),
    ("Scene Transition", "scene_transition.json", "scene_qa/video", "video", False),
    ("Action Count", "action_count.json", "perception/videos", "video", False),
    ("Moving Count", "moving_count.json", "clevrer/video_validation", "video", False),
    ("Moving Attribute", "moving_attribute.json", "clevrer/video_validation", "video", False),
    ("State Change", "state_change.json", "perception/videos", "video", False),
    ("Fine-grained Pose", "fine_grained_pose.json", "nturgbd", "video", False),
    ("Character Order", "character_order.json", "perception/videos", "video", False),
    ("Egocentric Navigation", "egocentric_navigation.json", "vlnqa", "video", False),
    ("Episodic Reasoning", "episodic_reasoning.json", "tvqa/frames_fps3_hq", "frame", True),
    ("Counterfactual Inference", "counterfactual_inference.json", "clevrer/video_validation", "video", False),
)
MVBENCH_FRAME_FPS = 3.0  # the TVQA frames of Episodic Reasoning are extracted at 3 fps ("frames_fps3_hq")
VIDEOMME_PARQUET = os.path.join("videomme", "test-00000-of-00001.parquet")
VIDEOMME_JSONL = os.path.join("videomme", "test.jsonl")
DURATIONS = ("short", "medium", "long")


# --------------------------------------------------------------------------------------------------- OmniBench
def read_omnibench(root: str, *, check_files: bool = True) -> list[MCQRecord]:
    """OmniBench questions from ``root`` (module docstring); ``check_files``: every image / audio must exist."""
    files = sorted(glob.glob(os.path.join(root, "dataset", "*.jsonl")))
    if not files:
        raise DataFormatError("omnibench: no dataset/*.jsonl question file", path=root)
    out = []
    for path in files:
        for line, obj in load_jsonl(path, "omnibench"):
            rec = where("omnibench", f"line {line}")
            require(obj, ("question", "image_path", "audio_path", "task type", "answer"), (str,), path, rec)
            require(obj, ("index",), (int,), path, rec)
            rec = where("omnibench", f"index {obj['index']}")
            options = lettered(obj.get("options"), "options", path, rec)
            answer = gold_letter(obj["answer"], options, "answer", path, rec, by_text=True)
            image = os.path.join(root, "mm_data", "image", obj["image_path"])
            audio = os.path.join(root, "mm_data", "audio", obj["audio_path"])
            if check_files:
                check_media(image, rec, "image_path file")
                check_media(audio, rec, "audio_path file")
            groups = (("audio type", str(obj["audio type"])),) if isinstance(obj.get("audio type"), str) else ()
            out.append(
                MCQRecord(
                    id=str(obj["index"]),
                    suite="omnibench",
                    task=obj["task type"].strip(),
                    question=obj["question"].strip(),
                    options=options,
                    answer=answer,
                    image=image,
                    audio=audio,
                    groups=groups,
                )
            )
    return unique(out, files[0])


# ---------------------------------------------------------------------------------------------------- VideoMME
def _videomme_rows(root: str) -> tuple[str, list[tuple[int, dict]]]:
    pq_path, jl_path = os.path.join(root, VIDEOMME_PARQUET), os.path.join(root, VIDEOMME_JSONL)
    if os.path.exists(pq_path):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataFormatError(
                f"reading the parquet file needs pyarrow; or convert it to {VIDEOMME_JSONL} "
                "(see omnir1_jax.data.suites_omni)",
                path=pq_path,
            ) from None
        try:
            rows = pq.read_table(pq_path).to_pylist()
        except Exception as e:
            raise DataFormatError(
                f"videomme: not a readable parquet file: {type(e).__name__}: {e}", path=pq_path
            ) from None
        return pq_path, list(enumerate(rows, start=1))
    if os.path.exists(jl_path):
        return jl_path, load_jsonl(jl_path, "videomme")
    raise DataFormatError(f"videomme: neither {VIDEOMME_PARQUET} nor {VIDEOMME_JSONL}", path=root)


def read_videomme(root: str, *, check_files: bool = True) -> list[MCQRecord]:
    """VideoMME questions from ``root`` (module docstring); ``check_files``: every video must exist."""
    path, rows = _videomme_rows(root)
    out = []
    for n, obj in rows:
        rec = where("videomme", f"row {n}")
        require(obj, ("question_id", "videoID", "duration", "task_type", "question", "answer"), (str,), path, rec)
        rec = where("videomme", obj["question_id"])
        if obj["duration"] not in DURATIONS:
            raise DataFormatError(
                f"field 'duration' = {obj['duration']!r} is not one of {DURATIONS}", path=path, record=rec
            )
        options = lettered(
            list(obj["options"]) if isinstance(obj.get("options"), (list, tuple)) else obj.get("options"),
            "options",
            path,
            rec,
        )
        answer = gold_letter(obj["answer"], options, "answer", path, rec)
        video = os.path.join(root, "data", f"{obj['videoID']}.mp4")
        if check_files:
            check_media(video, rec, f"video of videoID {obj['videoID']!r}")
        groups = [("duration", obj["duration"])]
        if isinstance(obj.get("domain"), str):
            groups.append(("domain", obj["domain"]))
        out.append(
            MCQRecord(
                id=obj["question_id"],
                suite="videomme",
                task=obj["task_type"].strip(),
                question=obj["question"].strip(),
                options=options,
                answer=answer,
                video=video,
                groups=tuple(groups),
            )
        )
    return unique(out, path)


# ----------------------------------------------------------------------------------------------------- MVBench
def read_mvbench(root: str, *, tasks: Sequence[str] | None = None, check_files: bool = True) -> list[MCQRecord]:
    """MVBench questions from ``root`` (module docstring), task by task in :data:`MVBENCH_TASKS` order.

    Args:
      tasks: task names to read (default all 20; each one's JSON file must exist).
      check_files: every clip / frame folder must exist.
    """
    known = [t[0] for t in MVBENCH_TASKS]
    unknown = set(tasks or ()) - set(known)
    if unknown:
        raise ValueError(f"unknown MVBench tasks {sorted(unknown)}; known: {known}")
    out = []
    for name, fname, prefix, kind, bounded in MVBENCH_TASKS:
        if tasks is not None and name not in tasks:
            continue
        path = os.path.join(root, "json", fname)
        entries = load_json(path, "mvbench")
        if not isinstance(entries, list):
            raise DataFormatError(f"expected a JSON list of questions, got a {type(entries).__name__}", path=path)
        stem = fname[:-5]
        for i, obj in enumerate(entries):
            rec = where("mvbench", f"{stem}[{i}]")
            require(obj, ("video", "question", "answer"), (str,), path, rec)
            options = lettered(obj.get("candidates"), "candidates", path, rec)
            answer = gold_letter(obj["answer"], options, "answer", path, rec, by_text=True)
            bound = None
            if bounded:
                require(obj, ("start", "end"), (int, float), path, rec)
                if not 0 <= obj["start"] <= obj["end"]:
                    raise DataFormatError(
                        f"fields 'start' / 'end' = {obj['start']!r} / {obj['end']!r} are not 0 <= start <= end",
                        path=path,
                        record=rec,
                    )
                bound = (float(obj["start"]), float(obj["end"]))
            video = os.path.join(root, "video", prefix, obj["video"])
            if check_files:
                check_media(video, rec, "video")
            out.append(
                MCQRecord(
                    id=f"{stem}/{i}",
                    suite="mvbench",
                    task=name,
                    question=obj["question"].strip(),
                    options=options,
                    answer=answer,
                    video=video,
                    bound=bound,
                    frame_fps=MVBENCH_FRAME_FPS if kind == "frame" else None,
                )
            )
    return unique(out, root)
