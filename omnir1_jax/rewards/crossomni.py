"""CrossOmni's GRPO rewards (paper 004, section 4.2.2 and Table 18): multiple-choice accuracy, the thinking
format, and two judge-scored thinking-pattern rewards (contextual consistency 0-5, logical coherence 0-3).

The expected completion (Table 17) is ``<think> reasoning </think>`` followed by the letter only.
The judge is any callable ``str -> str`` (a served model, an API client, a test stub), or, with
``batched=True``, ``list[str] -> list[str]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from omnir1_jax.rewards.parsing import extract_tag

# Table 18 of the CrossOmni paper, verbatim (the visual->text case study's wording).
CONSISTENCY_PROMPT = (
    "You are assessing how well the 'hypothesis' text covers the key information from the 'reference' text. "
    "Differences in wording or extra details in the 'hypothesis' are fine if the 'reference's' main points are "
    "included.:\n"
    "Score based on this coverage:\n"
    "5 points : Hypothesis clearly and accurately reflects significant core themes or key aspects of the "
    "reference. It demonstrates a good understanding of a substantial part of the reference material.\n"
    "4 points : Hypothesis reflects some important themes or aspects of the reference. The connection is "
    "evident, though perhaps not as comprehensive or central as a 5.\n"
    "2 points : Hypothesis shows a recognizable connection to themes or aspects of the reference, but it might "
    "be more superficial, focus on less central points, or only partially grasp a key aspect.\n"
    "1 points : Hypothesis has a tenuous or very limited connection to the reference. It might touch on a "
    "peripheral detail or a heavily reinterpreted aspect, but largely misses the main substance.\n"
    "0 points : Hypothesis does not reflect any significant themes or key aspects of the reference, or is on a "
    "completely different topic.\n"
    "Example analysis process:\n"
    "Identify main themes and key aspects in 'reference'. Determine if 'hypothesis' connects to or discusses "
    "any of these themes/aspects from 'reference'.\n"
    "Judge the strength and relevance of this connection. Is a core part of the 'reference' reflected?\n"
    "Differences are expected; evaluate if the 'hypothesis' still meaningfully reflects some key part of the "
    "'reference'.\n"
    "Assign score based on how well a significant aspect is reflected.\n"
    "reference: {reference}\n"
    "hypothesis: {hypothesis}\n"
    "only return the score number:"
)

COHERENCE_PROMPT = (
    "Please evaluate whether the reasoning path performs effective cross-modal reasoning from visual video "
    "content to text (Additional Information), and give a score from 0 to 3.\n"
    "Scoring criteria (1 point for each satisfied item):\n"
    "1. Question-guided visual localization (1 point): The reasoning interprets the question and uses it to "
    "identify and localize the relevant person/object in the video, including describing its visual appearance, "
    "rather than directly searching the text.\n"
    "2. Text retrieval via visual description (1 point): Using this visual description, the reasoning explicitly "
    "finds the corresponding Additional Information about this person/object in the text (e.g., matching name "
    "or described appearance), clearly linking video appearance to a specific text entry.\n"
    "3. Answer grounded in retrieved text (1 point): The reasoning then uses the retrieved textual Additional "
    "Information as the key evidence to select the final option A/B/C/D, with the answer clearly supported by "
    "that text and without major unsupported assumptions or contradictions.\n"
    "Scoring rule:\n"
    "- Award 1 point for each criterion that is clearly satisfied.\n"
    "- The final score is an integer from 0 to 3.\n"
    "reasoning path: {hypothesis}\n"
    "Only return the score number (an integer from 0 to 3):"
)

JUDGE_KINDS = {"consistency": (CONSISTENCY_PROMPT, 5), "coherence": (COHERENCE_PROMPT, 3)}
_THINK_FORMAT_RE = re.compile(
    r"\s*<think>(?P<think>.*?\S.*?)</think>\s*(?:<answer>\s*)?(?P<letter>[A-D])[.)]?\s*(?:</answer>)?\s*", re.DOTALL
)
_LETTER_RE = re.compile(r"(?<![A-Za-z])([A-D])(?![A-Za-z])")
_SCORE_RE = re.compile(r"^\s*(?:score\s*[:=]?\s*)?\**\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)


def extract_choice(completion: object) -> str | None:
    """The chosen letter A-D: from ``<answer>`` if present, else the text after the last ``</think>``, else the
    whole text; the first standalone capital A-D there. None when there is none."""
    if not isinstance(completion, str):
        return None
    body = extract_tag(completion, "answer")
    if body is None:
        body = completion.rsplit("</think>", 1)[-1] if "</think>" in completion else completion
    m = _LETTER_RE.search(body)
    return m.group(1) if m else None


def choice_accuracy_reward(completions: Sequence[object], gold: Sequence[str]) -> np.ndarray:
    """1 when the chosen letter equals the gold letter (``"B"`` or ``"B. text"``), else 0; float32 [N]."""
    if len(gold) != len(completions):
        raise ValueError(f"{len(completions)} completions but {len(gold)} gold answers")
    out = np.zeros(len(completions), np.float32)
    for n, (c, g) in enumerate(zip(completions, gold)):
        g_letter = extract_choice(str(g).strip()[:1]) if g else None
        if g_letter is None:
            raise ValueError(f"gold answer {g!r} (item {n}) does not start with a letter A-D")
        out[n] = float(extract_choice(c) == g_letter)
    return out


def think_format_reward(completions: Sequence[object]) -> np.ndarray:
    """1 when the completion is ``<think> non-empty </think>`` followed only by one letter A-D (optionally in
    ``<answer>`` tags, optionally with ``.`` or ``)``), as Table 17 demands; else 0."""
    return np.asarray(
        [1.0 if isinstance(c, str) and _THINK_FORMAT_RE.fullmatch(c) else 0.0 for c in completions], np.float32
    )


def parse_judge_score(text: object, max_score: int) -> float | None:
    """The integer score at the start of a judge reply (``"4"``, ``"Score: 4"``, ``"**3**"``); None when there is
    none, it is not an integer, or it is outside ``[0, max_score]``."""
    if not isinstance(text, str):
        return None
    m = _SCORE_RE.match(text)
    if not m:
        return None
    value = float(m.group(1))
    if value != int(value) or not 0 <= value <= max_score:
        return None
    return value


def judge_reward(
    judge: Callable,
    kind: Literal["consistency", "coherence"],
    completions: Sequence[object],
    references: Sequence[str] | None = None,
    *,
    batched: bool = False,
) -> tuple[np.ndarray, dict[str, float]]:
    """Judge-scored thinking-pattern reward, normalised to [0, 1].

    The hypothesis is the completion's ``<think>`` text. ``consistency`` compares it with the reference
    rationale (score 0-5, divided by 5); ``coherence`` rates it alone (0-3, divided by 3).

    Returns ``(scores [N], metrics)``; metrics: ``judge_calls``, ``judge_unparseable`` (replies without a valid
    score: they score 0), ``judge_errors`` (the judge raised: scores 0), ``no_rationale`` (no ``<think>``: 0,
    judge not called), ``judge_mean_raw`` (mean raw score of parsed replies).
    """
    if kind not in JUDGE_KINDS:
        raise ValueError(f"kind must be 'consistency' or 'coherence', got {kind!r}")
    template, max_score = JUDGE_KINDS[kind]
    if kind == "consistency" and (references is None or len(references) != len(completions)):
        raise ValueError("consistency needs one reference rationale per completion")
    out = np.zeros(len(completions), np.float32)
    prompts, where = [], []
    no_rationale = 0
    for n, c in enumerate(completions):
        think = extract_tag(c, "think")
        if think is None or not think.strip():
            no_rationale += 1
            continue
        fields = {"hypothesis": think.strip()}
        if kind == "consistency":
            fields["reference"] = str(references[n])  # type: ignore[index]
        prompts.append(template.format(**fields))
        where.append(n)
    errors = 0
    if batched and prompts:
        try:
            replies = list(judge(prompts))
            if len(replies) != len(prompts):
                raise ValueError(f"batched judge returned {len(replies)} replies for {len(prompts)} prompts")
        except Exception:
            replies, errors = [None] * len(prompts), len(prompts)
    else:
        replies = []
        for p in prompts:
            try:
                replies.append(judge(p))
            except Exception:
                replies.append(None)
                errors += 1
    unparseable, raw = 0, []
    for n, reply in zip(where, replies):
        score = parse_judge_score(reply, max_score)
        if score is None:
            unparseable += reply is not None
            continue
        raw.append(score)
        out[n] = score / max_score
    metrics = {
        "judge_calls": float(len(prompts)),
        "judge_unparseable": float(unparseable),
        "judge_errors": float(errors),
        "no_rationale": float(no_rationale),
        "judge_mean_raw": float(np.mean(raw)) if raw else 0.0,
    }
    return out, metrics
