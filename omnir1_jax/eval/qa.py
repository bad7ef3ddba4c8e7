"""Multiple-choice accuracy for CrossOmni-style QA (paper 004, Tables 7-9).

Each question has a task ``"<source>-><target>"`` over ``Au`` / ``Vi`` / ``Te``; the three with source ==
target are *single-modality* (printed as ``Au``, ``Te``, ``Vi`` in the paper), the six others
*cross-modality*. :class:`QAAccumulator` reports accuracy (a fraction in [0, 1]; the paper prints x100)

* per task (9 groups),
* ``single`` / ``cross``: pooled over the questions of those tasks,
* ``overall``: pooled over every question (Table 7's "Overall" is a pooled accuracy, not the mean of the nine
  task columns: e.g. 3B GRPO's columns average 59.67 while its overall is 58.59).

A question whose answer has no letter counts as wrong. Records are JSON lines (resumable evaluations re-add
them with :meth:`QAAccumulator.add`).

Yes/no benchmarks (AVHBench's JUDGE subset, Omni-R1 Table 6): :func:`parse_yes_no` reads the answer and
:class:`YesNoAccumulator` reports accuracy (Table 6's number), precision, recall, F1 and the yes ratio per task.
"""

from __future__ import annotations

import os
import re

import numpy as np

from omnir1_jax.eval._jsonl import write_jsonl_atomic

MODALITIES = ("Au", "Vi", "Te")
TASKS = tuple(f"{s}->{t}" for s in MODALITIES for t in MODALITIES)
# The paper's column order (Table 7): audio-, text-, visual-centric.
PAPER_ORDER = ("Au->Au", "Au->Te", "Au->Vi", "Te->Te", "Te->Au", "Te->Vi", "Vi->Vi", "Vi->Au", "Vi->Te")


