"""System 2 grounding: description + high-resolution keyframe -> boxes in the original frame's pixels.

The prompt follows Qwen2.5-VL's grounding convention (Omni-R1 appendix B: "the official grounding prompt of
Qwen2.5-VL"): the model answers a JSON list of ``{"bbox_2d": [x1, y1, x2, y2], "label": ...}`` in pixels of
the image it saw (the processor's resized image, at most ``max_pixels`` = 900*28*28 by default, SPEC 5).
:func:`parse_grounding` is robust: code fences and surrounding prose are skipped, a single object is
accepted, an output without any decodable JSON counts as *unparseable* (no boxes), invalid items are
dropped; boxes are mapped back to the original frame, ordered and clipped to it, and empty boxes dropped.

Backends: ``qwen2_5_vl:PATH`` (transformers ``Qwen2_5_VLForConditionalGeneration``), ``qwen2_5_omni:PATH``
(the Qwen2.5-Omni Thinker), both from local directories with greedy decoding batched over every keyframe of a
request; ``synthetic`` (:class:`sam2_bridge.synthetic.SyntheticGrounder`, no weights). Parsing is torch-free;
torch/transformers are imported only when a Qwen backend is built.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any, Sequence

import numpy as np

GROUNDING_PROMPT = ('Locate every object that matches the description "{description}" in the image and output '
                    'the bbox coordinates in JSON format.')
# System 1's rationale ahead of the grounding instruction (issue 17 item 2, ``bridge.s2_context``): the image is
# one keyframe, the rationale says what happens over the whole video (which of two look-alikes is meant)
CONTEXT_PROMPT = ('A model that watched the whole video reasoned about it as follows: "{context}"\n'
                  'Use this reasoning to decide which object the description refers to. ')
DEFAULT_MAX_PIXELS = 900 * 28 * 28
DEFAULT_MIN_PIXELS = 16 * 28 * 28
_FENCE = re.compile(r"```(?:json)?", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Grounding:
    """Boxes float32 [n, 4] (original-frame pixels, exclusive ends), labels, raw text, parse status."""

    boxes: np.ndarray
    labels: tuple[str, ...]
    text: str
    parsed: bool


def _json_values(text: str):
    decoder = json.JSONDecoder()
    text = _FENCE.sub(" ", text)
    pos = 0
    while True:
        starts = [i for i in (text.find("[", pos), text.find("{", pos)) if i >= 0]
        if not starts:
            return
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            pos = start + 1
            continue
        yield value
        pos = end


def parse_grounding(text: str, resized_hw: tuple[int, int], original_hw: tuple[int, int]) -> Grounding:
    """Boxes of a Qwen-style grounding answer, mapped from the resized image to the original frame."""
    items, parsed = [], False
    for value in _json_values(text):
        if isinstance(value, dict):
            value = [value]
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            items, parsed = value, True
            break
    rh, rw = resized_hw
    oh, ow = original_hw
    boxes, labels = [], []
    for item in items:
        raw = item.get("bbox_2d", item.get("bbox"))
        if not isinstance(raw, list) or len(raw) != 4:
            continue
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in raw):
            continue
        x1, x2 = sorted((raw[0] * ow / rw, raw[2] * ow / rw))
        y1, y2 = sorted((raw[1] * oh / rh, raw[3] * oh / rh))
        x1, x2 = min(max(x1, 0.0), ow), min(max(x2, 0.0), ow)
        y1, y2 = min(max(y1, 0.0), oh), min(max(y2, 0.0), oh)
        if x2 <= x1 or y2 <= y1:
            continue
        boxes.append((x1, y1, x2, y2))
        label = item.get("label", "")
        labels.append(label if isinstance(label, str) else str(label))
    return Grounding(np.asarray(boxes, np.float32).reshape(-1, 4), tuple(labels), text, parsed)


def grounding_prompt(description: str, context: str | None = None, template: str = GROUNDING_PROMPT) -> str:
    """The grounding instruction for one keyframe: ``template`` with the description, preceded by
    :data:`CONTEXT_PROMPT` holding System 1's rationale when ``context`` is a non-blank string. The context is
    used as given (the client cut it to ``bridge.s2_context_chars``; surrounding whitespace is stripped)."""
    text = template.format(description=description)
    if isinstance(context, str) and context.strip():
        return CONTEXT_PROMPT.format(context=context.strip()) + text
    return text


class SyntheticBackend:
    """The classical grounder of the synthetic world behind the grounder interface."""

    name = "synthetic"

    def __init__(self):
        from sam2_bridge.synthetic import SyntheticGrounder

        self.grounder = SyntheticGrounder()

    def ground(self, images: Sequence[np.ndarray], descriptions: Sequence[str],
               contexts: Sequence[str | None] | None = None) -> list[Grounding]:
        """Colour / shape matching; ``contexts`` are accepted and ignored (the classical grounder reads only the
        description, so a context never changes its boxes)."""
        out = []
        for image, desc in zip(images, descriptions):
            boxes, labels = self.grounder.ground(image, desc)
            text = json.dumps([{"bbox_2d": [float(v) for v in b], "label": l} for b, l in zip(boxes, labels)])
            out.append(Grounding(boxes, tuple(labels), text, True))
        return out


def _load_processor(kind: str, path: str):
    """The directory's processor; for a Qwen2.5-Omni Thinker exported without processor files (a policy exported
    by ``omnir1_jax.policy.export_policy`` from a tokenizer only, e.g. the tiny test policy), the processor
    Qwen2.5-Omni uses (Qwen2-VL image / video processing, 128-bin Whisper features) around its tokenizer."""
    import os

    import transformers

    saved = ("preprocessor_config.json", "processor_config.json")  # older / newer transformers' processor files
    if kind == "qwen2_5_omni" and not any(os.path.exists(os.path.join(path, f)) for f in saved):
        tok = transformers.AutoTokenizer.from_pretrained(path)
        return transformers.Qwen2_5OmniProcessor(
            image_processor=transformers.Qwen2VLImageProcessor(), video_processor=transformers.Qwen2VLVideoProcessor(),
            feature_extractor=transformers.WhisperFeatureExtractor(feature_size=128), tokenizer=tok,
            chat_template=tok.chat_template)
    return transformers.AutoProcessor.from_pretrained(path)


class QwenBackend:
    """Qwen2.5-VL or the Qwen2.5-Omni Thinker from a local directory; greedy, batched decoding."""

    def __init__(self, kind: str, path: str, device: str = "cpu", dtype: str = "float32",
                 max_new_tokens: int = 256, max_pixels: int = DEFAULT_MAX_PIXELS,
                 min_pixels: int = DEFAULT_MIN_PIXELS, batch_size: int = 16,
                 prompt: str = GROUNDING_PROMPT):
        import torch
        import transformers

        if kind not in ("qwen2_5_vl", "qwen2_5_omni"):
            raise ValueError(f"grounder kind {kind!r} is not qwen2_5_vl or qwen2_5_omni")
        if "{description}" not in prompt:
            raise ValueError("grounding prompt must contain '{description}'")
        self.name = f"{kind}:{path}"
        self.device = torch.device(device)
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.prompt = prompt
        self.processor = _load_processor(kind, path)
        self.processor.image_processor.size = {"longest_edge": max_pixels, "shortest_edge": min_pixels}
        self.processor.tokenizer.padding_side = "left"
        cls = (transformers.Qwen2_5_VLForConditionalGeneration if kind == "qwen2_5_vl"
               else transformers.Qwen2_5OmniThinkerForConditionalGeneration)
        torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
        self.model = cls.from_pretrained(path, dtype=torch_dtype).to(self.device).eval()
        self.patch = int(self.processor.image_processor.patch_size)

    def _prompt_text(self, description: str, context: str | None = None) -> str:
        text = grounding_prompt(description, context, self.prompt)
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def ground(self, images: Sequence[np.ndarray], descriptions: Sequence[str],
               contexts: Sequence[str | None] | None = None) -> list[Grounding]:
        """Greedy grounding of each (image, description); ``contexts[i]``: System 1's rationale for item i
        (None: the plain grounding prompt)."""
        import torch

        contexts = list(contexts) if contexts is not None else [None] * len(images)
        out: list[Grounding] = []
        for start in range(0, len(images), self.batch_size):
            imgs = [np.asarray(i) for i in images[start:start + self.batch_size]]
            stop = start + self.batch_size
            texts = [self._prompt_text(d, c) for d, c in zip(descriptions[start:stop], contexts[start:stop])]
            inputs = self.processor(text=texts, images=imgs, padding=True, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                ids = self.model.generate(**inputs, do_sample=False, max_new_tokens=self.max_new_tokens)
            new = ids[:, inputs["input_ids"].shape[1]:]
            answers = self.processor.batch_decode(new, skip_special_tokens=True)
            for img, answer, grid in zip(imgs, answers, inputs["image_grid_thw"].tolist()):
                resized = (grid[1] * self.patch, grid[2] * self.patch)
                out.append(parse_grounding(answer, resized, img.shape[:2]))
        return out


def build_grounder(spec: str, device: str = "cpu", **kwargs: Any):
    """``synthetic`` | ``qwen2_5_vl:PATH`` | ``qwen2_5_omni:PATH`` -> a backend with ``ground(images, descs)``."""
    if spec == "synthetic":
        return SyntheticBackend()
    kind, sep, path = spec.partition(":")
    if not sep or not path:
        raise ValueError(f"--grounder {spec!r}: expected synthetic, qwen2_5_vl:PATH or qwen2_5_omni:PATH")
    return QwenBackend(kind, path, device=device, **kwargs)
