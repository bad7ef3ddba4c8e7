"""The bridge's judge backend: a local text model that answers CrossOmni judge prompts (paper 004, Table 18).

A bridge started with ``--judge hf:PATH`` builds one :class:`HFJudge` per worker and answers ``judge``
requests (:class:`sam2_bridge.wire.protocol.JudgeRequest`) with it. ``PATH`` is a local directory holding a
transformers causal LM and its tokenizer (``save_pretrained`` layout); nothing is downloaded
(``local_files_only=True``).

Decoding: each prompt becomes one user turn of the tokenizer's chat template (with the generation prompt) when
the tokenizer has a template, else it is tokenized as is; prompts are decoded greedily in batches of at most
``max_batch``, left-padded (so every prompt ends at the same position and the new tokens line up); only the new
tokens are decoded, special tokens removed. Greedy decoding of a left-padded batch gives the same text as
decoding each prompt alone (a test checks it against ``generate`` per prompt).

torch / transformers are imported when an :class:`HFJudge` is built, never at import time of this module.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

JUDGE_KINDS = ("hf",)
_KIND_ALIASES = {"hf": "hf", "transformers": "hf"}
_DTYPES = ("float32", "bfloat16", "float16")


class JudgeLoadError(ValueError):
    """The judge model or its tokenizer cannot be loaded from the given path (the message names it)."""


def parse_judge_spec(spec: str) -> tuple[str, str]:
    """``"hf:PATH"`` (or ``"transformers:PATH"``) -> ``("hf", PATH)``.

    Raises:
      ValueError: an unknown kind or an empty path (the message quotes the spec).
    """
    kind, sep, path = str(spec).partition(":")
    if not sep or kind not in _KIND_ALIASES or not path:
        raise ValueError(f"--judge {spec!r}: expected hf:PATH (a local transformers causal-LM directory)")
    return _KIND_ALIASES[kind], path


def check_judge_dir(path: str) -> str:
    """``path`` if it is a directory with a ``config.json``; else :class:`JudgeLoadError` naming it (a cheap
    check the server runs before starting workers, so a typo fails at once instead of in every worker)."""
    if not os.path.isdir(path):
        raise JudgeLoadError(f"judge model directory {path!r} does not exist")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise JudgeLoadError(f"judge model directory {path!r} has no config.json (not a save_pretrained layout)")
    return path


class HFJudge:
    """A transformers causal LM + tokenizer from a local directory; greedy, batched, left-padded decoding.

    Args:
      path: local directory (``config.json``, weights, tokenizer files).
      device: torch device string (``cpu``, ``cuda``, ``cuda:1``).
      dtype: ``float32`` | ``bfloat16`` | ``float16`` parameter dtype.
      max_batch: most prompts decoded together.

    Raises:
      JudgeLoadError: the directory is missing or transformers cannot load a model / tokenizer from it.
      ValueError: a bad ``dtype`` or ``max_batch``.
    """

    def __init__(self, path: str, device: str = "cpu", dtype: str = "float32", max_batch: int = 16):
        if dtype not in _DTYPES:
            raise ValueError(f"judge dtype {dtype!r} is not one of {_DTYPES}")
        if max_batch < 1:
            raise ValueError(f"judge max_batch must be >= 1, got {max_batch}")
        check_judge_dir(path)
        import torch
        import transformers

        self.path, self.max_batch = path, max_batch
        self.device = torch.device(device)
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = (
                transformers.AutoModelForCausalLM.from_pretrained(
                    path, local_files_only=True, dtype=getattr(torch, dtype)
                )
                .to(self.device)
                .eval()
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise JudgeLoadError(
                f"cannot load a causal LM and its tokenizer from {path!r}: {type(e).__name__}: {e}"
            ) from None
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            if self.tokenizer.eos_token_id is None:
                raise JudgeLoadError(f"the tokenizer in {path!r} has neither a pad nor an eos token")
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.name = f"hf:{path}"

    def format_prompt(self, prompt: str) -> str:
        """The text the model continues: the chat-template user turn + generation prompt, or the prompt as is."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        return prompt

    def _encode(self, text: str) -> list[int]:
        # A chat-template text already holds its special tokens; adding a BOS again would change the prompt.
        templated = bool(getattr(self.tokenizer, "chat_template", None))
        return self.tokenizer(text, add_special_tokens=not templated)["input_ids"]

    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> tuple[list[str], dict[str, float]]:
        """Greedy continuations of ``prompts`` (new tokens only, special tokens skipped), in order, and timings
        ``{"judge_s", "judge_batches"}``."""
        import torch

        t0 = time.perf_counter()
        ids = [self._encode(self.format_prompt(p)) for p in prompts]
        # Similar lengths together (less padding); the answers go back to the request's order.
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out: list[str] = [""] * len(ids)
        pad = self.tokenizer.pad_token_id
        batches = 0
        for start in range(0, len(order), self.max_batch):
            chunk = order[start : start + self.max_batch]
            width = max(len(ids[i]) for i in chunk)
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                n = len(ids[i])
                input_ids[row, width - n :] = torch.tensor(ids[i], dtype=torch.long)
                mask[row, width - n :] = 1
            with torch.inference_mode():
                gen = self.model.generate(
                    input_ids=input_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    do_sample=False,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=pad,
                )
            texts = self.tokenizer.batch_decode(gen[:, width:].cpu(), skip_special_tokens=True)
            for i, text in zip(chunk, texts):
                out[i] = text
            batches += 1
        return out, {"judge_s": time.perf_counter() - t0, "judge_batches": float(batches)}


def build_judge(spec: str | None, device: str = "cpu", dtype: str = "float32", max_batch: int = 16):
    """The judge backend for a ``--judge`` spec, or None when ``spec`` is None / empty."""
    if not spec:
        return None
    kind, path = parse_judge_spec(spec)
    if kind == "hf":
        return HFJudge(path, device=device, dtype=dtype, max_batch=max_batch)
    raise ValueError(f"--judge {spec!r}: unknown kind {kind!r}")  # pragma: no cover - parse_judge_spec guards
