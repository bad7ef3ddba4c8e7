"""Parsing System 1's answers (docs/design.md §2). Never raises on model output.

A VOS answer is ``<think>...</think><answer>...</answer>`` where the answer holds one JSON object, a JSON list
of objects, or several objects in a row, each ``{"start_time": "mm:ss.ff", "end_time": "mm:ss.ff",
"description": "..."}``. The clip of T sampled frames is shown to System 1 as a video at ``fps`` frames per
second (2 by default), so time t maps to frame ``min(floor(t * fps), T - 1)`` and an interval covers every
frame from its start frame to its end frame inclusive.

Decisions beyond the papers (docs/design.md §2.2–2.3):

- JSON is decoded with a real decoder (``json.JSONDecoder.raw_decode``) at every ``{`` / ``[`` not inside an
  already decoded value, so nested braces, lists, several objects in a row, commas or prose between them, and
  ``// comments`` all work; a truncated object is skipped. Objects that are not intervals but hold intervals
  (``{"moments": [...]}``) are searched recursively (depth <= 4).
- Cost: linear in the completion's length. Tags are found with ``str.find`` (the leftmost ``<answer>`` and the
  first ``</answer>`` after it, what the lazy regex ``<answer>(.*?)</answer>`` matches, without its quadratic
  backtracking on many unclosed tags); failed decode attempts may examine at most
  ``_DECODE_BUDGET_FACTOR`` times the body's length in all (an answer that exhausts it is adversarial and keeps
  only what was decoded before); the time regex only sees strings of at most ``_MAX_TIME_CHARS`` characters.
- Times: ``mm:ss``, ``mm:ss.f...`` (``00:03.5`` = 3.5 s, a decimal fraction — the released code read it as
  3.05 s), ``hh:mm:ss.f``, or plain seconds ``"3.5"``; JSON numbers are read as seconds. Negative, NaN,
  infinite, unparseable or absurdly large times (integers too large for a float) make the interval invalid;
  an end time so large that its frame overflows is clamped like any end past the clip.
- An interval is invalid when start > end, when its start lies past the clip's end (``start > T / fps``), or
  when its description is not a non-empty string; an end past the clip's end is clamped to the last frame.
- ``valid`` is True when at least one interval is valid.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any

__all__ = [
    "AnswerItem",
    "ParsedAnswer",
    "answer_from_items",
    "extract_rationale",
    "extract_tag",
    "keep_first_items",
    "parse_answer",
    "parse_description",
    "parse_time",
]

_TIME_RE = re.compile(r"^\s*(?:(?:(\d{1,4}):)?(\d{1,4}):)?(\d{1,6}(?:\.\d{1,9})?)\s*$")
_MAX_DECODE_ATTEMPTS = 2000
_DECODE_BUDGET_FACTOR = 8  # failed raw_decode attempts examine at most this many times the body, plus a constant
_DECODE_BUDGET_CONST = 20_000
_MAX_TIME_CHARS = 32  # the longest time _TIME_RE accepts is 26 characters plus surrounding whitespace
_MAX_ANSWER_CHARS = 200_000
_MAX_DEPTH = 4


@dataclasses.dataclass(frozen=True)
class AnswerItem:
    """One decoded JSON object of the answer.

    Attributes:
      start, end: times in seconds (None when missing or unparseable).
      description: the single-image description (None when missing / not a string).
      frames: the frame indices the interval covers (empty when invalid).
      error: why the item is invalid, or None.
    """

    start: float | None
    end: float | None
    description: str | None
    frames: tuple[int, ...]
    error: str | None

    @property
    def valid(self) -> bool:
        return self.error is None


@dataclasses.dataclass(frozen=True)
class ParsedAnswer:
    """A parsed System-1 answer.

    Attributes:
      keyframes: sorted frame indices of all valid intervals, repeats kept (S of the paper, M = len).
      descriptions: one description per entry of ``keyframes`` (the description of the interval it came from).
      items: every decoded JSON object, valid or not, in answer order.
      valid: at least one valid interval.
      error: why the answer is unusable (None when valid).
      num_frames: T, the number of frames of the clip the answer refers to.
      keyframe_items: one entry per entry of ``keyframes``: the index (into ``items``) of the answer item the
        keyframe came from — R_diversity counts consecutive keyframes of one item as overlaps (docs/design.md §3.3).
      other_objects: decoded JSON objects of the answer that are no interval and hold none (``{"note": "x"}``);
        every reward ignores them except the ``official`` structure bonus, which counts them as the release does.

    ``keyframes`` is sorted by (frame, first frame of its item, last frame of its item, item index): ties at one
    frame are ordered by the items' intervals, not by answer order, so reordering the items of an answer never
    changes a reward.
    """

    keyframes: tuple[int, ...]
    descriptions: tuple[str, ...]
    items: tuple[AnswerItem, ...]
    valid: bool
    error: str | None
    num_frames: int
    keyframe_items: tuple[int, ...] = ()
    other_objects: int = 0

    @property
    def unique_keyframes(self) -> tuple[int, ...]:
        """Sorted distinct keyframes (K = len)."""
        return tuple(sorted(set(self.keyframes)))

    def queries(self, max_keyframes: int | None = None) -> list[tuple[int, str]]:
        """``(frame, description)`` pairs for System 2: each distinct keyframe once, with the description of the
        first interval (in answer order) that covers it; the first ``max_keyframes`` frames when given."""
        first: dict[int, str] = {}
        for item in self.items:
            if item.valid:
                for f in item.frames:
                    first.setdefault(f, item.description)  # type: ignore[arg-type]
        frames = sorted(first)[: max_keyframes if max_keyframes is not None else None]
        return [(f, first[f]) for f in frames]


def extract_tag(text: Any, tag: str) -> str | None:
    """Content of the first ``<tag>...</tag>`` block (DOTALL), or None."""
    if not isinstance(text, str):
        return None
    # Same result as re.search(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL), in linear time: when the leftmost
    # opening tag has no closing tag after it, no later one has either.
    opening, closing = f"<{tag}>", f"</{tag}>"
    start = text.find(opening)
    if start < 0:
        return None
    start += len(opening)
    end = text.find(closing, start)
    return text[start:end] if end >= 0 else None


def extract_rationale(completion: Any, max_chars: int | None = None) -> str:
    """System 1's rationale: the text of its first ``<think>...</think>`` block, whitespace runs collapsed to one
    space, cut to at most ``max_chars`` characters (``bridge.s2_context_chars``); ``""`` when there is none.

    Never raises on model output: a non-string gives ``""``; a ``<think>`` that is never closed (a completion cut
    by ``max_new_tokens``) gives the text after it, up to an ``<answer>`` tag if one follows. The cut keeps the
    beginning (where System 1 describes the video and picks the target) and ends at a word boundary when one lies
    in the last quarter of the budget, so no word is cut in half needlessly; nothing is appended.
    """
    if max_chars is not None and (isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1):
        raise ValueError(f"max_chars must be an int >= 1 or None, got {max_chars!r}")
    if not isinstance(completion, str):
        return ""
    text = extract_tag(completion, "think")
    if text is None:
        start = completion.find("<think>")
        if start < 0:
            return ""
        text = completion[start + len("<think>") :]
        end = text.find("<answer>")
        text = text if end < 0 else text[:end]
    # bounded before the whitespace pass: a huge completion costs at most ~4x the budget
    limit = None if max_chars is None else 4 * max_chars + 64
    text = " ".join(text[:limit].split()) if limit is not None else " ".join(text.split())
    if max_chars is None or len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    if text[max_chars] != " ":
        space = cut.rfind(" ")
        if space >= max_chars * 3 // 4:
            cut = cut[:space]
    return cut.rstrip()


def parse_time(value: Any) -> float | None:
    """Seconds from ``"mm:ss.ff"``, ``"hh:mm:ss.ff"``, ``"ss.ff"`` or a JSON number; None when unusable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:  # an integer of hundreds of digits
            return None
    elif isinstance(value, str):
        value = value.strip()  # _TIME_RE allows surrounding whitespace; stripping first bounds its input
        if len(value) > _MAX_TIME_CHARS:
            return None
        m = _TIME_RE.match(value)
        if not m:
            return None
        hours, minutes, secs = m.groups()
        if minutes is None and hours is not None:  # regex puts a single "mm:" group in `hours`
            hours, minutes = None, hours
        seconds = float(secs) + 60.0 * float(minutes or 0) + 3600.0 * float(hours or 0)
    else:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _failed_scan_length(text: str, start: int, error: Exception) -> int:
    """Characters a failed ``raw_decode`` at ``start`` examined, at most: up to the error position, or to the end
    of the text for an unterminated string (reported at its opening quote) and errors without a position."""
    if isinstance(error, json.JSONDecodeError) and not error.msg.startswith("Unterminated string"):
        return max(1, error.pos - start + 1)
    return len(text) - start


