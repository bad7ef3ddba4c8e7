"""A mixture of tasks in every batch (Omni-R1 Table 6: Ref-AVS clips through RefAID and ReVOS / MeViS clips
through VOS, trained jointly in one GRPO run).

``data.task = "mixture"`` and ``data.tasks = ((task, dataset, directory, prompts), ...)``: every batch holds
``prompts`` prompts of each task, drawn by that task's own seeded, checkpointable iterator (its own pipeline:
the audio + first-frame pipeline for ``refaid``, the video pipeline for ``vos``). The rows of a batch are the
tasks' prompts in task order; their prepared inputs are stacked into one prompt batch whatever modalities each
task has (:func:`omnir1_jax.models.qwen2_5_omni.blocks.merge_rows`), so one generation and one update serve
all of them. Each task scores its own groups with its own reward (the advantages are normalised within a group,
so tasks whose rewards span different ranges can share a batch); reward components are logged per task
(``reward/<task>/<component>``).

The mixture is stratified, not sampled: the share of each task is fixed per batch by ``prompts`` (a seeded
per-batch draw of the task would make the batch composition, and so the compiled shapes, vary step to step).
In a multi-process run every process holds ``prompts / processes`` prompts of each task.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from omnir1_jax.config import ConfigError, ExperimentConfig
from omnir1_jax.tasks.base import Scored, Task, make_task


class _MixedBatches:
    """Zips the tasks' batch iterators; the state is every iterator's state (JSON bytes)."""

    def __init__(self, iters: list):
        self.iters = iters

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, Any]:
        return {"parts": [next(it) for it in self.iters]}

    def get_state(self) -> bytes:
        states = []
        for it in self.iters:
            s = it.get_state()
            states.append(base64.b64encode(bytes(s)).decode() if isinstance(s, (bytes, bytearray)) else {"json": s})
        return json.dumps(states).encode()

    def set_state(self, state: bytes) -> None:
        states = json.loads(bytes(state).decode())
        if len(states) != len(self.iters):
            raise ConfigError(f"the checkpoint's data state has {len(states)} tasks, data.tasks has {len(self.iters)}")
        for it, s in zip(self.iters, states):
            it.set_state(s["json"] if isinstance(s, dict) else base64.b64decode(s))


class MixtureTask(Task):
    """The tasks of ``cfg.data.tasks`` in every batch, each scoring its own groups (see the module docstring)."""

    name = "mixture"

    def __init__(self, cfg: ExperimentConfig, tokenizer, *, bridge: Callable[[], Any] | None = None, judge=None):
        self.cfg, self.tokenizer = cfg, tokenizer
        self.parts = []  # (task, the dataset names of its records, prompts per batch)
        for _, spec, k in cfg.data.task_parts():
            sub = make_task(dataclasses.replace(cfg, data=spec), tokenizer, bridge=bridge, judge=judge)
            names = {d for d, _ in spec.mixture} if spec.dataset == "mixture" else {spec.dataset}
            self.parts.append((sub, names, k))
        self.weights = {f"{t.name}/{c}": w for t, _, _ in self.parts for c, w in t.weights.items()}

    def batches(
        self, records: Sequence[Any], *, batch_size: int, seed: int, sft: bool = False, share: tuple[int, int] = (0, 1)
    ):
        if batch_size != sum(k for _, _, k in self.parts):
            raise ConfigError(
                f"batch_size={batch_size} but data.tasks give {sum(k for _, _, k in self.parts)} prompts per batch"
            )
        iters = []
        for i, (task, names, k) in enumerate(self.parts):
            mine = [r for r in records if getattr(r, "dataset", None) in names]
            if not mine:
                raise ConfigError(
                    f"data.tasks[{i}] ({task.name} on {', '.join(sorted(names))}) has no training records"
                )
            if k % share[1]:
                raise ConfigError(
                    f"data.tasks[{i}] gives {k} prompts per batch, not a multiple of the {share[1]} processes"
                )
            iters.append(task.batches(mine, batch_size=k, seed=seed + 1000 * i, sft=sft, share=share))
        return _MixedBatches(iters)

    def model_inputs(self, model_config, batch: dict[str, Any]):
        # lazy: the model package pulls in flax
        from omnir1_jax.models.qwen2_5_omni.blocks import merge_rows

        parts = [t.model_inputs(model_config, b) for (t, _, _), b in zip(self.parts, batch["parts"])]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        return merge_rows(parts, pad_id=int(pad))

    def _rows(self, batch: dict[str, Any]) -> list[int]:
        return [len(b["records"]) if "records" in b else len(b["num_frames"]) for b in batch["parts"]]

    def score(self, batch: dict[str, Any], texts: Sequence[str], group_size: int) -> Scored:
        n = group_size
        rewards, components, stats, row = [], {}, {}, 0
        for (task, _, _), b, count in zip(self.parts, batch["parts"], self._rows(batch)):
            got = task.score(b, texts[row * n : (row + count) * n], n)
            rewards.append(np.asarray(got.rewards, np.float32))
            for c, v in got.components.items():
                components[f"{task.name}/{c}"] = np.asarray(v)
            for k, v in got.stats.items():  # counters: summed over the tasks (and later over processes)
                stats[k] = stats.get(k, 0.0) + float(v)
            row += count
        if row * n != len(texts):
            raise ValueError(f"{len(texts)} completions for {row} prompts x group {n}")
        return Scored(np.concatenate(rewards), components, stats)

    def sft_targets(self, batch: dict[str, Any]) -> list[str]:
        return [t for (task, _, _), b in zip(self.parts, batch["parts"]) for t in task.sft_targets(b)]

    def close(self) -> None:
        for task, _, _ in self.parts:
            task.close()
