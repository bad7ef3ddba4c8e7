"""The two-system prediction: System 1 answers greedily (:func:`omnir1_jax.policy.complete`), its keyframes are
mapped from the sampled clip to the full video, the bridge grounds them (System 2) and segments every frame.

Also the greedy answers of the question-answering datasets (CrossOmni multiple choice, AVHBench yes / no),
which need System 1 only. Every greedy System-1 answer of the project's evaluation goes through
:func:`system1_answers` here.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import numpy as np

from omnir1_jax.crossomni.batches import clip_example, iterate_batches
from omnir1_jax.data import build_pipeline
from omnir1_jax.data.avhbench import avhbench_prompt
from omnir1_jax.data.mcq import MCQRecord, mcq_prompt
from omnir1_jax.data.pipeline import collate
from omnir1_jax.data.schema import FPS_S1
from omnir1_jax.rewards import ParsedAnswer, extract_rationale, extract_tag, parse_answer, parse_description
from omnir1_jax.runtime.records import pipeline_config
from omnir1_jax.tasks.interactive import VOSInteractiveTask, trajectory_inputs
from sam2_bridge.wire.protocol import FrameRef, Keyframe

TASKS = ("vos", "avs", "refaid")

ScriptedTexts = Callable[[Sequence[Any]], Sequence[str]]
"""``texts(records)`` -> one System-1 answer per record: replaces the policy (scripted or cached answers)."""


@dataclasses.dataclass(frozen=True)
class Moment:
    """One keyframe System 1 chose: its index in the sampled clip, in the full video, and the description."""

    clip_index: int
    video_index: int
    time_s: float
    description: str


@dataclasses.dataclass
class Prediction:
    """The two-system result for one query.

    Attributes:
      text: System 1's raw answer.
      valid: the answer parsed (VOS: at least one valid interval; AVS / RefAID: a description).
      moments: the keyframes sent to System 2, in frame order.
      masks: bool ``[L, H, W]`` over every frame of the full video (all False when nothing was found).
      boxes: System 2's boxes per moment, ``[n, 4]`` float32 ``(x1, y1, x2, y2)`` in original pixels.
      earlier: with multi-turn System 1 (``vos_interactive``), the predictions of the answers before this final
        one (turn 1, 2, ...), each segmented like the final answer.
    """

    text: str
    valid: bool
    moments: list[Moment]
    masks: np.ndarray
    boxes: list[np.ndarray] = dataclasses.field(default_factory=list)
    earlier: list = dataclasses.field(default_factory=list)

    @property
    def revised(self) -> bool:
        """Whether the final answer's keyframe queries differ from the first answer's (multi-turn only)."""
        first = self.earlier[0] if self.earlier else self
        return [(m.clip_index, m.description) for m in first.moments] != [
            (m.clip_index, m.description) for m in self.moments
        ]

    @property
    def reasoning(self) -> str:
        return (extract_tag(self.text, "think") or "").strip()

    def to_json(self) -> dict[str, Any]:
        out = {
            "answer": self.text,
            "valid": self.valid,
            "reasoning": self.reasoning,
            "moments": [dataclasses.asdict(m) for m in self.moments],
            "boxes": [np.asarray(b).tolist() for b in self.boxes],
        }
        if self.earlier:
            out["earlier_answers"] = [e.text for e in self.earlier]
            out["revised"] = self.revised
        return out


# ---------------------------------------------------------------------------------------------- System 1
def system1_answers(policy, tokenizer, batch: dict[str, Any], *, max_new_tokens: int) -> list[str]:
    """Greedy System-1 answers (text) for every example of a collated batch."""
    # lazy: the policy module pulls in flax
    from omnir1_jax.policy import complete

    return complete(policy, tokenizer, batch["model_inputs"], max_new_tokens=max_new_tokens, greedy=True).texts


def moments_of(
    text: str, task: str, positions: Sequence[int], fps: float = FPS_S1, max_keyframes: int | None = None
) -> tuple[bool, list[Moment]]:
    """Parse an answer into moments; ``positions[i]`` is the full-video index of clip frame ``i``.

    VOS: each distinct keyframe of the JSON answer (:meth:`ParsedAnswer.queries`). AVS / RefAID: the answer's
    description on the first frame (RefAID grounds on frame 0; SAM2 then propagates over the clip).
    """
    positions = [int(p) for p in positions]
    if task == "vos":
        ans: ParsedAnswer = parse_answer(text, len(positions), fps)
        if not ans.valid:
            return False, []
        return True, [Moment(f, positions[f], f / fps, d) for f, d in ans.queries(max_keyframes)]
    desc = parse_description(text)
    if desc is None:
        return False, []
    return True, [Moment(0, positions[0], 0.0, desc)]


# ---------------------------------------------------------------------------------------------- System 2
def submit(client, clip, moments: Sequence[Moment], context: str | None = None):
    """Future of the bridge's :class:`GroupResult` for one query (one rollout) on ``clip`` (array or FrameRef);
    ``context``: System 1's rationale for System 2's prompt (``bridge.s2_context``)."""
    kw = {"contexts": [context]} if context is not None else {}
    return client.submit_group(clip, [[Keyframe(m.video_index, m.description) for m in moments]], **kw)


def predict_batch(
    policy,
    tokenizer,
    client,
    batch: dict[str, Any],
    clips: Sequence[Any],
    *,
    task: str = "vos",
    max_new_tokens: int = 256,
    max_keyframes: int | None = None,
    texts: Sequence[str] | None = None,
    context_chars: int | None = None,
) -> list[Prediction]:
    """System 1 on a batch, then System 2 + SAM2 on each example's full video (``clips[b]``: uint8 frames
    ``[L, H, W, 3]`` or a ``FrameRef``), one bridge request per example, all in flight together. ``texts``
    replaces System 1's answers (scripted / cached answers); ``context_chars``: pass each answer's rationale, cut
    to that many characters, into System 2's prompt (``bridge.s2_context``; None = off)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if texts is None:
        texts = system1_answers(policy, tokenizer, batch, max_new_tokens=max_new_tokens)
    if len(texts) != len(clips):
        raise ValueError(f"{len(texts)} answers for {len(clips)} clips")
    jobs = []
    for b, text in enumerate(texts):
        t = int(batch["num_frames"][b])
        valid, moments = moments_of(text, task, batch["frame_indices"][b][:t], batch["fps_s1"], max_keyframes)
        ctx = extract_rationale(text, context_chars) if context_chars is not None else None
        jobs.append((text, valid, moments, submit(client, clips[b], moments, ctx)))
    out = []
    for text, valid, moments, fut in jobs:
        res = fut.result().raise_for_status()
        r = res.rollouts[0]
        out.append(
            Prediction(
                text,
                valid,
                moments,
                np.asarray(r.masks, bool),
                [np.asarray(b, np.float32).reshape(-1, 4) for b in r.boxes],
            )
        )
    return out


