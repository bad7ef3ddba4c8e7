"""Our stack on the peer task: the one learner (``omnir1_jax.learner``) with a text-only task plug-in.

Run by ``benchmarks/peer_grpo.py`` under ``.venv/bin/python`` (one process per seed); writes the per-step JSON
that the orchestrator aggregates. The policy is the task's Hugging Face ``Qwen2ForCausalLM`` directory loaded
into our Thinker's text path (:func:`omnir1_jax.models.qwen2_5_omni.qwen2.from_hf_qwen2`).

    .venv/bin/python benchmarks/peer_ours.py --model runs/peers/model --seed 0 --out runs/peers/ours_0.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]  # this checkout's omnir1_jax, then the peer_* modules
import peer_common  # noqa: E402
import peer_task  # noqa: E402


class _Schedule:
    """The task's prompt batches in :func:`peer_task.schedule` order; checkpointable like the learner wants."""

    def __init__(self, tokenizer, seed: int, steps: int, batch_size: int):
        self.tokenizer, self.batches, self.pos = tokenizer, peer_task.schedule(seed, steps, batch_size), 0

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, Any]:
        if self.pos >= len(self.batches):
            raise StopIteration
        prompts = self.batches[self.pos]
        self.pos += 1
        enc = self.tokenizer(prompts, return_tensors="np", padding=True)
        return {
            "prompts": prompts,
            "colours": [peer_task.colour_of(p) for p in prompts],
            "input_ids": enc["input_ids"].astype(np.int32),
            "attention_mask": enc["attention_mask"].astype(np.int32),
        }

    def get_state(self) -> bytes:
        return json.dumps({"pos": self.pos}).encode()

    def set_state(self, state: bytes) -> None:
        self.pos = int(json.loads(bytes(state).decode())["pos"])


class ColourTask:
    """Text-only task plug-in of the learner (duck-typed like :class:`omnir1_jax.tasks.base.Task`): prompts
    ``"colour: <c> ->"``, reward ``accuracy + 0.5 * format`` (:mod:`peer_task`)."""

    name = "colour"
    weights = {"accuracy": 1.0, "format": peer_task.FORMAT_WEIGHT}
    max_turns = 1  # one answer per rollout

    def __init__(self, tokenizer, steps: int):
        self.tokenizer, self.steps = tokenizer, steps
        self.log: list[dict[str, float]] = []

    def batches(
        self, records: Sequence[Any], *, batch_size: int, seed: int, sft: bool = False, share: tuple[int, int] = (0, 1)
    ):
        if share != (0, 1):
            raise ValueError(f"the peer task runs in one process; got share={share}")
        return _Schedule(self.tokenizer, seed, self.steps, batch_size)

    def model_inputs(self, model_config, batch: dict[str, Any]):
        # lazy: the model package pulls in jax, which this script loads only in run()
        from omnir1_jax.models.qwen2_5_omni import prepare_inputs

        return prepare_inputs(model_config, input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])

    def score(self, batch: dict[str, Any], texts: Sequence[str], group_size: int):
        # lazy: the task plug-ins pull in jax
        from omnir1_jax.tasks.base import Scored

        colours = [c for c in batch["colours"] for _ in range(group_size)]
        terms = np.asarray([peer_task.reward_terms(c, t) for c, t in zip(colours, texts)], np.float32).reshape(-1, 2)
        total = terms[:, 0] + peer_task.FORMAT_WEIGHT * terms[:, 1]
        self.log.append(peer_task.summarise_rows(colours, texts))
        return Scored(total.astype(np.float32), {"accuracy": terms[:, 0], "format": terms[:, 1]})

    def close(self) -> None:
        pass


def config(seed: int, out_dir: str):
    """The learner's experiment config with the task's settings (``peer_task.SETTINGS``)."""
    # lazy: omnir1_jax.config pulls in jax
    from omnir1_jax.config import DataSpec, ExperimentConfig, GRPOSpec, OptimSpec, RunSpec

    s = peer_task.SETTINGS
    return ExperimentConfig(
        name="peer_grpo",
        data=DataSpec(batch_size=s["prompts_per_step"]),
        grpo=GRPOSpec(
            group_size=s["group_size"],
            beta=s["beta"],
            epsilon_low=s["epsilon"],
            epsilon_high=s["epsilon"],
            kl="k3",
            agg=s["loss_agg"],
            temperature=s["temperature"],
            max_new_tokens=s["max_new_tokens"],
            adv_eps=1e-4,
        ),
        optim=OptimSpec(lr=s["lr"], weight_decay=0.0, warmup_steps=s["warmup_steps"], grad_clip=s["grad_clip"]),
        run=RunSpec(steps=s["steps"], seed=seed, out_dir=out_dir, checkpoint_every=0, resume=False),
    )


def run(model_dir: str, seed: int, steps: int) -> dict:
    import jax
    from transformers import AutoTokenizer

    from omnir1_jax.learner import Learner, grpo_stage
    from omnir1_jax.models.qwen2_5_omni.qwen2 import from_hf_qwen2

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    policy = from_hf_qwen2(model_dir)
    task = ColourTask(tokenizer, steps)
    rows = []
    with tempfile.TemporaryDirectory() as out:
        cfg = config(seed, out)
        learner = Learner(
            cfg,
            task,
            grpo_stage(cfg, export=False),
            policy=policy,
            tokenizer=tokenizer,
            records=list(peer_task.COLOURS),
        )
        for step in range(steps):
            t0 = time.perf_counter()
            m = learner.train_step()
            t_step = time.perf_counter() - t0
            rows.append(
                dict(
                    task.log[-1],
                    step=step + 1,
                    t_step=t_step,
                    t_sample=m["time/rollout"],
                    t_reward=m["time/reward"],
                    tokens=m["response_length"]
                    * peer_task.SETTINGS["group_size"]
                    * peer_task.SETTINGS["prompts_per_step"],
                    kl=m.get("kl_mean", float("nan")),
                )
            )
            peer_common.progress("ours", seed, rows[-1])
        learner.writer.close() if learner.writer is not None else None
        learner.writer = None
    return {
        "stack": "ours",
        "seed": seed,
        "steps": rows,
        "peak_rss_mb": peer_common.peak_rss_mb(),
        "versions": {"jax": jax.__version__, "omnir1_jax": "worktree"},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="the task's Hugging Face model directory (peer_task.write_model)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=peer_task.SETTINGS["steps"])
    ap.add_argument("--out", required=True, help="per-step JSON written here")
    args = ap.parse_args(argv)
    peer_common.write_json(args.out, run(args.model, args.seed, args.steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
