"""Bidirectional System 1 <-> System 2 (Omni-R1 appendix F's open problem): multi-turn VOS rollouts.

Task ``vos_interactive`` with ``grpo.max_turns = K``: System 1 answers (keyframes + descriptions) as in ``vos``;
System 2 grounds every keyframe of that answer; a **feedback turn** is appended to the conversation, a user
message that lists, per keyframe, the boxes System 2 found (their count and coordinates in the pixels of the
frame System 1 saw) with that keyframe at System 1's resolution, the boxes drawn on it, as an image input; System
1 answers again. Every rollout has K answers; the last one is segmented and rewarded exactly as in ``vos``
(R_fmt, R_K, R_A, R_G), minus ``grpo.turn_cost`` per revised answer (an answer whose keyframe queries differ
from the previous answer's).

A rollout is kept as a :class:`Trajectory`: the prompt, then alternating answer and feedback segments. Turn k is
generated from the conversation so far, re-prefilled (:func:`trajectory_inputs` prepares it as one sequence);
the update scores the whole trajectory as one sequence
(:func:`~omnir1_jax.models.qwen2_5_omni.trajectory_logprobs`) with a mask that is 1 exactly on the answer
tokens, so a trajectory's log-prob is the sum over its answers and the feedback tokens, prompt like the first
user turn, enter neither the policy loss nor the KL. With ``max_turns = 1`` the task is ``vos`` and the learner
takes the one-turn path unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from omnir1_jax.config import ExperimentConfig
from omnir1_jax.data import vision
from omnir1_jax.data.text import encode_with_placeholders, left_pad
from omnir1_jax.rl import rollout as rollout_lib
from omnir1_jax.tasks.base import InteractiveTask, Scored
from omnir1_jax.tasks.vos import VOSTask

FEEDBACK_INTRO = "System 2 grounded your descriptions on the keyframes you chose."
FEEDBACK_ASK = (
    "Check whether each description picked out only the target. Answer again in the same format; "
    "you may change the keyframes and the descriptions."
)
NO_KEYFRAMES = "System 2 found no keyframe with a description in your answer."


@dataclasses.dataclass
class Trajectory:
    """One rollout's conversation: the prompt (unpadded ids + its video) and then alternating answer / feedback
    segments (``(ids, is_answer)``); ``images``: the feedback images ``(patches [P, 1176], grid [3])`` in order
    of appearance; ``answers``: the decoded answers so far."""

    prompt_ids: np.ndarray
    video: tuple[np.ndarray, np.ndarray, float]
    segments: list = dataclasses.field(default_factory=list)
    images: list = dataclasses.field(default_factory=list)
    answers: list = dataclasses.field(default_factory=list)

    def add_answer(self, ids: np.ndarray, text: str) -> None:
        self.segments.append((np.asarray(ids, np.int32), True))
        self.answers.append(text)


def trajectory_inputs(model_config, trajectories: Sequence[Trajectory], pad_id: int, *, bucket: int = 256):
    """The trajectories as one left-padded batch of prepared sequences: ``(ModelInputs, answer_mask [R, T])``
    (the mask is 1 exactly on answer tokens). The prompt of the next turn when the last segment is feedback;
    the update's input when the last segment is the final answer.

    The token length is padded up to a multiple of ``bucket`` and the feedback images' patches to the next power
    of two (at least ``bucket``; inert filler, :func:`~omnir1_jax.models.qwen2_5_omni.blocks.pad_block`), so the
    trajectories of different steps reuse a few compiled programs instead of compiling (and keeping) one per
    step's shapes."""
    # lazy: the model package pulls in flax
    from omnir1_jax.models.qwen2_5_omni import blocks, prepare_inputs

    seqs, masks = [], []
    for t in trajectories:
        seqs.append(np.concatenate([t.prompt_ids] + [ids for ids, _ in t.segments]).astype(np.int32))
        masks.append(
            np.concatenate(
                [np.zeros(len(t.prompt_ids), np.int32)]
                + [np.full(len(ids), int(ans), np.int32) for ids, ans in t.segments]
            )
        )
    ids, att = left_pad(seqs, pad_id)
    mask, _ = left_pad(masks, 0, ids.shape[1])
    kw: dict[str, Any] = dict(
        input_ids=ids,
        attention_mask=att,
        pixel_values_videos=np.concatenate([t.video[0] for t in trajectories]),
        video_grid_thw=np.stack([np.asarray(t.video[1]).reshape(3) for t in trajectories]),
        video_second_per_grid=np.asarray([t.video[2] for t in trajectories], np.float32),
    )
    images = [im for t in trajectories for im in t.images]
    if images:
        kw["pixel_values"] = np.concatenate([p for p, _ in images])
        kw["image_grid_thw"] = np.stack([np.asarray(g).reshape(3) for _, g in images])
    inputs = prepare_inputs(model_config, **kw)
    sizes = blocks.block_sizes(inputs)
    up = lambda v, m: -(-v // m) * m
    sizes["length"] = up(sizes["length"], bucket)
    unit = model_config.vision.spatial_merge_size**2
    if sizes["image_patches"] != blocks.ABSENT:
        sizes["image_patches"] = up(max(bucket, 1 << (sizes["image_patches"] - 1).bit_length()), unit)
    inputs = blocks.pad_block(model_config, inputs, sizes, block=0, num_blocks=1, pad_id=pad_id)
    mask = np.pad(mask, ((0, 0), (sizes["length"] - mask.shape[1], 0)))
    return inputs, mask.astype(np.int32)


def draw_boxes(frame: np.ndarray, boxes: np.ndarray, colour=(255, 0, 0)) -> np.ndarray:
    """``frame`` [H, W, 3] uint8 with the outline of each box (x1, y1, x2, y2 in its pixels) drawn, lines about
    1/40 of the frame's height thick (a copy)."""
    out = np.array(frame, np.uint8, copy=True)
    h, w = out.shape[:2]
    th = max(1, h // 40)
    for x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 4):
        a, b = int(np.clip(np.floor(x1), 0, w - 1)), int(np.clip(np.ceil(x2), 1, w))
        c, d = int(np.clip(np.floor(y1), 0, h - 1)), int(np.clip(np.ceil(y2), 1, h))
        out[c : min(c + th, d), a:b] = colour
        out[max(d - th, c) : d, a:b] = colour
        out[c:d, a : min(a + th, b)] = colour
        out[c:d, max(b - th, a) : b] = colour
    return out


class VOSInteractiveTask(VOSTask, InteractiveTask):
    """``vos`` with System 2's findings fed back to System 1 between answers (see the module docstring)."""

    name = "vos_interactive"

    def __init__(self, cfg: ExperimentConfig, tokenizer, bridge: Callable[[], Any] | None):
        super().__init__(cfg, tokenizer, bridge)
        self.max_turns = int(cfg.grpo.max_turns)
        self.turn_cost = float(cfg.grpo.turn_cost)
        self.eos_id = int(tokenizer.convert_tokens_to_ids("<|im_end|>"))

    # ------------------------------------------------------------------------------------- trajectories
    def trajectory_inputs(self, model_config, trajectories: Sequence[Trajectory], pad_id: int):
        """:func:`trajectory_inputs` (the module's function)."""
        return trajectory_inputs(model_config, trajectories, pad_id)

    def start(self, batch: dict[str, Any], group_size: int) -> list[Trajectory]:
        """One trajectory per rollout (rows ``prompt * group_size + sample``) holding its prompt and video."""
        mi = batch["model_inputs"]
        ids, att = np.asarray(mi["input_ids"]), np.asarray(mi["attention_mask"]).astype(bool)
        grids = np.asarray(mi["video_grid_thw"]).reshape(-1, 3)
        starts = np.concatenate([[0], np.cumsum(grids.prod(axis=1))])
        px, spg = np.asarray(mi["pixel_values_videos"]), np.asarray(mi["video_second_per_grid"]).reshape(-1)
        out = []
        for b in range(ids.shape[0]):
            video = (px[starts[b] : starts[b + 1]], grids[b], float(spg[b]))
            out += [Trajectory(ids[b][att[b]].astype(np.int32), video) for _ in range(group_size)]
        return out

    def add_answers(
        self, trajectories: Sequence[Trajectory], tokens: np.ndarray, lengths: np.ndarray, texts: Sequence[str]
    ) -> None:
        """Append each rollout's sampled answer (its tokens up to and including EOS)."""
        for t, row, n, text in zip(trajectories, np.asarray(tokens), np.asarray(lengths), texts):
            t.add_answer(row[: int(n)], text)

    def add_feedback(self, batch: dict[str, Any], trajectories: Sequence[Trajectory], group_size: int) -> dict:
        """Ground every keyframe of each rollout's last answer (one bridge request per prompt) and append the
        feedback turn. Returns counters (``interactive/...``)."""
        g, n, d = self.cfg.grpo, group_size, self.cfg.data
        stats = {"interactive/feedback_boxes": 0.0, "interactive/feedback_keyframes": 0.0}
        grids = np.asarray(batch["model_inputs"]["video_grid_thw"]).reshape(-1, 3)
        for b in range(len(batch["num_frames"])):
            t_b = int(batch["num_frames"][b])
            rows = trajectories[b * n : (b + 1) * n]
            answers = rollout_lib.parse_group([r.answers[-1] for r in rows], t_b, batch["fps_s1"], g.num_keyframes)
            queries = [rollout_lib.keyframe_queries(a) for a in answers]
            flat = [k for q in queries for k in q]
            ctx = self.contexts([r.answers[-1] for r in rows])
            ctx = {"contexts": [c for c, q in zip(ctx, queries) for _ in q]} if ctx else {}
            boxes = list(self.client().ground(batch["frames"][b], flat, **ctx).boxes) if flat else []
            frames = batch["frames"][b]
            h0, w0 = np.shape(frames[0])[:2]
            h1, w1 = int(grids[b][1]) * 14, int(grids[b][2]) * 14  # the frame System 1 saw
            scale = np.array([w1 / w0, h1 / h0, w1 / w0, h1 / h0])
            for traj, q in zip(rows, queries):
                last = traj.segments[-1][0]
                text = ("" if len(last) and int(last[-1]) == self.eos_id else "<|im_end|>") + "\n<|im_start|>user\n"
                grids_fb = []
                if not q:
                    text += NO_KEYFRAMES + " "
                else:
                    text += FEEDBACK_INTRO + "\n"
                for kf in q:
                    f, desc = kf.frame_idx, kf.description
                    found = np.asarray(boxes.pop(0), np.float64).reshape(-1, 4)
                    low = np.round(found * scale).astype(int)
                    listed = "; ".join(f"[{x1}, {y1}, {x2}, {y2}]" for x1, y1, x2, y2 in low.tolist()) or "none"
                    secs = f"{f / batch['fps_s1']:.1f}"  # the clip time System 1's answer used
                    text += (
                        f'At {secs} s, "{desc}": {len(low)} box{"es" if len(low) != 1 else ""} ({listed}) '
                        "<|vision_bos|><|IMAGE|><|vision_eos|>\n"
                    )
                    view = vision.image_view(
                        draw_boxes(frames[f], found), min_pixels=d.s1_min_pixels, max_pixels=d.s1_max_pixels
                    )
                    traj.images.append((view["pixel_values"], view["image_grid_thw"][0]))
                    grids_fb.append(view["image_grid_thw"][0])
                    stats["interactive/feedback_boxes"] += len(low)
                    stats["interactive/feedback_keyframes"] += 1
                text += FEEDBACK_ASK + "<|im_end|>\n<|im_start|>assistant\n"
                ids = encode_with_placeholders(
                    self.tokenizer, text, image_grid_thw=np.asarray(grids_fb).reshape(-1, 3) if grids_fb else None
                )
                traj.segments.append((ids.astype(np.int32), False))
        return stats

    # ------------------------------------------------------------------------------------------ rewards
    def revisions(self, trajectories: Sequence[Trajectory], batch: dict[str, Any], group_size: int) -> np.ndarray:
        """Answers per rollout whose keyframe queries differ from the previous answer's."""
        g, n = self.cfg.grpo, group_size
        out = np.zeros(len(trajectories), np.float32)
        for b in range(len(batch["num_frames"])):
            t_b = int(batch["num_frames"][b])
            for i, traj in enumerate(trajectories[b * n : (b + 1) * n]):
                parsed = [
                    rollout_lib.keyframe_queries(a)
                    for a in rollout_lib.parse_group(traj.answers, t_b, batch["fps_s1"], g.num_keyframes)
                ]
                out[b * n + i] = sum(parsed[k] != parsed[k - 1] for k in range(1, len(parsed)))
        return out

    def score_trajectories(self, batch: dict[str, Any], trajectories: Sequence[Trajectory], group_size: int) -> Scored:
        """The ``vos`` rewards of each rollout's final answer, minus ``turn_cost`` per revision."""
        got = self.score(batch, [t.answers[-1] for t in trajectories], group_size)
        rev = self.revisions(trajectories, batch, group_size)
        comps = dict(got.components, revisions=rev)
        stats = dict(got.stats, **{"interactive/revised": float((rev > 0).sum())})
        return Scored(np.asarray(got.rewards, np.float32) - self.turn_cost * rev, comps, stats)
