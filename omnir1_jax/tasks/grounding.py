"""The ``grounding`` task: System-2 training in the style of SegZero (Omni-R1 section 4.1;
docs/design.md §3.9; the released code's ``image-segmentation`` task).

One refCOCOg image goes through the pipeline's System-1 view code path with ``visual_mode="image"`` at the
``data.s1_max_pixels`` budget (900*28*28 in ``experiments/refcoco_system2_7b.py``: the System-2 resolution),
with the released code's SegZero-style prompt (:func:`omnir1_jax.data.prompts.grounding_prompt`) around the
referring expression. The policy answers a box and two points in pixels of that resized image; the reward is
:func:`omnir1_jax.rewards.segzero.segzero_reward` against the GT box and points of the target mask resized to
the same image, plus the release trainer's think/answer format term and length bonus, weighted by
``grpo.segzero`` (:class:`omnir1_jax.rewards.segzero.SegZeroSpec`; ``lenient_keys`` there reproduces the release's
substring key matching). A completion's length for the bonus is its text re-tokenised plus one token for the EOS
(the learner hands the task texts, not token counts; the release counts the tokens up to and including the EOS,
so a completion cut by ``max_new_tokens`` is counted one token long, which matters only at the range's two ends).
No bridge: the policy itself grounds. The trained policy then serves as System 2 (the bridge's
``qwen2_5_omni`` grounder on its exported directory, ``bridge.grounder = "qwen2_5_omni:@policy"``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from omnir1_jax.config import ExperimentConfig
from omnir1_jax.data.vision import PATCH_SIZE
from omnir1_jax.rewards.keyframe import format_reward
from omnir1_jax.rewards.segzero import COMPONENTS, gt_box_and_points, length_bonus, segzero_reward
from omnir1_jax.tasks.base import Scored, Task
from omnir1_jax.tasks.vos import VOSTask


def resized_sizes(batch: dict[str, Any]) -> list[tuple[int, int]]:
    """``(h, w)`` of the image each prompt of ``batch`` shows the policy: its ``image_grid_thw`` rows (patches of
    14 px, one frame) times the patch size."""
    grid = np.asarray(batch["model_inputs"]["image_grid_thw"]).reshape(-1, 3)
    return [(int(g[1]) * PATCH_SIZE, int(g[2]) * PATCH_SIZE) for g in grid]


def batch_targets(batch: dict[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    """GT ``(box [4], points [2, 2])`` of each prompt, in pixels of the image the policy saw: the target mask of
    the (only) frame resized to that image (:func:`omnir1_jax.rewards.segzero.gt_box_and_points`)."""
    sizes = resized_sizes(batch)
    if len(sizes) != len(batch["gt_masks"]):
        raise ValueError(
            f"{len(batch['gt_masks'])} prompts but {len(sizes)} image grids: the grounding task needs "
            "one image per prompt (visual_mode='image')"
        )
    return [gt_box_and_points(np.asarray(m)[0], hw) for m, hw in zip(batch["gt_masks"], sizes)]


class _WithTargets:
    """The VOS pipeline's batches plus each prompt's GT in the policy's pixels: ``gt_box [B, 4]``,
    ``gt_points [B, 2, 2]`` and ``resized_hw [B, 2]`` (per-prompt arrays, so the learner's per-process slice of
    the prompts keeps them aligned); checkpointable like the iterator it wraps."""

    def __init__(self, inner):
        self.inner = inner

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, Any]:
        batch = next(self.inner)
        targets = batch_targets(batch)
        batch["gt_box"] = np.stack([t[0] for t in targets]).astype(np.float32)
        batch["gt_points"] = np.stack([t[1] for t in targets]).astype(np.float32)
        batch["resized_hw"] = np.asarray(resized_sizes(batch), np.int32)
        return batch

    def get_state(self):
        return self.inner.get_state()

    def set_state(self, state) -> None:
        self.inner.set_state(state)


def target_answer(box: np.ndarray, points: np.ndarray, think: str) -> str:
    """The formatted answer of a GT (integer pixels, as a model writes them): the SFT target."""
    ans = {
        "bbox_2d": [int(round(float(v))) for v in box],
        "points_1": [int(float(v)) for v in points[0]],
        "points_2": [int(float(v)) for v in points[1]],
    }
    return f"<think>{think}</think><answer>{json.dumps(ans)}</answer>"


class GroundingTask(VOSTask):
    """SegZero-style grounding on referring-expression images (refCOCOg); batches as the VOS task builds them
    (the Grain pipeline, one expression per image per epoch with ``run.epoch_unit = "videos"``)."""

    name = "grounding"
    # its own score(), not VOSTask's submit / collect halves
    submit, collect = Task.submit, Task.collect

    def __init__(self, cfg: ExperimentConfig, tokenizer, bridge: Callable[[], Any] | None = None):
        super().__init__(cfg, tokenizer, None)  # never needs System 2: the policy grounds
        sz = cfg.grpo.segzero
        self.weights = dict(dict.fromkeys(COMPONENTS, 1.0), think_format=sz.think_format, length=sz.length)

    def batches(
        self, records: Sequence[Any], *, batch_size: int, seed: int, sft: bool = False, share: tuple[int, int] = (0, 1)
    ):
        return _WithTargets(super().batches(records, batch_size=batch_size, seed=seed, sft=sft, share=share))

    def score(self, batch: dict[str, Any], texts: Sequence[str], group_size: int) -> Scored:
        n, sz = group_size, self.cfg.grpo.segzero
        rewards, comps = [], []
        for b, (box, pts) in enumerate(zip(batch["gt_box"], batch["gt_points"])):
            r, c = segzero_reward(list(texts[b * n : (b + 1) * n]), box, pts, lenient_keys=sz.lenient_keys)
            rewards.append(r)
            comps.append(c)
        components = {k: np.concatenate([c[k] for c in comps]) for k in COMPONENTS}
        accuracy = np.concatenate(rewards)  # the release's accuracy reward: the four SegZero terms
        components["think_format"] = format_reward(list(texts))
        lengths = [len(self.tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts]
        components["length"] = length_bonus(
            lengths, accuracy, length_range=sz.length_range, min_accuracy=sz.length_min_accuracy
        )
        total = accuracy + sz.think_format * components["think_format"] + sz.length * components["length"]
        # stats are summed over processes by the learner: a count, not a mean
        stats = {"grounding/n_formatted": float(components["format"].sum())}
        return Scored(total.astype(np.float32), components, stats)

    def sft_targets(self, batch: dict[str, Any]) -> list[str]:
        """The GT answer of each prompt with ``sft.think`` as its reasoning (a format warm-up)."""
        think = self.cfg.sft.think
        return [
            target_answer(box, pts, think.replace("{instruction}", expr))
            for box, pts, expr in zip(batch["gt_box"], batch["gt_points"], batch["expression"])
        ]
