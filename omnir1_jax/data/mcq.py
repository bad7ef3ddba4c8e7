"""Multiple-choice questions: the one record type, its prompts, and the helpers the suite readers share.

The base of three layers that import downwards only: this module (records, letters, prompts, reader helpers),
the readers (:mod:`omnir1_jax.data.suites_omni`: Omni-R1 Table 3 / Table 7's OmniBench, VideoMME, MVBench;
:mod:`omnir1_jax.data.suites_ood`: CrossOmni Table 10's Daily-Omni, WorldSense, AVUT; each module docstring states
exactly the files of the suite's published layout it expects) and the registry (:mod:`omnir1_jax.data.suites`:
:func:`~omnir1_jax.data.suites.read_suite` reads a suite by name into :class:`MCQRecord` s). Answers are scored
by :class:`omnir1_jax.evaluation.metrics.qa.QAAccumulator` through the one multiple-choice evaluator
(:func:`omnir1_jax.evaluation.evaluate_qa`).

Prompts (:func:`mcq_prompt`; ``data.qa_prompt``, ``data.thinking``):

- ``plain`` (default of these suites): the question, the lettered options and a request for the letter;
- ``default`` / ``cot``: CrossOmni's evaluation instruction (section 3.1, "Answer this question based on the
  video and text information in A/B/C/D."), with "Let's think step by step." prepended for ``cot`` (section 4.1);
- ``thinking`` (Omni-R1 Table 7's "thinking prompt", whose wording the paper does not print): a reasoning cue in
  the Omni-R1 answer format, ``<think>`` reasoning then the letter in ``<answer>``; our wording.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Sequence
from typing import Any

from omnir1_jax.data.errors import DataFormatError

# CrossOmni section 3.1 (verbatim) and section 4.1's chain-of-thought prefix (verbatim).
DEFAULT_INSTRUCTION = "Answer this question based on the video and text information in A/B/C/D."
COT_PREFIX = "Let's think step by step."
# Omni-R1 Table 7's thinking cue. The paper names it ("an additional reasoning cue") without printing it; this is
# the project's wording, in the <think>/<answer> format the Omni-R1 policy was trained to produce.
THINKING_CUE = (
    "Think through the question step by step first: write your reasoning inside <think></think>, then "
    "give only the letter of the correct option inside <answer></answer>."
)
PLAIN_INSTRUCTION = (
    "Select the best answer to the following multiple-choice question. Respond with the letter of the correct option."
)
PROMPT_STYLES = ("auto", "plain", "default", "cot", "table17")
LETTERS = "ABCDEFGHIJ"
_PREFIX_RE = re.compile(r"^\s*\(?([A-J])\s*[.):]\s*")


@dataclasses.dataclass(frozen=True)
class MCQRecord:
    """One multiple-choice question about a clip (or an image) and its audio.

    Attributes:
      id: unique within the suite.
      suite: ``omnibench`` | ``videomme`` | ``mvbench`` | ``dailyomni`` | ``worldsense`` | ``avut``.
      task: the suite's task / question type (accuracy is reported per task).
      question: the question text.
      options: ``(letter, text)`` pairs in letter order.
      answer: the gold letter.
      video: a video file or a frame folder (None for an image question).
      image: an image file (OmniBench), else None.
      audio: a separate audio file, else None (the video's own track is the audio).
      bound: ``(start, end)`` seconds of the clip the question is about (MVBench's bounded tasks), else None.
      frame_fps: frame rate of a frame folder (MVBench's TVQA frames: 3 fps), else None.
      groups: ``(dimension, value)`` pairs reported as extra accuracy groups (e.g. VideoMME's duration).
    """

    id: str
    suite: str
    task: str
    question: str
    options: tuple[tuple[str, str], ...]
    answer: str
    video: str | None = None
    image: str | None = None
    audio: str | None = None
    bound: tuple[float, float] | None = None
    frame_fps: float | None = None
    groups: tuple[tuple[str, str], ...] = ()

    @property
    def letters(self) -> str:
        return "".join(k for k, _ in self.options)

    @property
    def option_texts(self) -> list[str]:
        return [v for _, v in self.options]

    def question_text(self) -> str:
        """The question and its lettered options as one user text."""
        opts = "\n".join(f"({k}) {v}" for k, v in self.options)
        return f"Question: {self.question}\nOptions:\n{opts}"


def mcq_prompt(record: MCQRecord, style: str = "plain", thinking: bool = False) -> str:
    """The user text of ``record`` in prompt ``style`` (``plain`` / ``default`` / ``cot``; ``auto`` = ``plain``),
    with Omni-R1's thinking cue appended when ``thinking`` (module docstring)."""
    if style in ("auto", "plain"):
        head = PLAIN_INSTRUCTION
    elif style == "default":
        head = DEFAULT_INSTRUCTION
    elif style == "cot":
        head = f"{COT_PREFIX} {DEFAULT_INSTRUCTION}"
    else:
        raise ValueError(f"prompt style {style!r} is not one of auto, plain, default, cot for {record.suite}")
    text = f"{head}\n{record.question_text()}"
    return f"{text}\n{THINKING_CUE}" if thinking else text


def frames_in_bound(num_frames: int, fps: float, bound: tuple[float, float]) -> list[int]:
    """Indices of the frames whose time ``i / fps`` lies in ``[start, end]`` (MVBench's bounded questions); every
    frame when none does (a bound past the decoded clip keeps the clip rather than nothing)."""
    if not fps or fps <= 0:
        raise ValueError(f"a bounded question needs a positive frame rate, got {fps!r}")
    start, end = bound
    keep = [i for i in range(num_frames) if start <= i / fps <= end]
    return keep or list(range(num_frames))


# ------------------------------------------------------------------------------------------- reader helpers
def where(suite: str, locator: Any) -> str:
    """The ``record`` string of a DataFormatError: ``"<suite> <locator>"``."""
    return f"{suite} {locator}"


def require(obj: Any, keys: Sequence[str], kinds: tuple[type, ...], path: str, rec: str) -> None:
    """Each of ``keys`` is present in the JSON object ``obj`` with a value of ``kinds`` (non-empty if a str)."""
    if not isinstance(obj, dict):
        raise DataFormatError(f"entry is a {type(obj).__name__}, expected an object", path=path, record=rec)
    for k in keys:
        v = obj.get(k)
        if isinstance(v, bool) or not isinstance(v, kinds) or (isinstance(v, str) and not v.strip()):
            raise DataFormatError(
                f"field {k!r} must be a non-empty {'/'.join(t.__name__ for t in kinds)}, got {v!r}",
                path=path,
                record=rec,
            )


def lettered(values: Any, field: str, path: str, rec: str) -> tuple[tuple[str, str], ...]:
    """Options from a JSON list of texts, lettered A, B, ... in order; a ``"B. text"`` / ``"(B) text"`` prefix is
    dropped when every option carries its own letter in order (VideoMME, WorldSense write them so)."""
    if (
        not isinstance(values, list)
        or not 2 <= len(values) <= len(LETTERS)
        or not all(isinstance(v, str) for v in values)
    ):
        raise DataFormatError(
            f"field {field!r} must be a list of 2-{len(LETTERS)} strings, got {values!r}", path=path, record=rec
        )
    prefixes = [_PREFIX_RE.match(v) for v in values]
    if all(m and m.group(1) == LETTERS[i] for i, m in enumerate(prefixes)):
        values = [v[m.end() :] for v, m in zip(values, prefixes)]
    return tuple((LETTERS[i], v.strip()) for i, v in enumerate(values))


def gold_letter(
    answer: Any, options: tuple[tuple[str, str], ...], field: str, path: str, rec: str, *, by_text: bool = False
) -> str:
    """The gold letter: ``answer`` is a letter of ``options`` (``"B"``, ``"B."``, ``"(B)"``), or with ``by_text``
    the text of exactly one option (OmniBench, MVBench)."""
    if by_text:
        hits = [k for k, v in options if isinstance(answer, str) and v.strip() == answer.strip()]
        if len(hits) != 1:
            raise DataFormatError(
                f"field {field!r} = {answer!r} matches {len(hits)} of the options "
                f"{[v for _, v in options]!r}, need exactly one",
                path=path,
                record=rec,
            )
        return hits[0]
    m = re.fullmatch(r"\s*\(?([A-J])\)?\.?\s*", answer) if isinstance(answer, str) else None
    if m is None or m.group(1) not in dict(options):
        raise DataFormatError(
            f"field {field!r} = {answer!r} is not one of the option letters {''.join(k for k, _ in options)}",
            path=path,
            record=rec,
        )
    return m.group(1)


def load_json(path: str, suite: str) -> Any:
    """A JSON document; a missing or malformed file raises DataFormatError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataFormatError(f"{suite}: file not found", path=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFormatError(f"{suite}: not valid JSON: {e}", path=path) from None


def load_jsonl(path: str, suite: str) -> list[tuple[int, Any]]:
    """``(line number, object)`` of each non-empty line of a JSON-lines file."""
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise DataFormatError(f"{suite}: file not found", path=path) from None
    out = []
    with f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    out.append((n, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise DataFormatError(f"not valid JSON: {e}", path=path, record=where(suite, f"line {n}")) from None
    return out


def check_media(path: str, rec: str, what: str) -> str:
    """``path`` exists (a file, or a frame folder); else DataFormatError naming it."""
    if not os.path.exists(path):
        raise DataFormatError(f"{what} not found", path=path, record=rec)
    return path


def unique(records: Sequence[MCQRecord], path: str) -> list[MCQRecord]:
    seen: set[str] = set()
    for r in records:
        if r.id in seen:
            raise DataFormatError(f"duplicate question id {r.id!r}", path=path, record=where(r.suite, r.id))
        seen.add(r.id)
    return list(records)
