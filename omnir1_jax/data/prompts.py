"""System-1 prompts of Omni-R1 (appendix B, Figure 3 for VOS and Figure 4 for AVS), the SegZero-style grounding
prompt of the released code (System-2 training on refCOCOg) and chat-message builders.

The templates keep the paper's wording; ``{frames}`` is the clip duration in seconds (T sampled frames shown at
2 fps), ``{ref_prompt}`` the referring expression, ``{start}`` / ``{end}`` the example timestamps' ``ss.ff``
part (the paper randomises them during training so the policy does not copy one pattern), and
``{audio_duration}`` the audio length.
"""

from __future__ import annotations

import numpy as np

VOS_PROMPT = (
    "- Given a {frames} seconds video and a reference instruction: {ref_prompt} that may involve temporal behavior, "
    "identify the exact object(s) {ref_prompt} in the video that matches the description.\n"
    "- Select about 4 most relevant moments that contain the referred object(s) with the best view.\n"
    "- Then, simplify the identified object into a short and clear visual grounding description that can be used "
    "for single-image reference at each moment.\n"
    "- Avoid temporal phrases and comparison phrases like \u201cwalking\u201d, \u201cmoving\u201d, \u201capproaching\u201d, "  # noqa: E501
    "\u201cbigger\u201d or \u201csmaller\u201d, but instead describe visible visual cues like clothing, pose, position, or grouping.\n"  # noqa: E501
    "- Try to select moments that are temporally well-distributed across the video, rather than clustered in the same "
    "part of the timeline. Avoid selecting multiple timestamps that are adjacent or overlapping; instead, prefer clearly "  # noqa: E501
    "distinct moments that each offer unique visual information. It is better to choose the most relevant and highly "
    "representative moments spanning the entire video, rather than picking all from the beginning.\n"
    "- Explain your reasoning in <think></think> and output the final result in <answer></answer>. Your final answer "
    "should be a JSON object in the following format:\n"
    "<think> your analysis about the video and reference instruction </think>\n"
    "<answer>\n"
    "{{\n"
    '  "start_time": "00:{start}",\n'
    '  "end_time": "00:{end}",\n'
    '  "description": "direct description of referred object(s) at this moment"\n'
    "}}\n"
    "</answer>"
)

AVS_PROMPT = (
    "- Given a {audio_duration} audio and a reference instruction: {ref_prompt}, which involves temporal and "
    "audio-related behavior, first analyze the objects in the image that are producing sound, including both human "
    "voices and instrument sounds.\n"
    "- Based on the audio content, identify the exact object {ref_prompt} in the image that matches the audio.\n"
    "- Then, simplify the identified object into a short and clear visual grounding description that can be "
    "unambiguously recognized in a single image without relying on audio.\n"
    "- Avoid using temporal expressions such as \u201cplaying\u201d or \u201cmoving\u201d; instead, describe visible visual "  # noqa: E501
    "cues such as clothing, pose, position, or grouping.\n"
    "- Explain your reasoning in <think></think> and output the final result in <answer></answer>."
)


def _seconds(x: float) -> str:
    return f"{x:g}"


def _ss_ff(t: float) -> str:
    return f"{t:05.2f}"


def example_timestamps(duration_s: float, rng: np.random.Generator | None) -> tuple[str, str]:
    """``(start, end)`` as ``ss.ff`` inside the clip; random when ``rng`` is given, else the middle third."""
    duration_s = max(float(duration_s), 0.5)
    if rng is None:
        a, b = duration_s / 3, 2 * duration_s / 3
    else:
        a, b = np.sort(rng.uniform(0.0, duration_s, size=2))
    a, b = min(a, 59.99), min(b, 59.99)  # the template's minutes are fixed to "00"
    return _ss_ff(a), _ss_ff(max(a, b))


ABOUT_FOUR = "Select about 4 most relevant moments"


def _state_num_keyframes(prompt: str, num_keyframes: int | None, phrase: str = ABOUT_FOUR) -> str:
    """Table 4's "exactly K keyframes": the prompt asks for exactly K moments, one JSON object each."""
    if num_keyframes is None:
        return prompt
    if num_keyframes < 1:
        raise ValueError(f"num_keyframes must be >= 1 or None, got {num_keyframes}")
    exact = phrase.replace("about 4", f"exactly {num_keyframes}")
    return prompt.replace(phrase, exact).replace(
        "Your final answer should be a JSON object in the following format:",
        f"Your final answer should be {num_keyframes} JSON objects, one per moment, each in the following format:",
    )


