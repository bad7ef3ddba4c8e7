"""A tiny, offline, deterministic Qwen2.5-Omni-style tokenizer for tests and the CPU demo.

Real runs load the checkpoint's own tokenizer from its local directory. Tests and the out-of-the-box run
cannot download one, so this module trains a small byte-level BPE with the ``tokenizers`` library (well under
a second, no network) and wraps it as a ``transformers.PreTrainedTokenizerFast`` carrying the same special
tokens, named attributes (``image_token``, ``video_token``, ``audio_token``, ``vision_bos_token``, ...) and
chat template as the real Qwen2.5-Omni tokenizer, so ``Qwen2_5OmniProcessor`` can be built around it.

Special tokens take the first ids (0 .. len(SPECIAL_TOKENS)-1) in the order of :data:`SPECIAL_TOKENS`;
:func:`special_token_ids` returns the mapping that a tiny model config must use.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping

from omnir1_jax.data.prompts import AVS_PROMPT, VOS_PROMPT

# Same strings as the released Qwen2.5-Omni tokenizer.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|AUDIO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_bos|>",
    "<|vision_eos|>",
    "<|vision_pad|>",
    "<|IMAGE|>",
    "<|VIDEO|>",
)

# Attribute names that Qwen2_5OmniProcessor reads from its tokenizer.
NAMED_SPECIAL_TOKENS: Mapping[str, str] = {
    "image_token": "<|IMAGE|>",
    "video_token": "<|VIDEO|>",
    "audio_token": "<|AUDIO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
}

# Qwen2.5-Omni's chat layout (system / user / assistant turns with <|im_start|> ... <|im_end|>).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}{{ '<|vision_bos|><|IMAGE|><|vision_eos|>' }}"
    "{% elif part['type'] == 'video' %}{{ '<|vision_bos|><|VIDEO|><|vision_eos|>' }}"
    "{% elif part['type'] == 'audio' %}{{ '<|audio_bos|><|AUDIO|><|audio_eos|>' }}"
    "{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Training text: the answer format, the System-1 prompts' vocabulary and the synthetic world's words, so the
# tiny vocabulary encodes the demo's completions in few tokens.
_CORPUS = [
    "<think> the red circle leaves last, so it is the target </think>",
    '<answer>[{"start_time": "00:01.50", "end_time": "00:02.00", "description": "the red circle on the left"}]</answer>',  # noqa: E501
    '{"start_time": "00:00.00", "end_time": "00:03.50", "description": "blue square at the top right"}',
    "Given a video and a reference instruction, identify the exact object(s) in the video that matches the description.",  # noqa: E501
    "Select about 4 most relevant moments that contain the referred object(s) with the best view.",
    "Then, simplify the identified object into a short and clear visual grounding description.",
    "Avoid temporal phrases and comparison phrases like walking, moving, approaching, bigger or smaller.",
    "Explain your reasoning in <think></think> and output the final result in <answer></answer>.",
    "Given an audio and a reference instruction, which involves temporal and audio-related behavior, first analyze",
    "the objects in the image that are producing sound, including both human voices and instrument sounds.",
    "red green blue yellow purple orange cyan white black gray pink brown magenta",
    "circle square triangle star diamond ring cross shape object person dog car",
    "left right top bottom middle center upper lower small large the a an of in on at with and or",
    "appears enters leaves disappears first last fastest slowest after before sounds tone violin piano",
    "0 1 2 3 4 5 6 7 8 9 00:00.00 00:01.00 00:02.50 00:10.00 A B C D",
    "You are a helpful assistant. system user assistant",
    "Answer the question based on the video and the text information in options A/B/C/D.",
    "bbox_2d label [ ] { } : , . \" ' ( ) < > / - _ \n",
]


def _corpus() -> list[str]:
    """The training text: the fixed lines above, plus (weighted, so BPE merges favour them) the paper's System-1
    prompt templates and the answer format, so that prompts and answers take few tokens in the tiny
    vocabulary (a 600-token prompt would make the CPU demo several times slower)."""
    answer = (
        "<think>the object is visible here</think><answer>"
        + ", ".join(
            '{"start_time": "00:0%d.%d0", "end_time": "00:0%d.%d0", "description": "the %s %s"}' % (i, j, i, j, c, sh)  # noqa: UP031
            for i, j, c, sh in [
                (0, 0, "red", "circle"),
                (1, 5, "green", "square"),
                (2, 0, "blue", "triangle"),
                (3, 5, "yellow", "circle"),
                (4, 0, "purple", "square"),
                (5, 5, "orange", "triangle"),
                (6, 0, "cyan", "circle"),
                (7, 5, "white", "square"),
            ]
        )
        + "</answer>"
    )
    return _CORPUS * 4 + [VOS_PROMPT, AVS_PROMPT] * 8 + [answer] * 24


@functools.lru_cache(maxsize=4)
def _tokenizer_json(vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return tok.to_str()


def build_tiny_tokenizer(vocab_size: int = 512):
    """Return a ``PreTrainedTokenizerFast`` with Qwen2.5-Omni special tokens; deterministic for a vocab size.

    Args:
      vocab_size: total vocabulary size including special tokens (>= 300: 256 byte symbols + specials).
    """
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size={vocab_size} is too small: need >= {256 + len(SPECIAL_TOKENS)}")
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json(vocab_size)),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=dict(NAMED_SPECIAL_TOKENS),
        chat_template=CHAT_TEMPLATE,
        model_max_length=32768,
        padding_side="left",
    )
    return tok


def special_token_ids(vocab_size: int = 512) -> dict[str, int]:
    """Ids of :data:`SPECIAL_TOKENS` in the tiny tokenizer, keyed by token string (they are 0..13)."""
    tok = build_tiny_tokenizer(vocab_size)
    return {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}


def save_tiny_tokenizer(path: str | os.PathLike, vocab_size: int = 512) -> str:
    """Write the tiny tokenizer to ``path`` (``save_pretrained`` layout) and return the path."""
    tok = build_tiny_tokenizer(vocab_size)
    tok.save_pretrained(os.fspath(path))
    return os.fspath(path)