def _decode_values(text: str) -> list[Any]:
    decoder = json.JSONDecoder()
    values: list[Any] = []
    pos, attempts, failed_work = 0, 0, 0
    budget = _DECODE_BUDGET_FACTOR * len(text) + _DECODE_BUDGET_CONST
    # next "{" / "[" at or after pos; refreshed only when passed, so the scans for them add up to one pass
    next_open = {c: text.find(c) for c in "{["}
    while attempts < _MAX_DECODE_ATTEMPTS and failed_work < budget:
        for c, i in next_open.items():
            if 0 <= i < pos:
                next_open[c] = text.find(c, pos)
        starts = [i for i in next_open.values() if i >= 0]
        if not starts:
            break
        start = min(starts)
        attempts += 1
        try:
            value, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError) as e:
            failed_work += _failed_scan_length(text, start, e)
            pos = start + 1
            continue
        values.append(value)
        pos = end
    return values


def _collect_objects(value: Any, depth: int = 0) -> list[dict]:
    if depth > _MAX_DEPTH:
        return []
    if isinstance(value, dict):
        if any(k in value for k in ("start_time", "end_time", "description")):
            return [value]
        found: list[dict] = []
        for v in value.values():
            if isinstance(v, (dict, list)):
                found.extend(_collect_objects(v, depth + 1))
        return found
    if isinstance(value, list):
        found = []
        for v in value:
            found.extend(_collect_objects(v, depth + 1))
        return found
    return []