def vos_prompt(
    expression: str,
    num_frames: int,
    fps: float = 2.0,
    rng: np.random.Generator | None = None,
    num_keyframes: int | None = None,
) -> str:
    """Figure 3 prompt for a clip of ``num_frames`` frames shown at ``fps`` (random example timestamps if ``rng``).

    ``num_keyframes`` = K (``grpo.num_keyframes``) replaces "Select about 4 most relevant moments" by "Select
    exactly K most relevant moments" and asks for K JSON objects, one per moment (Table 4's fixed keyframe count).
    """
    duration = num_frames / fps
    start, end = example_timestamps(duration, rng)
    prompt = VOS_PROMPT.format(frames=_seconds(duration), ref_prompt=expression, start=start, end=end)
    return _state_num_keyframes(prompt, num_keyframes)


SHORT_VOS_PROMPT = (
    "- Given a {frames} seconds video, identify the exact object(s) {ref_prompt} in the video. Select about 4 "
    "moments and output the final result in <answer></answer>. Reference instruction: {ref_prompt}"
)


def vos_prompt_short(expression: str, num_frames: int, fps: float = 2.0, num_keyframes: int | None = None) -> str:
    """A compact VOS prompt (not the paper's) for tiny from-scratch policies (the CPU demo): the same task in
    the Figure-3 prompt's words, with the expression last so a 2-layer model sees it next to its answer
    ("Select exactly K moments" with ``num_keyframes``)."""
    prompt = SHORT_VOS_PROMPT.format(frames=_seconds(num_frames / fps), ref_prompt=expression)
    return _state_num_keyframes(prompt, num_keyframes, "Select about 4 moments")


MINIMAL_VOS_PROMPT = "Select about 4 moments of the {frames} seconds video showing {ref_prompt}"


def vos_prompt_minimal(expression: str, num_frames: int, fps: float = 2.0, num_keyframes: int | None = None) -> str:
    """The shortest VOS prompt (not the paper's; the CPU demo): one sentence ending with the expression. A tiny
    from-scratch policy learns to copy a word of its prompt in far fewer steps when the prompt is short (its
    attention at initialisation is spread over every prompt token)."""
    prompt = MINIMAL_VOS_PROMPT.format(frames=_seconds(num_frames / fps), ref_prompt=expression)
    return _state_num_keyframes(prompt, num_keyframes, "Select about 4 moments")


def avs_prompt(expression: str, audio_seconds: float) -> str:
    """Figure 4 prompt for an audio of ``audio_seconds`` seconds."""
    return AVS_PROMPT.format(audio_duration=f"{_seconds(audio_seconds)} seconds", ref_prompt=expression)


# The released Omni-R1 code's SegZero-style prompt (``image-segmentation`` task, its ``load_datasets/segzero.py``),
# word for word: the sentences are joined without spaces as the release concatenates them, and the expression is
# lower-cased with surrounding full stops stripped. The policy trained this way serves as System 2.
GROUNDING_ANSWER = '{"bbox_2d": [x1, y1, x2, y2], "points_1": [x3, y3], "points_2": [x4, y4]}'
GROUNDING_PROMPT = (
    "Please find '{question}' with bbox and points."
    "Compare the difference between objects and find the most closely matched one."
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
    "Output the one bbox and points of two largest inscribed circles inside the interested object in JSON format."
    "i.e., <think> thinking process here </think>"
    "<answer>{answer}</answer>"
)


def grounding_prompt(expression: str) -> str:
    """The SegZero-style grounding prompt (one image + the referring expression; docs/design.md §3.9).

    Wording: the released Omni-R1 code's ``QUESTION_TEMPLATE`` of ``src/omni_r1/load_datasets/segzero.py`` (the
    ``image-segmentation`` task), filled as it fills it: the expression lower-cased with surrounding full stops
    stripped, the example answer ``{"bbox_2d": [x1, y1, x2, y2], "points_1": [x3, y3], "points_2": [x4, y4]}``.
    """
    return GROUNDING_PROMPT.format(question=expression.lower().strip("."), answer=GROUNDING_ANSWER)


def user_message(prompt: str, *, video: bool = False, image: bool = False, audio: bool = False) -> list[dict]:
    """One user turn in the ``apply_chat_template`` content format: media parts first, then the text."""
    content = []
    if image:
        content.append({"type": "image"})
    if video:
        content.append({"type": "video"})
    if audio:
        content.append({"type": "audio"})
    content.append({"type": "text", "text": prompt})
    return [{"role": "user", "content": content}]
