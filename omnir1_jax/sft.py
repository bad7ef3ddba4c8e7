"""Supervised warm-up (SFT) of System 1 on formatted answers.

Targets:

- ``format_only`` (the CPU demo, synthetic world): the answer *format* only — a few random keyframes of the
  sampled clip and the description of a random object present in the clip that is never the target, so the
  warm-up teaches how to answer but not what to answer (GRPO has to learn that).
- ``oracle`` (ablations / debugging, synthetic world): frames where the target is visible and its description.

    python -m omnir1_jax.sft --config experiments/synthetic_cpu.py [--set sft.steps=100 ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from typing import Any, Sequence

import flax.nnx as nnx
import jax
import jax.numpy as jnp
import numpy as np

from omnir1_jax.cli import guarded_main
from omnir1_jax.config import ConfigError, ExperimentConfig, load_config
from omnir1_jax.rl.update import apply_grads, make_optimizer, nll_grads, nll_step
from omnir1_jax.runtime import distributed as D
from omnir1_jax.runtime import setup as S
from omnir1_jax.runtime.metrics import MetricsWriter

THINK = "the object is visible here"


def format_time(seconds: float) -> str:
    """``mm:ss.ff`` with a decimal fraction (``3.5`` -> ``"00:03.50"``)."""
    minutes, secs = divmod(max(0.0, float(seconds)), 60.0)
    return f"{int(minutes):02d}:{secs:05.2f}"


def answer_text(frames: Sequence[int], description: str, fps: float = 2.0, think: str = THINK) -> str:
    items = [{"start_time": format_time(f / fps), "end_time": format_time(f / fps), "description": description}
             for f in sorted(frames)]
    return f"<think>{think}</think><answer>{json.dumps(items)}</answer>"


def load_oracle(root: str) -> dict[str, Any]:
    path = os.path.join(root, "synthetic_objects.json")
    try:
        with open(path) as f:
            return json.load(f)["videos"]
    except FileNotFoundError:
        raise ConfigError(f"sft.target needs the synthetic world's {path}") from None


def synthetic_target(video: dict, positions: Sequence[int], target_ids: Sequence[int], rng: np.random.Generator,
                     *, mode: str = "format_only", fps: float = 2.0, think: str = THINK) -> str:
    """A formatted answer for one sampled clip of a synthetic video (see the module docstring); ``think`` may
    contain ``{description}`` (replaced by the answer's description)."""
    t = len(positions)
    objs = video["objects"]
    if mode == "oracle":
        chosen = [o for o in objs if o["obj_id"] in target_ids]
        visible = [i for i in range(t) if any(o["visible"][p] for o in chosen for p in [positions[i]])]
        k = min(4, len(visible))
        frames = sorted(rng.choice(visible, size=k, replace=False).tolist()) if k else [0]
        desc = "the " + chosen[0]["description"] if chosen else "the object"
        return answer_text(frames, desc, fps, think.format(description=desc))
    if mode != "format_only":
        raise ConfigError(f"sft.target must be format_only or oracle, got {mode!r}")
    others = [o for o in objs if o["obj_id"] not in target_ids]
    present = [o for o in others if any(o["visible"][p] for p in positions)] or others
    if present:
        desc = "the " + present[int(rng.integers(len(present)))]["description"]
    else:  # the target is the only object: describe a colour/shape that is not in the clip
        desc = "the white square" if objs and objs[0]["description"] != "white square" else "the red circle"
    k = int(rng.integers(2, 5))
    frames = sorted(rng.choice(t, size=min(k, t), replace=False).tolist())
    return answer_text(frames, desc, fps, think.format(description=desc))


def decoy_instructions(records, template: str, *, seed: int = 0, colours: Sequence[str] | None = None,
                       shapes: Sequence[str] | None = None):
    """``records`` with their expression replaced by ``template``, whose ``{colour}`` / ``{shape}`` fields are
    drawn per record uniformly from ``colours`` / ``shapes`` (default: every colour and shape of the synthetic
    world), independently of the video, so an SFT prompt never names its target but the model still has to read
    the instruction it is given (e.g. to restate it in its ``<think>``)."""
    from omnir1_jax.data.synthetic.world import PALETTE, SHAPES

    rng = np.random.default_rng(seed)
    colours = list(PALETTE) if colours is None else list(colours)
    shapes = list(SHAPES) if shapes is None else list(shapes)
    out = []
    for r in records:
        text = template.format(colour=colours[int(rng.integers(len(colours)))],
                               shape=shapes[int(rng.integers(len(shapes)))])
        out.append(dataclasses.replace(r, expression=text))
    return out


def tokenize_targets(tokenizer, texts: Sequence[str], eos_id: int, pad_id: int, multiple: int = 32):
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] + [eos_id] for t in texts]
    width = -(-max(len(x) for x in ids) // multiple) * multiple
    out = np.full((len(ids), width), pad_id, np.int32)
    mask = np.zeros((len(ids), width), np.int32)
    for i, x in enumerate(ids):
        out[i, : len(x)] = x
        mask[i, : len(x)] = 1
    return jnp.asarray(out), jnp.asarray(mask)


class SFTTrainer:
    """Runs ``cfg.sft.steps`` NLL steps on formatted answers for the records' prompts."""

    def __init__(self, cfg: ExperimentConfig, policy, tokenizer, records, *, out_dir: str | None = None):
        from omnir1_jax.data import build_pipeline
        from omnir1_jax.trainer import eos_ids_of, make_scorer

        self.cfg, self.policy, self.tokenizer = cfg, policy, tokenizer
        self.records = {(r.video_id, r.exp_id): r for r in records}
        if cfg.sft.instruction is not None:  # the prompts carry another text instead of the expression
            records = decoy_instructions(records, cfg.sft.instruction, seed=cfg.run.seed + 11,
                                         colours=cfg.data.synthetic_colours, shapes=cfg.data.synthetic_shapes)
        self.shown = {(r.video_id, r.exp_id): r.expression for r in records}  # the text each prompt carries
        s = cfg.sft
        self.optimizer = nnx.Optimizer(policy, make_optimizer(s.lr, weight_decay=s.weight_decay, grad_clip=1.0),
                                       wrt=nnx.Param)
        self.scorer = make_scorer(cfg.model.remat, 1.0)
        # multi-process: each process reads its share of the records and of the batch (data parallel)
        records, local_batch = D.shard_records(records, s.batch_size)
        pcfg = S.pipeline_config(cfg.data, train=True, seed=cfg.run.seed + 1, batch_size=local_batch)
        self.data_iter = iter(build_pipeline(records, tokenizer, pcfg))
        self.oracle = load_oracle(cfg.data.root) if cfg.data.dataset == "synthetic" else None
        if self.oracle is None:
            raise ConfigError("SFT targets are implemented for the synthetic world (data.dataset='synthetic')")
        self.eos_id = eos_ids_of(tokenizer)[0] if tokenizer.eos_token_id is None else tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id or 0
        self.rng = np.random.default_rng(cfg.run.seed + 7)
        self.writer = (MetricsWriter(out_dir or os.path.join(cfg.run.out_dir, "sft"), tensorboard=False)
                       if jax.process_index() == 0 else None)

    def targets(self, batch) -> list[str]:
        """The formatted answers (SFT targets) of one batch of clips."""
        texts = []
        for b in range(len(batch["num_frames"])):
            rec = self.records[(batch["video_id"][b], batch["exp_id"][b])]
            t = int(batch["num_frames"][b])
            positions = [int(p) for p in batch["frame_indices"][b][:t]]
            think = self.cfg.sft.think.replace("{instruction}", self.shown[(rec.video_id, rec.exp_id)])
            texts.append(synthetic_target(self.oracle[rec.video_id], positions, rec.obj_ids, self.rng,
                                          mode=self.cfg.sft.target, fps=batch["fps_s1"], think=think))
        return texts

    def step(self) -> dict[str, float]:
        from omnir1_jax.models.qwen2_5_omni.thinker import as_model_inputs

        batch = next(self.data_iter)
        texts = self.targets(batch)
        ids, mask = tokenize_targets(self.tokenizer, texts, self.eos_id, self.pad_id)
        prompt = as_model_inputs(self.policy.config, batch["model_inputs"])
        if jax.process_count() == 1:
            m = nll_step(self.policy, self.optimizer, prompt, ids, mask, scorer=self.scorer)
        else:  # token-weighted average of every process's gradient, then the same AdamW step everywhere
            grads, loss = nll_grads(self.policy, prompt, ids, mask, scorer=self.scorer)
            grads, loss = D.allreduce_mean((grads, loss), float(np.sum(mask)))
            m = {"loss": loss, "grad_norm": apply_grads(self.policy, self.optimizer, grads)}
        return {k: float(v) for k, v in m.items()}

    def run(self, steps: int | None = None, *, progress: bool = True) -> list[dict[str, float]]:
        steps = self.cfg.sft.steps if steps is None else steps
        hist, t0 = [], time.time()
        for i in range(steps):
            m = self.step()
            hist.append(m)
            if self.writer is not None:
                self.writer.write(i + 1, m)
            if progress and jax.process_index() == 0 and ((i + 1) % 10 == 0 or i + 1 == steps):
                print(f"[sft] step {i + 1}/{steps} loss={m['loss']:.4f} ({time.time() - t0:.0f}s)", flush=True)
        return hist


@guarded_main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m omnir1_jax.sft", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="experiment file defining get_config()")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    ap.add_argument("--save", help="write the warmed-up policy here as a Hugging Face directory")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, args.set)
    tok = S.build_tokenizer(cfg.model)
    policy = S.build_policy(cfg.model, seed=cfg.run.seed)
    SFTTrainer(cfg, policy, tok, S.read_records(cfg.data, cfg.data.split)).run()
    if args.save:
        from omnir1_jax.models.qwen2_5_omni import to_hf

        to_hf(policy, args.save, overwrite=True)
        print(f"[sft] saved to {args.save}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