def _count_other_objects(value: Any, depth: int = 0) -> int:
    """JSON objects under ``value`` that are no interval (no interval key) and hold no interval object."""
    if depth > _MAX_DEPTH:
        return 0
    if isinstance(value, dict):
        if any(k in value for k in ("start_time", "end_time", "description")):
            return 0
        if not _collect_objects(value, depth):
            return 1
        return sum(_count_other_objects(v, depth + 1) for v in value.values() if isinstance(v, (dict, list)))
    if isinstance(value, list):
        return sum(_count_other_objects(v, depth + 1) for v in value)
    return 0


def _brief(value: Any) -> str:
    """A short repr for error messages (a decoded value may be huge or deeply nested)."""
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if abs(value) < 10**12 else f"<integer of {value.bit_length()} bits>"
    if isinstance(value, str):
        return repr(value[:40] + ("..." if len(value) > 40 else ""))
    return f"<{type(value).__name__}>"


def _frame_of(seconds: float, num_frames: int, fps: float) -> int:
    """``min(floor(seconds * fps), T - 1)`` for finite seconds >= 0, also when ``seconds * fps`` overflows."""
    x = seconds * fps
    return int(math.floor(x)) if x < num_frames else num_frames - 1


def _make_item(obj: dict, num_frames: int, fps: float) -> AnswerItem:
    raw_desc = obj.get("description")
    desc = raw_desc.strip() if isinstance(raw_desc, str) else None
    start, end = parse_time(obj.get("start_time")), parse_time(obj.get("end_time"))
    error = None
    if start is None or end is None:
        error = f"unparseable time: start_time={_brief(obj.get('start_time'))}, end_time={_brief(obj.get('end_time'))}"
    elif start > end:
        error = f"start_time {start} s is after end_time {end} s"
    elif start > num_frames / fps:
        error = f"start_time {start} s is past the clip end ({num_frames / fps} s)"
    elif not desc:
        error = f"description must be a non-empty string, got {_brief(raw_desc)}"
    if error is not None or start is None or end is None:
        return AnswerItem(start, end, desc, (), error)
    first, last = _frame_of(start, num_frames, fps), _frame_of(end, num_frames, fps)
    return AnswerItem(start, end, desc, tuple(range(first, last + 1)), None)


