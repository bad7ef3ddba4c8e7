"""The GRPO task shared by the three stacks of ``benchmarks/peer_grpo.py`` (ours, tunix, TRL).

Pure Python (plus ``tokenizers`` / ``transformers`` for :func:`write_model`), so every stack's runner imports
it under its own interpreter: ours under ``.venv``, the peers under ``.venv-peers``.

The task: "answer with the colour named in the prompt". A prompt is ``"colour: <c> ->"`` for one of
:data:`COLOURS`; the policy should answer the colour and stop. Reward of one completion (text, special tokens
removed), range [0, 1.5]::

    accuracy = 1 if the first colour word of the completion is the prompt's colour, else 0
    format   = 1 if the completion starts with a colour word (leading whitespace allowed), else 0
    total    = accuracy + FORMAT_WEIGHT * format              FORMAT_WEIGHT = 0.5

A colour word is one of :data:`COLOURS` as a whole word (``\\b``), case-insensitive. Every colour is one token of
the tiny tokenizer and every prompt has the same number of tokens (checked by :func:`write_model`), so no stack
pads a prompt and the three agree on every position.

The model is a tiny Qwen2.5-architecture decoder (:data:`MODEL`; tied embeddings, as Qwen2.5's small models),
randomly initialised once by transformers' ``Qwen2ForCausalLM`` with a fixed seed and saved as a Hugging Face
directory with its byte-level BPE tokenizer; every stack loads that one directory.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Sequence

COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange", "black", "white")
TEMPLATE = "colour: {} ->"
FORMAT_WEIGHT = 0.5
EOS = "<|endoftext|>"  # the one special token: end of a completion and the pad token of every stack

# The settings every stack runs with (what could not be made equal is listed in BENCHMARKS.md "Peers").
SETTINGS: dict = {
    "group_size": 8,  # completions per prompt
    "prompts_per_step": 4,  # 32 completions per step, one optimiser update per step (mu = 1)
    "max_new_tokens": 16,
    "temperature": 1.0,  # no top-k / top-p
    "lr": 1e-2,  # AdamW, betas (0.9, 0.999), eps 1e-8, no weight decay
    "warmup_steps": 3,  # linear 0 -> lr, then constant
    "grad_clip": 1.0,  # global norm
    "beta": 0.04,  # KL coefficient, estimator k3 = exp(ref - logp) - (ref - logp) - 1
    "epsilon": 0.2,  # clip range [1 - eps, 1 + eps]
    "loss_agg": "seq_mean_token_mean",  # mean over rows of each row's token mean
    "steps": 60,
}

# The tiny policy (transformers Qwen2Config fields).
MODEL: dict = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}
VOCAB_SIZE = 320  # 256 byte symbols + 1 special + 63 merges
MODEL_SEED = 1234

_WORD = re.compile(r"\b(" + "|".join(COLOURS) + r")\b", re.IGNORECASE)


def prompt_of(colour: str) -> str:
    return TEMPLATE.format(colour)


def colour_of(prompt: str) -> str:
    """The colour a prompt names (inverse of :func:`prompt_of`); ValueError for anything else."""
    m = re.fullmatch(r"colour: (\w+) ->", prompt)
    if m is None or m.group(1) not in COLOURS:
        raise ValueError(f"prompt {prompt!r} is not of the form {TEMPLATE!r} with a colour of {COLOURS}")
    return m.group(1)


def reward_terms(colour: str, completion: str) -> tuple[float, float]:
    """``(accuracy, format)`` of one completion for a prompt naming ``colour`` (module docstring)."""
    words = _WORD.findall(completion)
    accuracy = 1.0 if words and words[0].lower() == colour else 0.0
    fmt = 1.0 if _WORD.match(completion.lstrip()) else 0.0
    return accuracy, fmt


def reward(colour: str, completion: str) -> float:
    """Total reward of one completion: ``accuracy + FORMAT_WEIGHT * format``."""
    acc, fmt = reward_terms(colour, completion)
    return acc + FORMAT_WEIGHT * fmt


def schedule(seed: int, steps: int, prompts_per_step: int) -> list[list[str]]:
    """The prompts of every step for one seed: epochs over the colours, each a ``random.Random`` permutation
    (seeded by ``seed`` and the epoch), cut into batches; the same list for every stack."""
    out: list[list[str]] = []
    pool: list[str] = []
    epoch = 0
    while len(out) < steps:
        while len(pool) < prompts_per_step:
            order = list(COLOURS)
            random.Random(seed * 1000 + epoch).shuffle(order)
            pool += [prompt_of(c) for c in order]
            epoch += 1
        out.append(pool[:prompts_per_step])
        pool = pool[prompts_per_step:]
    return out


def _corpus() -> list[str]:
    return [prompt_of(c) + " " + c for c in COLOURS] * 8 + [" ".join(COLOURS)] * 8


def write_model(path: str) -> str:
    """Create the tiny policy once and save it (``config.json``, ``model.safetensors``, the tokenizer) to
    ``path``; returns ``path``. Deterministic: transformers' initialiser under ``torch.manual_seed(MODEL_SEED)``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[EOS],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, padding_side="left")
    lengths = {len(fast(prompt_of(c))["input_ids"]) for c in COLOURS}
    singles = [c for c in COLOURS if len(fast(" " + c)["input_ids"]) != 1]
    if len(lengths) != 1 or singles:
        raise RuntimeError(f"tokenizer: prompt lengths {sorted(lengths)} (want one), multi-token colours {singles}")
    vocab = len(fast)
    cfg = Qwen2Config(
        vocab_size=vocab,
        bos_token_id=fast.eos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        **MODEL,
    )
    torch.manual_seed(MODEL_SEED)
    model = Qwen2ForCausalLM(cfg).to(torch.float32)
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    fast.save_pretrained(path)
    with open(os.path.join(path, "peer_task.json"), "w") as f:
        json.dump(
            {
                "settings": SETTINGS,
                "model": MODEL,
                "vocab_size": vocab,
                "colours": COLOURS,
                "prompt_tokens": lengths.pop(),
            },
            f,
            indent=1,
        )
    return path


def summarise_rows(colours: Sequence[str], completions: Sequence[str]) -> dict[str, float]:
    """Mean total, accuracy and format reward of a step's completions (``colours[i]`` for completion i)."""
    terms = [reward_terms(c, t) for c, t in zip(colours, completions)]
    n = max(len(terms), 1)
    acc = sum(a for a, _ in terms) / n
    fmt = sum(f for _, f in terms) / n
    return {"reward": acc + FORMAT_WEIGHT * fmt, "accuracy": acc, "format": fmt}
