"""Multiple-choice accuracy: CrossOmni (paper 004, Tables 7-10) and the general QA suites of Omni-R1 (Tables 3
and 7: OmniBench, VideoMME, MVBench) and CrossOmni's out-of-domain ones (Daily-Omni, WorldSense, AVUT).

:func:`extract_letter` reads the chosen option out of a free-form answer and never raises (a malformed answer is
``None``, i.e. wrong). :class:`QAAccumulator` reports accuracy (a fraction in [0, 1]; the papers print x100)

* per task (first-seen order; CrossOmni's nine ``"<source>-><target>"`` tasks in Table 7's column order),
* CrossOmni only: ``single`` / ``cross`` (pooled over the three source == target / six other tasks) and the
  three source-centric groups of Table 7 (``Au-centric``: Au, Au->Te, Au->Vi; ...), each pooled,
* ``<dimension>=<value>`` for every grouping dimension the rows carry (e.g. VideoMME's ``duration=short``),
* ``task_mean``: the unweighted mean of the per-task accuracies (MVBench's "Avg" over its 20 tasks), when there
  is more than one task,
* ``overall``: pooled over every question (CrossOmni Table 7's "Overall" is pooled, not the mean of the nine
  task columns: e.g. 3B GRPO's columns average 59.67 while its overall is 58.59; VideoMME's "General" is the
  pooled accuracy over short, medium and long).

A question whose answer has no letter counts as wrong. Records are JSON lines (resumable evaluations re-add
them with :meth:`QAAccumulator.add`).

Yes/no datasets (AVHBench's JUDGE subset, Omni-R1 Table 6): :func:`parse_yes_no` reads the answer and
:class:`YesNoAccumulator` reports accuracy (Table 6's number), precision, recall, F1 and the yes ratio per task.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from omnir1_jax.evaluation.metrics.jsonl import write_jsonl_atomic
from omnir1_jax.rewards.parsing import extract_tag

MODALITIES = ("Au", "Vi", "Te")
TASKS = tuple(f"{s}->{t}" for s in MODALITIES for t in MODALITIES)
# The paper's column order (Table 7): audio-, text-, visual-centric.
PAPER_ORDER = ("Au->Au", "Au->Te", "Au->Vi", "Te->Te", "Te->Au", "Te->Vi", "Vi->Vi", "Vi->Au", "Vi->Te")
# Table 7's column headers: a single-modality task is printed as its modality alone, a cross one as X->Y.
PAPER_LABELS = {
    t: (t.split("->")[0] if t.split("->")[0] == t.split("->")[1] else t.replace("->", "\u2192")) for t in PAPER_ORDER
}


def is_cross_modal(task: str) -> bool:
    """True for the six source != target tasks."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    src, dst = task.split("->")
    return src != dst


# ------------------------------------------------------------------------------------------ letter extraction
def _answer_body(completion: str) -> str:
    body = extract_tag(completion, "answer")
    if body is None:
        body = completion.rsplit("</think>", 1)[-1] if "</think>" in completion else completion
    return body


def extract_letter(
    completion: object, letters: Sequence[str] = "ABCD", options: Sequence[str] | None = None
) -> str | None:
    """The chosen option letter of a multiple-choice answer, or None; never raises.

    Where: the ``<answer>`` body if there is one, else the text after the last ``</think>``, else the whole text.
    What: the first standalone capital letter among ``letters`` there (``"B"``, ``"(B)"``, ``"B."``,
    ``"Answer: B"``; the rule of :func:`omnir1_jax.rewards.extract_choice`, generalised to any option count);
    failing that, and only when ``options`` (the option texts, in letter order) are given, the one option
    whose text the body contains as whole words (case-insensitive) when exactly one does.
    """
    if not isinstance(completion, str):
        return None
    try:
        allowed = [str(x) for x in letters if isinstance(x, str) and len(x) == 1 and x.isalpha()]
        if not allowed:
            return None
        body = _answer_body(completion)
        m = re.search(r"(?<![A-Za-z])([" + "".join(map(re.escape, allowed)) + r"])(?![A-Za-z])", body)
        if m:
            return m.group(1)
        if options:
            low = body.lower()
            hits = [
                allowed[i]
                for i, o in enumerate(options[: len(allowed)])
                if isinstance(o, str)
                and o.strip()
                and re.search(r"(?<!\w)" + re.escape(o.strip().lower()) + r"(?!\w)", low)
            ]
            if len(hits) == 1:
                return hits[0]
    except (TypeError, ValueError, re.error):  # defensive: a strange answer is a wrong answer, not a crash
        return None
    return None