def parse_answer(completion: Any, num_frames: int, fps: float = 2.0) -> ParsedAnswer:
    """Parse a VOS completion into keyframes and descriptions; never raises on the completion.

    Args:
      completion: the model's text (anything else gives an invalid answer).
      num_frames: T, frames in the clip shown to System 1 (must be >= 1).
      fps: the rate at which the clip was presented (docs/design.md §2.2: 2).
    """
    if num_frames < 1 or not (fps > 0):
        raise ValueError(f"num_frames must be >= 1 and fps > 0, got {num_frames}, {fps}")

    def invalid(error: str, items: tuple[AnswerItem, ...] = ()) -> ParsedAnswer:
        return ParsedAnswer((), (), items, False, error, num_frames)

    if not isinstance(completion, str):
        return invalid(f"completion is {type(completion).__name__}, not str")
    body = extract_tag(completion[: _MAX_ANSWER_CHARS * 2], "answer")
    if body is None:
        return invalid("no <answer>...</answer> block")
    values = _decode_values(body[:_MAX_ANSWER_CHARS])
    objects = [o for v in values for o in _collect_objects(v)]
    others = sum(_count_other_objects(v) for v in values)
    if not objects:
        return dataclasses.replace(invalid("no JSON interval object in the answer"), other_objects=others)
    answer = answer_from_items(tuple(_make_item(o, num_frames, fps) for o in objects), num_frames)
    return dataclasses.replace(answer, other_objects=others) if others else answer


def answer_from_items(items: tuple[AnswerItem, ...], num_frames: int) -> ParsedAnswer:
    """The ParsedAnswer of already decoded items (keyframes of the valid ones, sorted as ParsedAnswer says)."""
    keyed = sorted((f, it.frames[0], it.frames[-1], i) for i, it in enumerate(items) if it.valid for f in it.frames)
    if not keyed:
        error = "; ".join(it.error for it in items if it.error)[:500] or "no JSON interval object in the answer"
        return ParsedAnswer((), (), items, False, error, num_frames)
    return ParsedAnswer(
        tuple(k[0] for k in keyed),
        tuple(items[k[3]].description for k in keyed),  # type: ignore[misc]
        items,
        True,
        None,
        num_frames,
        tuple(k[3] for k in keyed),
    )


def keep_first_items(answer: ParsedAnswer, max_items: int | None) -> ParsedAnswer:
    """The answer restricted to its first ``max_items`` decoded items, in answer order (valid or not); the answer
    itself when ``max_items`` is None or it has no more items than that.

    This is ``grpo.num_keyframes`` (Table 4's "exactly four keyframes"): the released code keeps the first four
    objects of the answer; the rest are ignored by every reward and never reach System 2.
    """
    if max_items is not None and max_items < 1:
        raise ValueError(f"max_items must be >= 1 or None, got {max_items}")
    if max_items is None or len(answer.items) <= max_items:
        return answer
    kept = answer_from_items(answer.items[:max_items], answer.num_frames)
    return dataclasses.replace(kept, other_objects=answer.other_objects) if answer.other_objects else kept


def parse_description(completion: Any) -> str | None:
    """The grounding description of an AVS / RefAID answer: the ``<answer>`` text, or the ``description`` of a JSON
    object in it; None when there is none."""
    body = extract_tag(completion, "answer")
    if body is None:
        return None
    objects = [o for v in _decode_values(body[:_MAX_ANSWER_CHARS]) for o in _collect_objects(v)]
    for o in objects:
        d = o.get("description")
        if isinstance(d, str) and d.strip():
            return d.strip()
    text = body.strip()
    return text or None
