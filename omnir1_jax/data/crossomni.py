"""CrossOmni (cross-modal coreference QA) as a JSONL file, and its reader.

The paper's data is TVQA clips with an audio track, a textual biography, and a four-option question whose task
is a source -> target modality pair over audio (``Au``), video (``Vi``) and text (``Te``). Users convert their copy
to this schema, one JSON object per line:

=============  ========  =====================================================================================
field          required  value
=============  ========  =====================================================================================
``id``         yes       unique string
``video``      yes       path of the clip (relative paths are relative to the JSONL file's directory)
``audio``      no        path of a separate audio file (else the clip's own audio track is meant)
``biography``  yes       the textual biography given with the clip
``question``   yes       the question text
``options``    yes       ``{"A": str, "B": str, "C": str, "D": str}`` (or a list, lettered in order)
``answer``     yes       the gold letter, one of the option keys
``task``       yes       ``"<source>-><target>"`` with both in ``Au``, ``Vi``, ``Te`` (e.g. ``"Au->Te"``)
``rationale``  no        the human-designed four-step rationale (training split)
=============  ========  =====================================================================================
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

import numpy as np

from omnir1_jax.data.errors import DataFormatError

MODALITIES = ("Au", "Vi", "Te")
TASKS = tuple(f"{s}->{t}" for s in MODALITIES for t in MODALITIES)  # 3 single-modality + 6 cross-modality


@dataclasses.dataclass(frozen=True)
class CrossOmniRecord:
    """One CrossOmni question. ``options`` is a tuple of ``(letter, text)`` in letter order."""

    id: str
    video: str
    audio: str | None
    biography: str
    question: str
    options: tuple[tuple[str, str], ...]
    answer: str
    task: str
    rationale: str | None = None

    @property
    def source(self) -> str:
        return self.task.split("->")[0]

    @property
    def target(self) -> str:
        return self.task.split("->")[1]

    @property
    def cross_modal(self) -> bool:
        return self.source != self.target

    def question_text(self) -> str:
        """Biography, question and lettered options as one user text."""
        opts = "\n".join(f"{k}. {v}" for k, v in self.options)
        return f"Biography: {self.biography}\nQuestion: {self.question}\nOptions:\n{opts}"


def _parse(obj, base: str, path: str, line: int) -> CrossOmniRecord:
    rec = f"crossomni line {line}" + (f" id {obj.get('id')}" if isinstance(obj, dict) and "id" in obj else "")
    if not isinstance(obj, dict):
        raise DataFormatError("each line must be a JSON object", path=path, record=rec)
    for k in ("id", "video", "biography", "question", "options", "answer", "task"):
        if k not in obj:
            raise DataFormatError(f"missing field {k!r}", path=path, record=rec)
    opts = obj["options"]
    if isinstance(opts, list):
        opts = {chr(ord("A") + i): v for i, v in enumerate(opts)}
    if not isinstance(opts, dict) or len(opts) < 2 or not all(isinstance(v, str) for v in opts.values()):
        raise DataFormatError(f"options must map letters to strings, got {obj['options']!r}", path=path, record=rec)
    if obj["answer"] not in opts:
        raise DataFormatError(f"answer {obj['answer']!r} is not one of {sorted(opts)}", path=path, record=rec)
    if obj["task"] not in TASKS:
        raise DataFormatError(f"task {obj['task']!r} is not one of {TASKS}", path=path, record=rec)
    join = lambda p: p if p is None or os.path.isabs(p) else os.path.join(base, p)
    return CrossOmniRecord(
        id=str(obj["id"]),
        video=join(str(obj["video"])),
        audio=join(obj.get("audio")),
        biography=str(obj["biography"]),
        question=str(obj["question"]),
        options=tuple(sorted(opts.items())),
        answer=str(obj["answer"]),
        task=str(obj["task"]),
        rationale=obj.get("rationale"),
    )


def read_crossomni(path: str) -> list[CrossOmniRecord]:
    """Read a CrossOmni JSONL file; any malformed line raises DataFormatError naming the file and the line."""
    base = os.path.dirname(os.path.abspath(path))
    try:
        f = open(path)
    except FileNotFoundError:
        raise DataFormatError("file not found", path=path) from None
    out, ids = [], set()
    with f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataFormatError(f"not valid JSON: {e}", path=path, record=f"crossomni line {line_no}") from None
            r = _parse(obj, base, path, line_no)
            if r.id in ids:
                raise DataFormatError(f"duplicate id {r.id!r}", path=path, record=f"crossomni line {line_no}")
            ids.add(r.id)
            out.append(r)
    return out


def balanced_subset(records: Sequence[CrossOmniRecord], size: int, seed: int = 0) -> list[CrossOmniRecord]:
    """``size`` records with as equal a number per task (source->target modality pair) as the data allows,
    drawn uniformly within each task with ``numpy.random.default_rng(seed)``; returned in the input order.

    Quotas are filled level by level: every task gets ``floor(size / tasks)`` (a task with fewer records gives
    all of them and its shortfall is spread over the others), and the remainder goes one each to the tasks
    first in :data:`TASKS` order that still have records. With the paper's 982 over 9 tasks and enough data:
    109 per task, one task 110. Asking for at least as many records as there are returns them all.
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if size >= len(records):
        return list(records)
    by_task: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_task.setdefault(r.task, []).append(i)
    order = [t for t in TASKS if t in by_task] + sorted(t for t in by_task if t not in TASKS)
    quota = dict.fromkeys(order, 0)
    left = size
    while left > 0:
        open_tasks = [t for t in order if quota[t] < len(by_task[t])]
        share = left // len(open_tasks)
        if share == 0:  # fewer records to hand out than open tasks: one each, in task order
            for t in open_tasks[:left]:
                quota[t] += 1
            break
        for t in open_tasks:
            take = min(share, len(by_task[t]) - quota[t])
            quota[t] += take
            left -= take
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for t in order:
        idx = by_task[t]
        chosen += [idx[j] for j in rng.choice(len(idx), size=quota[t], replace=False)]
    return [records[i] for i in sorted(chosen)]
