"""Supervised targets on the synthetic world (the CPU demo's SFT warm-up).

- ``format_only``: the answer *format* only — a few random keyframes of the sampled clip and the description of
  a random object present in the clip that is never the target, so the warm-up teaches how to answer but not
  what to answer (GRPO has to learn that).
- ``oracle`` (ablations / debugging): frames where the target is visible and its description.
- ``random_object`` (the chance level of the CPU demo): an object present in the clip drawn uniformly at random
  (the target or another), the frames where it is visible and its description: a policy that answers
  perfectly except that it does not read the query.
- ``any_object`` (an SFT warm-up that cannot leak the answer): the answer format with a random object present
  (the target as often as any other), on random keyframes.
- ``mixed``: the target with probability ``target_rate``, else another object present, on random keyframes: in
  a two-object world an answer that fits these targets must read the query (to name the *other* object most of
  the time), so the warm-up learns to read it, biased against the target (see ``experiments/synthetic_cpu.py``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from omnir1_jax.config import ConfigError
from sam2_bridge.wire.constants import PALETTE, SHAPES

THINK = "the object is visible here"
#: ``{choice}`` in a think: whether the answer's description names the referred object or another one
CHOICE_TARGET, CHOICE_OTHER = "naming it", "naming another object"


def format_time(seconds: float) -> str:
    """``mm:ss.ff`` with a decimal fraction (``3.5`` -> ``"00:03.50"``)."""
    minutes, secs = divmod(max(0.0, float(seconds)), 60.0)
    return f"{int(minutes):02d}:{secs:05.2f}"


def answer_text(frames: Sequence[int], description: str, fps: float = 2.0, think: str = THINK) -> str:
    """A well-formed VOS answer naming each of ``frames`` (one single-frame item each) with ``description``."""
    items = [
        {"start_time": format_time(f / fps), "end_time": format_time(f / fps), "description": description}
        for f in sorted(frames)
    ]
    return f"<think>{think}</think><answer>{json.dumps(items)}</answer>"


def load_oracle(root: str) -> dict[str, Any]:
    """The synthetic world's per-video object table (``synthetic_objects.json`` under ``root``)."""
    path = os.path.join(root, "synthetic_objects.json")
    try:
        with open(path) as f:
            return json.load(f)["videos"]
    except FileNotFoundError:
        raise ConfigError(f"sft.target needs the synthetic world's {path}") from None


def synthetic_target(
    video: dict,
    positions: Sequence[int],
    target_ids: Sequence[int],
    rng: np.random.Generator,
    *,
    mode: str = "format_only",
    fps: float = 2.0,
    think: str = THINK,
    keyframes: tuple[int, int] = (2, 4),
    target_rate: float = 0.0,
) -> str:
    """A formatted answer for one sampled clip of a synthetic video (see the module docstring); ``think`` may
    contain ``{description}`` (replaced by the answer's description) and ``{choice}`` (:data:`CHOICE_TARGET` when
    the description names the referred object, else :data:`CHOICE_OTHER`: with ``any_object`` the warm-up's
    think then says which of the two its answer does, at random); ``keyframes``: the inclusive range the
    number of (random, single-frame) answer items of ``format_only`` / ``any_object`` is drawn from."""
    lo, hi = keyframes
    if not 1 <= lo <= hi:
        raise ConfigError(f"sft.keyframes must be (min, max) with 1 <= min <= max, got {keyframes!r}")
    t = len(positions)
    objs = video["objects"]
    if mode == "mixed":  # the target with probability target_rate, else another object present
        others = [o for o in objs if o["obj_id"] not in target_ids]
        present = [o for o in others if any(o["visible"][p] for p in positions)] or others
        chosen = [o for o in objs if o["obj_id"] in target_ids]
        pick = (
            chosen[0]
            if chosen and (not present or rng.random() < target_rate)
            else present[int(rng.integers(len(present)))]
            if present
            else None
        )
        desc = "the " + pick["description"] if pick is not None else "the object"
        frames = sorted(rng.choice(t, size=min(int(rng.integers(lo, hi + 1)), t), replace=False).tolist())
        named = pick is not None and pick["obj_id"] in target_ids
        return answer_text(frames, desc, fps, think.format(description=desc, choice=_choice(named)))
    if mode in ("random_object", "any_object"):
        present = [o for o in objs if any(o["visible"][p] for p in positions)] or list(objs)
        if not present:
            raise ConfigError("a synthetic video without objects has no random_object / any_object answer")
        pick = present[int(rng.integers(len(present)))]
        if mode == "any_object":
            desc = "the " + pick["description"]
            frames = sorted(rng.choice(t, size=min(int(rng.integers(lo, hi + 1)), t), replace=False).tolist())
            named = pick["obj_id"] in target_ids
            return answer_text(frames, desc, fps, think.format(description=desc, choice=_choice(named)))
        mode, target_ids = "oracle", [pick["obj_id"]]
    if mode == "oracle":
        chosen = [o for o in objs if o["obj_id"] in target_ids]
        visible = [i for i in range(t) if any(o["visible"][p] for o in chosen for p in [positions[i]])]
        k = min(4, len(visible))
        frames = sorted(rng.choice(visible, size=k, replace=False).tolist()) if k else [0]
        desc = "the " + chosen[0]["description"] if chosen else "the object"
        return answer_text(frames, desc, fps, think.format(description=desc, choice=_choice(bool(chosen))))
    if mode != "format_only":
        raise ConfigError(f"sft.target must be format_only, any_object, mixed or oracle, got {mode!r}")
    others = [o for o in objs if o["obj_id"] not in target_ids]
    present = [o for o in others if any(o["visible"][p] for p in positions)] or others
    if present:
        desc = "the " + present[int(rng.integers(len(present)))]["description"]
    else:  # the target is the only object: describe a colour/shape that is not in the clip
        desc = "the white square" if objs and objs[0]["description"] != "white square" else "the red circle"
    k = int(rng.integers(lo, hi + 1))
    frames = sorted(rng.choice(t, size=min(k, t), replace=False).tolist())
    return answer_text(frames, desc, fps, think.format(description=desc, choice=_choice(False)))


def _choice(named_target: bool) -> str:
    return CHOICE_TARGET if named_target else CHOICE_OTHER


def decoy_instructions(
    records, template: str, *, seed: int = 0, colours: Sequence[str] | None = None, shapes: Sequence[str] | None = None
):
    """``records`` with their expression replaced by ``template``, whose ``{colour}`` / ``{shape}`` fields are
    drawn per record uniformly from ``colours`` / ``shapes`` (default: every colour and shape of the synthetic
    world), independently of the video, so an SFT prompt never names its target but the model still has to read
    the instruction it is given (e.g. to restate it in its ``<think>``)."""
    rng = np.random.default_rng(seed)
    colours = list(PALETTE) if colours is None else list(colours)
    shapes = list(SHAPES) if shapes is None else list(shapes)
    out = []
    for r in records:
        text = template.format(
            colour=colours[int(rng.integers(len(colours)))], shape=shapes[int(rng.integers(len(shapes)))]
        )
        out.append(dataclasses.replace(r, expression=text))
    return out