class QAAccumulator:
    """Collects per-question correctness and summarises it (module docstring)."""

    def __init__(self):
        self._rows: dict[str, dict] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def add(
        self, question_id: str, task: str, predicted: str | None, gold: str, groups: Mapping[str, str] | None = None
    ) -> dict:
        """Record one question; ``predicted`` is the chosen letter (None = no letter); ``groups`` maps grouping
        dimensions to this question's value (e.g. ``{"duration": "short"}``). Returns the row.

        Raises:
          ValueError: duplicate id, an empty task or one written ``X->Y`` that is not a CrossOmni task, or a gold
            answer that is not a single letter.
        """
        question_id = str(question_id)
        if question_id in self._rows:
            raise ValueError(f"question {question_id!r} was already added")
        if not isinstance(task, str) or not task:
            raise ValueError(f"question {question_id!r}: task must be a non-empty string, got {task!r}")
        if "->" in task:
            is_cross_modal(task)  # a modality pair must be one of the nine
        if not (isinstance(gold, str) and len(gold) == 1 and gold.isalpha()):
            raise ValueError(f"question {question_id!r}: gold must be one letter, got {gold!r}")
        row: dict[str, Any] = {
            "id": question_id,
            "task": task,
            "predicted": predicted,
            "gold": gold,
            "correct": predicted == gold,
        }
        if groups:
            row["groups"] = {str(k): str(v) for k, v in groups.items()}
        self._rows[question_id] = row
        return row

    def rows(self) -> list[dict]:
        return list(self._rows.values())

    @property
    def crossomni(self) -> bool:
        """Every task is one of CrossOmni's nine modality pairs."""
        return bool(self._rows) and all(r["task"] in TASKS for r in self._rows.values())

    def summary(self) -> dict[str, dict]:
        """``{group: {"accuracy", "correct", "count"}}`` for the tasks present, the CrossOmni groups, the
        grouping dimensions, ``task_mean`` (``{"accuracy", "tasks"}``) and ``overall`` (module docstring; groups
        without questions are left out).

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
        tasks = (
            [t for t in PAPER_ORDER if any(r["task"] == t for r in rows)]
            if self.crossomni
            else list(dict.fromkeys(r["task"] for r in rows))
        )
        for task in tasks:
            out[task] = group([r for r in rows if r["task"] == task])
        if self.crossomni:
            for name, cross in (("single", False), ("cross", True)):
                sel = [r for r in rows if is_cross_modal(r["task"]) == cross]
                if sel:
                    out[name] = group(sel)
            for src in ("Au", "Te", "Vi"):
                sel = [r for r in rows if r["task"].split("->")[0] == src]
                if sel:
                    out[f"{src}-centric"] = group(sel)
        dims = list(dict.fromkeys(d for r in rows for d in r.get("groups", {})))
        for d in dims:
            for value in dict.fromkeys(r["groups"][d] for r in rows if d in r.get("groups", {})):
                out[f"{d}={value}"] = group([r for r in rows if r.get("groups", {}).get(d) == value])
        if len(tasks) > 1:
            out["task_mean"] = {"accuracy": float(np.mean([out[t]["accuracy"] for t in tasks])), "tasks": len(tasks)}
        out["overall"] = group(rows)
        return out

    def summary_table(self) -> str:
        """Markdown table, accuracy x100 with two decimals (as the papers print it); for CrossOmni records a
        second table, one row in the column layout of CrossOmni Table 7 (the tasks present)."""
        lines = ["| group | accuracy | correct / count |", "| --- | --- | --- |"]
        for name, s in self.summary().items():
            frac = f"{s['correct']} / {s['count']}" if "count" in s else f"mean of {s['tasks']} tasks"
            lines.append(f"| {name} | {100 * s['accuracy']:.2f} | {frac} |")
        if self.crossomni:
            lines += ["", self.paper_row()]
        return "\n".join(lines)

    def paper_row(self) -> str:
        """CrossOmni Table 7's row as Markdown: Au, Au\u2192Te, Au\u2192Vi, Te, ..., Vi\u2192Te, Overall (the
        tasks present), accuracy x100.

        Raises:
          ValueError: nothing was added, or the rows are not CrossOmni's modality pairs.
        """
        if not self.crossomni:
            raise ValueError("paper_row() needs CrossOmni rows (tasks '<source>-><target>' over Au, Vi, Te)")
        s = self.summary()
        cols = [t for t in PAPER_ORDER if t in s]
        head = "| " + " | ".join([PAPER_LABELS[t] for t in cols] + ["Overall"]) + " |"
        vals = "| " + " | ".join(f"{100 * s[t]['accuracy']:.2f}" for t in cols + ["overall"]) + " |"
        return "\n".join([head, "|" + " --- |" * (len(cols) + 1), vals])

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
        row = {"id": question_id, "task": str(task), "predicted": predicted, "gold": gold, "correct": predicted == gold}
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
        return {
            "accuracy": correct / len(rows),
            "correct": correct,
            "count": len(rows),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "yes_ratio": pred_yes / len(rows),
        }

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
        lines = [
            "| task | accuracy | precision | recall | F1 | yes % | correct / count |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, s in self.summary().items():
            cells = " | ".join(f"{100 * s[k]:.1f}" for k in ("accuracy", "precision", "recall", "f1", "yes_ratio"))
            lines.append(f"| {name} | {cells} | {s['correct']} / {s['count']} |")
        return "\n".join(lines)
