"""CrossOmni prompts (paper 004): the Table-17 answer instruction and the SFT / GRPO targets.

The policy sees the clip (frames + audio) and one user text: :data:`INSTRUCTION` (Table 17's in-context prompt,
which fixes the ``<think> ... </think>`` + letter format the rewards check) followed by the record's biography,
question and lettered options (:meth:`CrossOmniRecord.question_text`). SFT targets (CoT supervision) are the
human four-step rationale inside ``<think>`` followed by the gold letter.
"""

from __future__ import annotations

INSTRUCTION = (
    "Answer the question based on the video and the text information in options A/B/C/D.\n"
    "You are REQUIRED to first think step by step and write out your reasoning, and THEN give the final answer.\n"
    "You MUST strictly follow this output format:\n"
    "<think>\n"
    "Your detailed step-by-step reasoning in natural language. Explain how you identify the person or object "
    "from the question and video, describe its visual appearance, find the Additional Information using that "
    "description, and then use the Additional Information to choose the correct option.\n"
    "</think>\n"
    "Final answer only: A / B / C / D\n"
    "Here are the rules you MUST follow:\n"
    "(1) Carefully read the question and observe the video. First, use them to identify the person or object "
    "mentioned in the question.\n"
    "(2) Secondly, describe the visual appearance of this person or object in the video.\n"
    "(3) Thirdly, find the Additional Information about this person or object according to the visual "
    "description.\n"
    "(4) Then, answer the question based on the Additional Information.\n"
    "(5) All identification, description, retrieval of Additional Information, and reasoning steps MUST be "
    "written ONLY inside the <think> section.\n"
    "(6) Outside the <think> tags, you MUST output ONLY the final answer (for example, just \"A\", \"B\", \"C\", "
    "or \"D\") with no extra words, no explanation, and no additional text.\n"
    "(7) Do not output anything before <think> or after the final answer. Follow exactly this structure:\n"
    "<think> ... </think>\n"
    "A/B/C/D\n"
    "If you do NOT follow this format, your answer will be considered incorrect."
)


def qa_prompt(record) -> str:
    """The user text for one :class:`~omnir1_jax.data.crossomni.CrossOmniRecord`."""
    return f"{INSTRUCTION}\n\n{record.question_text()}"


def sft_target(record, *, with_rationale: bool = True) -> str:
    """``<think> rationale </think>`` + the gold letter (CoT supervision); ``with_rationale=False`` (or a record
    without one) gives the letter alone (the paper's "SFT w/o CoT" ablation)."""
    if with_rationale and record.rationale:
        return f"<think>{record.rationale.strip()}</think>\n{record.answer}"
    return record.answer
