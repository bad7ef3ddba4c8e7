"""CrossOmni prompts (paper 004): the evaluation instructions and the SFT / GRPO targets.

The policy sees the clip (frames + audio) and one user text: an instruction followed by the record's biography,
question and lettered options (:meth:`CrossOmniRecord.question_text`). The instruction (``data.qa_prompt``):

- ``table17`` (``auto``; training and the default evaluation): Table 17's in-context prompt, which fixes the
  ``<think> ... </think>`` + letter format the rewards check, worded for the record's source -> target direction
  (:func:`table17_instruction`);
- ``default``: section 3.1's "Answer this question based on the video and text information in A/B/C/D.";
- ``cot``: section 4.1's chain of thought, "Let's think step by step." prepended to the default;
- ``plain``: the request for a letter the other multiple-choice suites use (:mod:`omnir1_jax.data.mcq`).

``data.thinking`` appends Omni-R1's thinking cue (:data:`omnir1_jax.data.mcq.THINKING_CUE`). SFT targets (CoT
supervision) are the human four-step rationale inside ``<think>`` followed by the gold letter.

Per-direction wording: the paper prints Table 17 for visual -> text only ("We use the visual->text questions as a
case study"). :data:`INSTRUCTION` is that text verbatim; the other eight directions substitute the source
modality's phrases (observe the video / listen to the audio / read the text information; the visual appearance /
the voice or sound / what the text says) and the target's (the Additional Information / the visual information in
the video / the audio information) into the same sentences. That substitution is the project's, not the paper's.
"""

from __future__ import annotations

from omnir1_jax.data.mcq import COT_PREFIX, DEFAULT_INSTRUCTION, PLAIN_INSTRUCTION, THINKING_CUE

# Per source modality: (where it is, how it is taken in, how the referent is described there, what the
# description is called, the short form used in the think-section sentence).
_SOURCE = {
    "Vi": (
        "video",
        "observe the video",
        "describe the visual appearance of this person or object in the video",
        "visual description",
        "describe its visual appearance",
    ),
    "Au": (
        "audio",
        "listen to the audio",
        "describe the voice or sound of this person or object in the audio",
        "audio description",
        "describe its voice or sound",
    ),
    "Te": (
        "text information",
        "read the text information",
        "describe what the text information says about this person or object",
        "text description",
        "describe what the text information says about it",
    ),
}
# Per target modality: (the information retrieved, with and without its article).
_TARGET = {
    "Te": ("the Additional Information", "Additional Information"),
    "Vi": ("the visual information in the video", "visual information"),
    "Au": ("the audio information", "audio information"),
}


def table17_instruction(source: str = "Vi", target: str = "Te") -> str:
    """Table 17's in-context instruction for the ``source`` -> ``target`` direction (module docstring)."""
    if source not in _SOURCE or target not in _TARGET:
        raise ValueError(f"direction must be over Au, Vi, Te, got {source!r} -> {target!r}")
    where, observe, describe, desc_noun, describe_short = _SOURCE[source]
    info, info_short = _TARGET[target]
    return (
        "Answer the question based on the video and the text information in options A/B/C/D.\n"
        "You are REQUIRED to first think step by step and write out your reasoning, and THEN give the final answer.\n"
        "You MUST strictly follow this output format:\n"
        "<think>\n"
        f"Your detailed step-by-step reasoning in natural language. Explain how you identify the person or object "
        f"from the question and {where}, {describe_short}, find {info} using that description, and then use "
        f"{info} to choose the correct option.\n"
        "</think>\n"
        "Final answer only: A / B / C / D\n"
        "Here are the rules you MUST follow:\n"
        f"(1) Carefully read the question and {observe}. First, use them to identify the person or object "
        "mentioned in the question.\n"
        f"(2) Secondly, {describe}.\n"
        f"(3) Thirdly, find {info} about this person or object according to the {desc_noun}.\n"
        f"(4) Then, answer the question based on {info}.\n"
        f"(5) All identification, description, retrieval of {info_short}, and reasoning steps MUST be "
        "written ONLY inside the <think> section.\n"
        '(6) Outside the <think> tags, you MUST output ONLY the final answer (for example, just "A", "B", "C", '
        'or "D") with no extra words, no explanation, and no additional text.\n'
        "(7) Do not output anything before <think> or after the final answer. Follow exactly this structure:\n"
        "<think> ... </think>\n"
        "A/B/C/D\n"
        "If you do NOT follow this format, your answer will be considered incorrect."
    )


# Table 17 as printed (visual -> text).
INSTRUCTION = table17_instruction("Vi", "Te")
STYLES = ("auto", "table17", "default", "cot", "plain")


def instruction(record, style: str = "table17") -> str:
    """The instruction of ``style`` (module docstring) for one record."""
    if style in ("auto", "table17"):
        return table17_instruction(record.source, record.target)
    if style == "default":
        return DEFAULT_INSTRUCTION
    if style == "cot":
        return f"{COT_PREFIX} {DEFAULT_INSTRUCTION}"
    if style == "plain":
        return PLAIN_INSTRUCTION
    raise ValueError(f"CrossOmni prompt style must be one of {STYLES}, got {style!r}")


def qa_prompt(record, style: str = "table17", thinking: bool = False) -> str:
    """The user text for one :class:`~omnir1_jax.data.crossomni.CrossOmniRecord`."""
    text = f"{instruction(record, style)}\n\n{record.question_text()}"
    return f"{text}\n{THINKING_CUE}" if thinking else text


def sft_target(record, *, with_rationale: bool = True) -> str:
    """``<think> rationale </think>`` + the gold letter (CoT supervision); ``with_rationale=False`` (or a record
    without one) gives the letter alone (the paper's "SFT w/o CoT" ablation)."""
    if with_rationale and record.rationale:
        return f"<think>{record.rationale.strip()}</think>\n{record.answer}"
    return record.answer