def interactive_answers(
    cfg, policy, tokenizer, client, batch: dict[str, Any], *, turns: int, max_new_tokens: int
) -> list[list[str]]:
    """Greedy multi-turn System 1 (task ``vos_interactive``): each example's answers, turn 1 .. ``turns``, System
    2's boxes fed back between them exactly as in training (:mod:`omnir1_jax.tasks.interactive`)."""
    # lazy: the policy module pulls in flax
    from omnir1_jax import policy as policy_lib

    task = VOSInteractiveTask(cfg, tokenizer, lambda: client)
    pad, eos = policy_lib.pad_id_of(tokenizer), policy_lib.eos_ids_of(tokenizer)
    media = policy_lib.media_token_ids(tokenizer)
    comp = policy_lib.complete(
        policy,
        tokenizer,
        batch["model_inputs"],
        max_new_tokens=max_new_tokens,
        greedy=True,
        eos_ids=eos,
        suppress_ids=media,
    )
    trajs = task.start(batch, 1)
    task.add_answers(trajs, comp.tokens, comp.lengths, comp.texts)
    for _ in range(2, turns + 1):
        task.add_feedback(batch, trajs, 1)
        inputs, _ = trajectory_inputs(policy.config, trajs, pad)
        comp = policy_lib.complete(
            policy,
            tokenizer,
            inputs,
            max_new_tokens=max_new_tokens,
            greedy=True,
            eos_ids=eos,
            key=jax.random.key(0),
            suppress_ids=media,
        )
        task.add_answers(trajs, comp.tokens, comp.lengths, comp.texts)
    return [list(t.answers) for t in trajs]