def is_cross_modal(task: str) -> bool:
    """True for the six source != target tasks."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    src, dst = task.split("->")
    return src != dst


class QAAccumulator:
    """Collects per-question correctness and summarises it (module docstring)."""

    def __init__(self):
        self._rows: dict[str, dict] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, question_id: str, task: str, predicted: str | None, gold: str) -> dict:
        """Record one question; ``predicted`` is the chosen letter (None = no letter). Returns the row.

        Raises:
          ValueError: duplicate id, unknown task, or a gold answer that is not a single letter.
        """
        question_id = str(question_id)
        if question_id in self._rows:
            raise ValueError(f"question {question_id!r} was already added")
        is_cross_modal(task)
        if not (isinstance(gold, str) and len(gold) == 1 and gold.isalpha()):
            raise ValueError(f"question {question_id!r}: gold must be one letter, got {gold!r}")
        row = {"id": question_id, "task": task, "predicted": predicted, "gold": gold,
               "correct": predicted == gold}
        self._rows[question_id] = row
        return row

    def rows(self) -> list[dict]:
        return list(self._rows.values())

    def summary(self) -> dict[str, dict]:
        """``{group: {"accuracy", "correct", "count"}}`` for the tasks present, ``single``, ``cross`` and
        ``overall`` (groups without questions are left out).

        Raises:
          ValueError: nothing was added.
        """
        rows = self.rows()
        if not rows:
            raise ValueError("summary() of an empty accumulator")

        def group(sel):
            c = [bool(r["correct"]) for r in sel]
            return {"accuracy": float(np.mean(c)), "correct": int(sum(c)), "count": len(c)}

        out = {}
        for task in PAPER_ORDER:
            sel = [r for r in rows if r["task"] == task]
            if sel:
                out[task] = group(sel)
        for name, cross in (("single", False), ("cross", True)):
            sel = [r for r in rows if is_cross_modal(r["task"]) == cross]
            if sel:
                out[name] = group(sel)
        out["overall"] = group(rows)
        return out

    def summary_table(self) -> str:
        """Markdown table, accuracy x100 with two decimals (as the paper prints it)."""
        lines = ["| group | accuracy | correct / count |", "| --- | --- | --- |"]
        for name, s in self.summary().items():
            lines.append(f"| {name} | {100 * s['accuracy']:.2f} | {s['correct']} / {s['count']} |")
        return "\n".join(lines)

    def write_jsonl(self, path: str | os.PathLike) -> None:
        write_jsonl_atomic(path, self.rows())


# ------------------------------------------------------------------------------------------ yes / no (AVHBench)
_YES_NO_RE = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def parse_yes_no(completion: object) -> str | None:
    """``"Yes"`` / ``"No"``: the first standalone yes / no word (any case) of the ``<answer>`` body if there is one,
    else of the text after the last ``</think>``, else of the whole text; None when there is none."""
    if not isinstance(completion, str):
        return None
    m = re.search(r"<answer>(.*?)</answer>", completion, re.DOTALL)
    body = m.group(1) if m else (completion.rsplit("</think>", 1)[-1] if "</think>" in completion else completion)
    w = _YES_NO_RE.search(body)
    return None if w is None else w.group(1).capitalize()


class YesNoAccumulator:
    """Yes/no accuracy per task and overall, with AVHBench's other columns (positive class = ``"Yes"``).

    :meth:`summary` gives per task and ``overall`` (pooled): ``accuracy``, ``correct``, ``count``, ``precision``
    = TP / predicted Yes, ``recall`` = TP / gold Yes, ``f1`` (0 where undefined), ``yes_ratio`` = predicted Yes /
    count. A prediction without yes / no (None) is wrong and counts as not-Yes.
    """

    def __init__(self):
        self._rows: dict[str, dict] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, question_id: str, task: str, predicted: str | None, gold: str) -> dict:
        """Record one question. Raises ValueError on a duplicate id or a gold / predicted value outside Yes/No."""
        question_id = str(question_id)
        if question_id in self._rows:
            raise ValueError(f"question {question_id!r} was already added")
        if gold not in ("Yes", "No") or predicted not in ("Yes", "No", None):
            raise ValueError(f"question {question_id!r}: gold {gold!r} / predicted {predicted!r} must be Yes or No")
        row = {"id": question_id, "task": str(task), "predicted": predicted, "gold": gold,
               "correct": predicted == gold}
        self._rows[question_id] = row
        return row

    def rows(self) -> list[dict]:
        return list(self._rows.values())

    @staticmethod
    def _group(rows: list[dict]) -> dict:
        tp = sum(r["predicted"] == "Yes" and r["gold"] == "Yes" for r in rows)
        pred_yes = sum(r["predicted"] == "Yes" for r in rows)
        gold_yes = sum(r["gold"] == "Yes" for r in rows)
        correct = sum(bool(r["correct"]) for r in rows)
        precision = tp / pred_yes if pred_yes else 0.0
        recall = tp / gold_yes if gold_yes else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"accuracy": correct / len(rows), "correct": correct, "count": len(rows), "precision": precision,
                "recall": recall, "f1": f1, "yes_ratio": pred_yes / len(rows)}

    def summary(self) -> dict[str, dict]:
        """``{task: metrics}`` in first-seen task order, then ``overall``. Raises ValueError when empty."""
        rows = self.rows()
        if not rows:
            raise ValueError("summary() of an empty accumulator")
        tasks = list(dict.fromkeys(r["task"] for r in rows))
        out = {t: self._group([r for r in rows if r["task"] == t]) for t in tasks}
        out["overall"] = self._group(rows)
        return out

    def summary_table(self) -> str:
        """Markdown table, percentages with one decimal (as AVHBench's leaderboard prints them)."""
        lines = ["| task | accuracy | precision | recall | F1 | yes % | correct / count |",
                 "| --- | --- | --- | --- | --- | --- | --- |"]
        for name, s in self.summary().items():
            cells = " | ".join(f"{100 * s[k]:.1f}" for k in ("accuracy", "precision", "recall", "f1", "yes_ratio"))
            lines.append(f"| {name} | {cells} | {s['correct']} / {s['count']} |")
        return "\n".join(lines)
