"""Omni-R1's segmentation tasks: ``vos`` (keyframes + descriptions -> System 2 + SAM2 -> R_fmt, R_K, R_A, R_G)
and ``refaid`` (first frame + audio, one description -> System-2 boxes on frame 0 -> R_fmt + box IoU)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from omnir1_jax.config import ConfigError, ExperimentConfig
from omnir1_jax.data import build_pipeline
from omnir1_jax.rewards import extract_rationale, format_reward, parse_description, refaid_reward
from omnir1_jax.rl import rollout as rollout_lib
from omnir1_jax.runtime.records import one_expression_per_video, pipeline_config
from omnir1_jax.tasks.base import Scored, Task
from omnir1_jax.tasks.synthetic_targets import decoy_instructions, load_oracle, synthetic_target
from sam2_bridge.wire.protocol import Keyframe


class EpochBatches:
    """Batches of a sequence of one-epoch iterators (``epoch_iter(e)`` for e = 0, 1, ...), e.g. a different
    draw of records per epoch; checkpointable (the epoch and the inner iterator's state, as JSON bytes)."""

    def __init__(self, epoch_iter: Callable[[int], Any]):
        self.epoch_iter, self.epoch = epoch_iter, 0
        self.inner = epoch_iter(0)

    def __iter__(self):
        return self

    def __next__(self):
        for _ in range(2):  # an empty epoch twice in a row means there is no data at all
            try:
                return next(self.inner)
            except StopIteration:
                self.epoch += 1
                self.inner = self.epoch_iter(self.epoch)
        raise ConfigError("the training records give no full batch in an epoch (fewer videos than data.batch_size?)")

    def get_state(self) -> bytes:
        inner = self.inner.get_state()
        return json.dumps(
            {
                "epoch": self.epoch,
                "inner": base64.b64encode(bytes(inner)).decode() if isinstance(inner, (bytes, bytearray)) else inner,
            }
        ).encode()

    def set_state(self, state: bytes) -> None:
        d = json.loads(bytes(state).decode())
        self.epoch = int(d["epoch"])
        self.inner = self.epoch_iter(self.epoch)
        inner = d["inner"]
        self.inner.set_state(base64.b64decode(inner) if isinstance(inner, str) else inner)


class VOSTask(Task):
    """Referring / reasoning VOS (ReVOS, MeViS, the synthetic world; Omni-R1 sections 3.1-3.3).

    Batches come from the Grain pipeline (checkpointable); each group's keyframe queries go to the bridge (all
    groups of a step in flight at once) unless the reward weights need no System 2 (alpha_A = alpha_G = 0).
    SFT targets exist for the synthetic world (:mod:`omnir1_jax.tasks.synthetic_targets`).
    """

    name = "vos"

    def __init__(self, cfg: ExperimentConfig, tokenizer, bridge: Callable[[], Any] | None):
        self.cfg, self.tokenizer, self._bridge = cfg, tokenizer, bridge
        w = cfg.grpo.rewards
        self.weights = {"format": 1.0, "keyframe": w.alpha_k, "alignment": w.alpha_a, "grounding": w.alpha_g}
        self._oracle = None
        # SFT prompts: the record of each (video, expression) and the text its prompt carries (a decoy or the
        # expression)
        self.sft_records: dict[tuple[str, str], Any] = {}
        self.shown: dict[tuple[str, str], str] = {}
        self._rng = np.random.default_rng(cfg.run.seed + 7)

    def client(self):
        if self._bridge is None:
            raise ConfigError(f"task {self.name!r} needs a bridge (System 2) for these reward weights")
        return self._bridge()

    # ------------------------------------------------------------------------------------------ batches
    def batches(
        self, records: Sequence[Any], *, batch_size: int, seed: int, sft: bool = False, share: tuple[int, int] = (0, 1)
    ):
        records = list(records)
        if sft and self.cfg.sft.instruction is not None:  # the SFT prompts carry a decoy instead of the expression
            records = decoy_instructions(
                records,
                self.cfg.sft.instruction,
                seed=self.cfg.run.seed + 11,
                colours=self.cfg.data.synthetic_colours,
                shapes=self.cfg.data.synthetic_shapes,
            )
        if sft:
            self.sft_records = {(r.video_id, r.exp_id): r for r in records}
            self.shown = {(r.video_id, r.exp_id): r.expression for r in records}
        k = self.cfg.grpo.num_keyframes
        if not sft and self.cfg.run.epoch_unit == "videos":  # one expression per video per epoch (the release's)

            def epoch_iter(epoch: int):
                pcfg = pipeline_config(
                    self.cfg.data,
                    train=True,
                    seed=seed + epoch,
                    batch_size=batch_size,
                    num_epochs=1,
                    num_keyframes=k,
                    share=share,
                )
                return iter(build_pipeline(one_expression_per_video(records, seed, epoch), self.tokenizer, pcfg))

            return EpochBatches(epoch_iter)
        pcfg = pipeline_config(
            self.cfg.data, train=True, seed=seed, batch_size=batch_size, num_keyframes=k, share=share
        )
        return iter(build_pipeline(records, self.tokenizer, pcfg))

    # ------------------------------------------------------------------------------------------ rewards
    def score(self, batch: dict[str, Any], texts: Sequence[str], group_size: int) -> Scored:
        return self.collect(self.submit(batch, texts, group_size))

    def submit(self, batch: dict[str, Any], texts: Sequence[str], group_size: int):
        """Parse every group's answers and send their keyframe queries to the bridge (all groups in flight)."""
        g, n = self.cfg.grpo, group_size
        need_bridge = g.rewards.alpha_a > 0 or g.rewards.alpha_g > 0
        groups, futures = [], []
        for b in range(len(batch["num_frames"])):
            t = int(batch["num_frames"][b])
            rows = list(texts[b * n : (b + 1) * n])
            # the first K items of each answer (K = grpo.num_keyframes)
            answers = rollout_lib.parse_group(rows, t, batch["fps_s1"], g.num_keyframes)
            queries = [rollout_lib.keyframe_queries(a) for a in answers]
            groups.append((rows, answers, queries, t))
            if need_bridge:
                ctx = self.contexts(rows)
                futures.append(
                    self.client().submit_group(batch["frames"][b], queries, **({"contexts": ctx} if ctx else {}))
                )
        return batch, groups, futures, need_bridge

    def collect(self, pending) -> Scored:
        """Wait for :meth:`submit`'s replies; the rewards of every row (R_fmt, R_K, R_A, R_G and the total)."""
        batch, groups, futures, need_bridge = pending
        g = self.cfg.grpo
        weights = g.rewards
        rewards, comps, stats = [], [], {"bridge/n_unparseable": 0.0, "bridge/n_detections": 0.0}
        for b, (rows, answers, queries, t) in enumerate(groups):
            result = futures[b].result().raise_for_status() if need_bridge else None
            if result is not None:
                stats["bridge/n_unparseable"] += result.n_unparseable
                stats["bridge/n_detections"] += result.n_detections
            num_objects = int(batch["num_objects"][b]) if "num_objects" in batch else None
            r, c = rollout_lib.group_rewards(
                rows,
                t,
                batch["gt_masks"][b],
                batch["gt_boxes"][b][:t],
                batch["gt_box_valid"][b][:t],
                result,
                queries,
                weights=weights,
                preset=g.reward_preset,
                fps=batch["fps_s1"],
                answers=answers,
                num_objects=num_objects,
                num_keyframes=g.num_keyframes,
            )
            rewards.append(r)
            comps.append(c)
        components = {k: np.concatenate([c[k] for c in comps]) for k in comps[0]}
        return Scored(np.concatenate(rewards), components, stats)

    def contexts(self, texts: Sequence[str]) -> list[str] | None:
        """System 1's rationale of each answer for System 2's grounding prompt (``bridge.s2_context``: the
        ``<think>`` text cut to ``bridge.s2_context_chars``), or None when the option is off."""
        b = self.cfg.bridge
        return [extract_rationale(t, b.s2_context_chars) for t in texts] if b.s2_context else None

    # -------------------------------------------------------------------------------------- SFT targets
    def sft_targets(self, batch: dict[str, Any]) -> list[str]:
        """The synthetic world's formatted answers for one batch (``sft.target``: format_only / oracle)."""
        if self.cfg.data.dataset != "synthetic":
            raise ConfigError(
                "SFT targets for the vos task are implemented for the synthetic world (data.dataset='synthetic')"
            )
        if self._oracle is None:
            self._oracle = load_oracle(self.cfg.data.root)
        texts = []
        for b in range(len(batch["num_frames"])):
            key = (batch["video_id"][b], batch["exp_id"][b])
            rec = self.sft_records[key]
            t = int(batch["num_frames"][b])
            positions = [int(p) for p in batch["frame_indices"][b][:t]]
            think = self.cfg.sft.think.replace("{instruction}", self.shown[key])
            texts.append(
                synthetic_target(
                    self._oracle[rec.video_id],
                    positions,
                    rec.obj_ids,
                    self._rng,
                    mode=self.cfg.sft.target,
                    fps=batch["fps_s1"],
                    think=think,
                    keyframes=self.cfg.sft.keyframes,
                    target_rate=self.cfg.sft.target_rate,
                )
            )
        return texts


class RefAIDTask(VOSTask):
    """RefAID (Omni-R1 appendix B): one description per rollout, System-2 boxes on the first frame, reward
    ``R_fmt + (1 - L_H(pred, gt))``; no segmentation."""

    name = "refaid"
    # its own score(), not VOSTask's submit / collect halves
    submit, collect = Task.submit, Task.collect

    def __init__(self, cfg: ExperimentConfig, tokenizer, bridge: Callable[[], Any] | None):
        super().__init__(cfg, tokenizer, bridge)
        self.weights = {"format": 1.0, "alignment": 1.0}

    def score(self, batch: dict[str, Any], texts: Sequence[str], group_size: int) -> Scored:
        n = group_size
        rewards, fmt, box, stats = [], [], [], {"bridge/n_unparseable": 0.0, "bridge/n_detections": 0.0}
        for b in range(len(batch["num_frames"])):
            rows = list(texts[b * n : (b + 1) * n])
            descs = [parse_description(x) for x in rows]
            asked = [i for i, d in enumerate(descs) if d]
            pred = [np.zeros((0, 4), np.float32) for _ in rows]
            if asked:
                ctx = self.contexts([rows[i] for i in asked])
                reply = self.client().ground(
                    batch["frames"][b][:1], [Keyframe(0, descs[i]) for i in asked], **({"contexts": ctx} if ctx else {})
                )
                stats["bridge/n_unparseable"] += reply.n_unparseable
                for i, boxes in zip(asked, reply.boxes):
                    pred[i] = np.asarray(boxes, np.float32).reshape(-1, 4)
                    stats["bridge/n_detections"] += len(pred[i])
            gt = rollout_lib.gt_box_lists(batch, b, 1)[0]  # one box per target object visible on the first frame
            r = refaid_reward(rows, pred, gt)
            f = format_reward(rows)
            rewards.append(r)
            fmt.append(f)
            box.append(r - f)
        components = {"format": np.concatenate(fmt), "alignment": np.concatenate(box)}
        return Scored(np.concatenate(rewards), components, stats)

    def sft_targets(self, batch: dict[str, Any]) -> list[str]:
        """``sft.target = "expression"``: the answer format with the referring expression as the grounding
        description, ``<think>{sft.think}</think><answer>{expression}</answer>`` (any dataset: the Table 1 SFT
        baseline); otherwise the synthetic world's targets (:meth:`VOSTask.sft_targets`)."""
        if self.cfg.sft.target != "expression":
            return super().sft_targets(batch)
        return [
            f"<think>{self.cfg.sft.think.replace('{instruction}', e)}</think><answer>{e}</answer>"
            for e in batch["expression"]
        ]