def load_frames(record, positions: Sequence[int] | None = None) -> np.ndarray:
    """uint8 RGB frames [T, H, W, 3] of a record (all, or the given positions)."""
    from PIL import Image

    idx = range(record.num_frames) if positions is None else positions
    frames = []
    for i in idx:
        src = io.BytesIO(record.frame_bytes[i]) if record.frame_bytes is not None else record.frame_paths[i]
        with Image.open(src) as im:
            frames.append(np.asarray(im.convert("RGB")))
    return np.stack(frames)


def clip_reference(record):
    """A ``FrameRef`` when the record's frames follow ``root/JPEGImages/<video>/<name>`` (the bridge reads them
    itself), else the uint8 frames [T, H, W, 3] loaded here."""
    paths = list(record.frame_paths)
    if record.frame_bytes is None:
        video_dir = os.path.dirname(paths[0])
        suffix = os.path.normpath(record.video_id)
        if video_dir.endswith(os.sep + os.path.join("JPEGImages", suffix)):
            root = video_dir[: -len(os.path.join("JPEGImages", suffix)) - 1]
            names = [os.path.basename(p) for p in paths]
            if all(os.path.dirname(p) == video_dir for p in paths):
                return FrameRef(root=root, video=record.video_id, names=tuple(names))
    return load_frames(record)


class TwoSystemPredictor:
    """``predictor(records)`` yields ``(record, Prediction)``: System 1 greedy over the evaluation pipeline's
    batches (``data.max_frames`` sampled frames, ``data.batch_size`` per batch), the bridge on each full video.

    Args:
      cfg: the experiment (its ``data`` section builds the pipeline, with ``grpo.num_keyframes`` in the prompt;
        ``grpo.max_new_tokens`` the default answer length).
      client: a ``BridgeClient`` (or anything with its ``submit_group``).
      texts: :data:`ScriptedTexts` replacing the policy's answers (tests, cached answers); ``policy`` may then
        be None.
    """

    def __init__(
        self, cfg, policy, tokenizer, client, *, max_new_tokens: int | None = None, texts: ScriptedTexts | None = None
    ):
        self.cfg, self.policy, self.tokenizer, self.client = cfg, policy, tokenizer, client
        self.max_new_tokens = max_new_tokens or cfg.grpo.max_new_tokens
        self.texts = texts
        self.task = "refaid" if cfg.data.task == "refaid" else ("avs" if cfg.data.dataset == "refavs" else "vos")
        # multi-turn System 1: every turn's answer is segmented (J&F per turn count in the summary)
        self.turns = cfg.grpo.max_turns if cfg.data.task == "vos_interactive" else 1
        self.context_chars = cfg.bridge.s2_context_chars if cfg.bridge.s2_context else None

    def __call__(self, records: Sequence[Any]) -> Iterator[tuple[Any, Prediction]]:
        if not records:
            return
        by_id = {(r.video_id, r.exp_id): r for r in records}
        pcfg = pipeline_config(
            self.cfg.data, train=False, seed=self.cfg.run.seed, num_epochs=1, num_keyframes=self.cfg.grpo.num_keyframes
        )  # the prompt the policy was trained on
        for batch in build_pipeline(list(records), self.tokenizer, pcfg):
            recs = [by_id[(v, e)] for v, e in zip(batch["video_id"], batch["exp_id"])]
            texts = list(self.texts(recs)) if self.texts is not None else None
            clips = [clip_reference(r) for r in recs]
            if self.turns > 1 and texts is None:
                answers = interactive_answers(
                    self.cfg,
                    self.policy,
                    self.tokenizer,
                    self.client,
                    batch,
                    turns=self.turns,
                    max_new_tokens=self.max_new_tokens,
                )
                per_turn = [
                    predict_batch(
                        self.policy,
                        self.tokenizer,
                        self.client,
                        batch,
                        clips,
                        task=self.task,
                        texts=[a[k] for a in answers],
                        context_chars=self.context_chars,
                    )
                    for k in range(self.turns)
                ]
                preds = per_turn[-1]
                for i, p in enumerate(preds):
                    p.earlier = [per_turn[k][i] for k in range(self.turns - 1)]
            else:
                preds = predict_batch(
                    self.policy,
                    self.tokenizer,
                    self.client,
                    batch,
                    clips,
                    task=self.task,
                    max_new_tokens=self.max_new_tokens,
                    texts=texts,
                    context_chars=self.context_chars,
                )
            yield from zip(recs, preds)


