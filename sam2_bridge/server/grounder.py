"""System 2 grounding: description + high-resolution keyframe -> boxes in the original frame's pixels.

The prompt follows Qwen2.5-VL's grounding convention (Omni-R1 appendix B: "the official grounding prompt of
Qwen2.5-VL"): the model answers a JSON list of ``{"bbox_2d": [x1, y1, x2, y2], "label": ...}`` in pixels of
the image it saw (the processor's resized image, at most ``max_pixels`` = 900*28*28 by default, docs/design.md §6.2).
:func:`parse_grounding` is robust: code fences and surrounding prose are skipped, a single object is
accepted, an output without any decodable JSON counts as *unparseable* (no boxes), invalid items are
dropped; boxes are mapped back to the original frame, ordered and clipped to it, and empty boxes dropped.

Backends: ``qwen2_5_vl:PATH`` (transformers ``Qwen2_5_VLForConditionalGeneration``), ``qwen2_5_omni:PATH``
(the Qwen2.5-Omni Thinker), both from local directories with greedy decoding batched over every keyframe of a
request; ``synthetic`` (:class:`sam2_bridge.server.synthetic.SyntheticGrounder`, no weights); any ``KIND:PATH`` a
plug-in registered. Parsing is torch-free; torch/transformers are imported only when a Qwen backend is built.

Grounder plug-ins (e.g. Sa2VA as System 2 for Tables 2 / 5's double-dagger rows)
--------------------------------------------------------------------------------
A grounder is any object with

- ``ground(images, descriptions, contexts=None) -> list[Grounding]``: ``images`` are uint8 ``[H, W, 3]`` RGB
  keyframes at the clip's full resolution, ``descriptions`` System 1's local description of each (same length);
  ``contexts`` (only passed when a request carries System 1's rationale, protocol version 3) a ``str`` or
  ``None`` per keyframe, to be put into the grounding prompt (:func:`grounding_prompt`). A grounder whose
  ``ground`` takes no ``contexts`` still serves every request without them (requests with them get
  ``bad_field``). It returns one :class:`Grounding` per keyframe, in order: ``boxes`` ``[n, 4]`` ``(x1, y1, x2,
  y2)`` in that image's pixels (exclusive ends; ``n = 0`` for none), a label per box, the raw model text, and
  ``parsed`` (False counts the keyframe in the reply's ``n_unparseable``). The bridge checks the output
  (:func:`check_groundings`: count, shape, finite values; a broken plug-in gets ``internal`` replies, the bridge
  stays up), clips boxes to the image and drops empty ones; SAM2 then segments from these boxes.
- an optional ``name`` (shown in errors).

It is built by a *factory* ``factory(path, *, device, dtype, max_new_tokens, max_pixels) -> grounder`` (accept
``**options`` and ignore what you do not use), registered under a kind with :func:`register_grounder` at import
time of a plug-in module. The bridge imports the plug-in in every worker: ``python -m sam2_bridge.serve
--grounder-plugin PLUGIN --grounder KIND:PATH``, where ``PLUGIN`` is an importable module name or the path of a
``.py`` file, and ``PATH`` (a local directory, e.g. the model's weights) is handed to the factory.
:mod:`sam2_bridge.server.example_grounder` is a complete worked example (README, "A different System 2").
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

GROUNDING_PROMPT = (
    'Locate every object that matches the description "{description}" in the image and output '
    "the bbox coordinates in JSON format."
)
# System 1's rationale ahead of the grounding instruction (``bridge.s2_context``, docs/design.md §8.5): the image is
# one keyframe, the rationale says what happens over the whole video (which of two look-alikes is meant)
CONTEXT_PROMPT = (
    'A model that watched the whole video reasoned about it as follows: "{context}"\n'
    "Use this reasoning to decide which object the description refers to. "
)
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
        # lazy: the synthetic models pull in scipy
        from sam2_bridge.server.synthetic import SyntheticGrounder

        self.grounder = SyntheticGrounder()

    def ground(
        self, images: Sequence[np.ndarray], descriptions: Sequence[str], contexts: Sequence[str | None] | None = None
    ) -> list[Grounding]:
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
    import transformers

    saved = ("preprocessor_config.json", "processor_config.json")  # older / newer transformers' processor files
    if kind == "qwen2_5_omni" and not any(os.path.exists(os.path.join(path, f)) for f in saved):
        tok = transformers.AutoTokenizer.from_pretrained(path)
        return transformers.Qwen2_5OmniProcessor(
            image_processor=transformers.Qwen2VLImageProcessor(),
            video_processor=transformers.Qwen2VLVideoProcessor(),
            feature_extractor=transformers.WhisperFeatureExtractor(feature_size=128),
            tokenizer=tok,
            chat_template=tok.chat_template,
        )
    return transformers.AutoProcessor.from_pretrained(path)


def _model_class(kind: str):
    import transformers

    if kind not in ("qwen2_5_vl", "qwen2_5_omni"):
        raise ValueError(f"grounder kind {kind!r} is not qwen2_5_vl or qwen2_5_omni")
    if kind == "qwen2_5_vl":
        return transformers.Qwen2_5_VLForConditionalGeneration
    return transformers.Qwen2_5OmniThinkerForConditionalGeneration


class QwenBackend:
    """Qwen2.5-VL or the Qwen2.5-Omni Thinker from a local directory; greedy, batched decoding."""

    def __init__(
        self,
        kind: str,
        path: str,
        device: str = "cpu",
        dtype: str = "float32",
        max_new_tokens: int = 256,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        min_pixels: int = DEFAULT_MIN_PIXELS,
        batch_size: int = 16,
        prompt: str = GROUNDING_PROMPT,
    ):
        import torch

        cls = _model_class(kind)
        if "{description}" not in prompt:  # before the (long) load
            raise ValueError("grounding prompt must contain '{description}'")
        torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
        self._setup(
            f"{kind}:{path}",
            cls.from_pretrained(path, dtype=torch_dtype),
            _load_processor(kind, path),
            device=device,
            max_new_tokens=max_new_tokens,
            max_pixels=max_pixels,
            min_pixels=min_pixels,
            batch_size=batch_size,
            prompt=prompt,
        )

    @classmethod
    def from_model(
        cls,
        kind: str,
        model: Any,
        processor: Any,
        *,
        name: str | None = None,
        device: str = "cpu",
        max_new_tokens: int = 256,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        min_pixels: int = DEFAULT_MIN_PIXELS,
        batch_size: int = 16,
        prompt: str = GROUNDING_PROMPT,
    ) -> QwenBackend:
        """A backend around a model and processor already in memory (an instance of ``kind``'s transformers class
        and its processor, e.g. random weights for a benchmark); the same grounding as from a directory."""
        if not isinstance(model, _model_class(kind)):
            raise TypeError(f"grounder model is a {type(model).__name__}, not the {kind!r} class")
        backend = cls.__new__(cls)
        backend._setup(
            name or f"{kind}:<in memory>",
            model,
            processor,
            device=device,
            max_new_tokens=max_new_tokens,
            max_pixels=max_pixels,
            min_pixels=min_pixels,
            batch_size=batch_size,
            prompt=prompt,
        )
        return backend

    def _setup(self, name, model, processor, *, device, max_new_tokens, max_pixels, min_pixels, batch_size, prompt):
        import torch

        if "{description}" not in prompt:
            raise ValueError("grounding prompt must contain '{description}'")
        self.name = name
        self.device = torch.device(device)
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.prompt = prompt
        self.processor = processor
        self.processor.image_processor.size = {"longest_edge": max_pixels, "shortest_edge": min_pixels}
        self.processor.tokenizer.padding_side = "left"
        self.model = model.to(self.device).eval()
        self.patch = int(self.processor.image_processor.patch_size)

    def _prompt_text(self, description: str, context: str | None = None) -> str:
        text = grounding_prompt(description, context, self.prompt)
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def ground(
        self, images: Sequence[np.ndarray], descriptions: Sequence[str], contexts: Sequence[str | None] | None = None
    ) -> list[Grounding]:
        """Greedy grounding of each (image, description); ``contexts[i]``: System 1's rationale for item i
        (None: the plain grounding prompt)."""
        import torch

        contexts = list(contexts) if contexts is not None else [None] * len(images)
        out: list[Grounding] = []
        for start in range(0, len(images), self.batch_size):
            imgs = [np.asarray(i) for i in images[start : start + self.batch_size]]
            stop = start + self.batch_size
            texts = [self._prompt_text(d, c) for d, c in zip(descriptions[start:stop], contexts[start:stop])]
            inputs = self.processor(text=texts, images=imgs, padding=True, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                ids = self.model.generate(**inputs, do_sample=False, max_new_tokens=self.max_new_tokens)
            new = ids[:, inputs["input_ids"].shape[1] :]
            answers = self.processor.batch_decode(new, skip_special_tokens=True)
            for img, answer, grid in zip(imgs, answers, inputs["image_grid_thw"].tolist()):
                resized = (grid[1] * self.patch, grid[2] * self.patch)
                out.append(parse_grounding(answer, resized, img.shape[:2]))
        return out


# ------------------------------------------------------------------------------------------ plug-ins

GROUNDERS: dict[str, Callable[..., Any]] = {}  # kind -> factory(path, *, device, **options)
_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}")


def register_grounder(kind: str, factory: Callable[..., Any], *, replace: bool = False) -> None:
    """Make ``--grounder KIND:PATH`` build ``factory(PATH, device=..., dtype=..., max_new_tokens=...,
    max_pixels=...)``. ``kind``: lower-case letters, digits and ``_`` (``synthetic`` and the built-in Qwen kinds
    are taken); registering a taken kind is a ValueError unless ``replace``."""
    if not isinstance(kind, str) or not _KIND.fullmatch(kind) or kind == "synthetic":
        raise ValueError(f"grounder kind {kind!r}: expected lower-case letters, digits and '_' (not 'synthetic')")
    if not callable(factory):
        raise ValueError(f"grounder kind {kind!r}: the factory {factory!r} is not callable")
    if kind in GROUNDERS and not replace and not _same_factory(GROUNDERS[kind], factory):
        raise ValueError(f"grounder kind {kind!r} is already registered (pass replace=True to override it)")
    GROUNDERS[kind] = factory


def _same_factory(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """The same factory, possibly imported twice (once by module name, once from its file)."""
    if a is b:
        return True
    try:
        return a.__qualname__ == b.__qualname__ and inspect.getfile(a) == inspect.getfile(b)
    except (AttributeError, TypeError):
        return False


def load_plugin(plugin: str) -> None:
    """Import a grounder plug-in (a module name, or the path of a ``.py`` file) so it registers its kinds."""
    if not isinstance(plugin, str) or not plugin:
        raise ValueError(f"--grounder-plugin {plugin!r}: expected a module name or a .py file")
    if plugin.endswith(".py") or os.sep in plugin:
        path = os.path.abspath(plugin)
        if not os.path.isfile(path):
            raise ValueError(f"--grounder-plugin {plugin}: no such file")
        name = "sam2_bridge_plugin_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
        if name in sys.modules and getattr(sys.modules[name], "__file__", None) == path:
            return
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            del sys.modules[name]
            raise
        return
    try:
        importlib.import_module(plugin)
    except ModuleNotFoundError as exc:
        raise ValueError(f"--grounder-plugin {plugin}: cannot import it ({exc})") from None


def check_groundings(results: Any, images: Sequence[np.ndarray], name: str) -> list[Grounding]:
    """A grounder's output validated: one :class:`Grounding` per image, boxes float32 ``[n, 4]`` finite, clipped
    to the image, empty ones dropped (with their labels). RuntimeError naming the grounder otherwise."""
    results = list(results) if isinstance(results, (list, tuple)) else results
    if not isinstance(results, list) or len(results) != len(images):
        got = len(results) if isinstance(results, list) else type(results).__name__
        raise RuntimeError(f"grounder {name!r} returned {got} groundings for {len(images)} keyframes")
    out = []
    for i, (g, image) in enumerate(zip(results, images)):
        if not isinstance(g, Grounding):
            raise RuntimeError(f"grounder {name!r}: result {i} is a {type(g).__name__}, expected a Grounding")
        try:
            boxes = np.asarray(g.boxes, np.float32).reshape(-1, 4)
        except (TypeError, ValueError) as exc:
            raise RuntimeError(f"grounder {name!r}: result {i} boxes are not [n, 4] numbers ({exc})") from None
        labels = tuple(str(x) for x in g.labels)
        if len(labels) != len(boxes) or not np.isfinite(boxes).all():
            raise RuntimeError(
                f"grounder {name!r}: result {i} has {len(boxes)} boxes, {len(labels)} labels "
                f"(non-finite boxes: {not np.isfinite(boxes).all()})"
            )
        h, w = image.shape[:2]
        boxes = np.clip(boxes, 0, np.asarray([w, h, w, h], np.float32))
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        out.append(Grounding(boxes[keep], tuple(l for l, k in zip(labels, keep) if k), str(g.text), bool(g.parsed)))
    return out


def _qwen(kind: str) -> Callable[..., Any]:
    def factory(path: str, device: str = "cpu", **options: Any) -> QwenBackend:
        return QwenBackend(kind, path, device=device, **options)

    return factory


register_grounder("qwen2_5_vl", _qwen("qwen2_5_vl"))
register_grounder("qwen2_5_omni", _qwen("qwen2_5_omni"))


def build_grounder(spec: str, device: str = "cpu", plugins: Sequence[str] = (), **kwargs: Any):
    """``synthetic`` | ``KIND:PATH`` (``qwen2_5_vl``, ``qwen2_5_omni`` or a kind registered by one of
    ``plugins``, imported first) -> a grounder with ``ground(images, descriptions[, contexts])``."""
    for plugin in plugins:
        load_plugin(plugin)
    if spec == "synthetic":
        return SyntheticBackend()
    kind, sep, path = spec.partition(":")
    if not sep or not path or kind not in GROUNDERS:
        raise ValueError(
            f"--grounder {spec!r}: expected synthetic or KIND:PATH with KIND one of "
            f"{sorted(GROUNDERS)} (a plug-in registers more: --grounder-plugin)"
        )
    return GROUNDERS[kind](path, device=device, **kwargs)