# ------------------------------------------------------------------------------------- question answering
def qa_answers(cfg, policy, tokenizer, records: Sequence[Any]) -> Iterator[tuple[Any, str]]:
    """``(record, greedy completion)`` per multiple-choice record, batched by ``data.batch_size`` in record order:
    CrossOmni records through the CrossOmni batches, suite records through :func:`mcq_answers`."""
    records = list(records)
    if records and isinstance(records[0], MCQRecord):
        yield from mcq_answers(cfg, policy, tokenizer, records)
        return
    for chunk, batch in iterate_batches(records, tokenizer, cfg.data, cfg.data.batch_size, shuffle=False):
        yield from zip(chunk, system1_answers(policy, tokenizer, batch, max_new_tokens=cfg.grpo.max_new_tokens))


def mcq_answers(cfg, policy, tokenizer, records: Sequence[Any]) -> Iterator[tuple[Any, str]]:
    """``(record, greedy completion)`` per :class:`~omnir1_jax.data.mcq.MCQRecord`: the clip's frames (at most
    ``data.max_frames``, inside the question's time bound if it has one) or the image, in the System-1 view of
    ``data.s1_min_pixels`` / ``data.s1_max_pixels`` (Omni-R1 Table 7: 128*28*28 or 256*28*28), the audio (the
    record's file, else the clip's own track) and :func:`~omnir1_jax.data.mcq.mcq_prompt` with ``data.qa_prompt``
    and ``data.thinking``; batched by ``data.batch_size``."""
    # lazy: the policy module pulls in flax
    from omnir1_jax.policy import pad_id_of

    d = cfg.data

    def example(rec):
        return clip_example(
            rec.image or rec.video,
            rec.audio,
            rec.id,
            rec.question,
            mcq_prompt(rec, d.qa_prompt, d.thinking),
            tokenizer,
            max_frames=d.max_frames,
            s1_min_pixels=d.s1_min_pixels,
            s1_max_pixels=d.s1_max_pixels,
            dataset=rec.suite,
            split="qa",
            image=rec.image is not None,
            bound=rec.bound,
            frame_fps=rec.frame_fps,
        )

    records = list(records)
    for s in range(0, len(records), d.batch_size):
        chunk = records[s : s + d.batch_size]
        batch = collate([example(r) for r in chunk], pad_id=pad_id_of(tokenizer), pad_to_multiple=64)
        yield from zip(chunk, system1_answers(policy, tokenizer, batch, max_new_tokens=cfg.grpo.max_new_tokens))


def avhbench_answers(cfg, policy, tokenizer, records: Sequence[Any]) -> Iterator[tuple[Any, str]]:
    """``(record, greedy completion)`` per AVHBench record: the clip's frames (System-1 view, at most
    ``data.max_frames``) and its own audio track, with :func:`~omnir1_jax.data.avhbench.avhbench_prompt`;
    batched by ``data.batch_size``."""
    # lazy: the policy module pulls in flax
    from omnir1_jax.policy import pad_id_of

    d = cfg.data

    def example(rec):
        return clip_example(
            rec.video,
            None,
            rec.id,
            rec.question,
            avhbench_prompt(rec),
            tokenizer,
            max_frames=d.max_frames,
            s1_min_pixels=d.s1_min_pixels,
            s1_max_pixels=d.s1_max_pixels,
            dataset="avhbench",
            split="judge",
        )

    records = list(records)
    for s in range(0, len(records), d.batch_size):
        chunk = records[s : s + d.batch_size]
        batch = collate([example(r) for r in chunk], pad_id=pad_id_of(tokenizer), pad_to_multiple=64)
        yield from zip(chunk, system1_answers(policy, tokenizer, batch, max_new_tokens=cfg.grpo.max_new_tokens))
