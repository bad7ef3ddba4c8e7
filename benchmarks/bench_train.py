"""Benchmark: GRPO training steps/s and the rollout / reward / update split of the one learner (``omnir1_jax.learner``).

Runs the trainer of an experiment file (default: the out-of-the-box CPU run, ``experiments/synthetic_cpu.py``:
the tiny policy, the synthetic world, a bridge subprocess with the synthetic grounder and segmenter) for
``--sft`` SFT steps (so that answers parse and every group queries the bridge, as in a real run),
``--warmup`` GRPO steps (jit compilation, bridge start) and then ``--steps`` timed steps, without the
evaluations, in a temporary run directory. Prints the median seconds per step of each phase (as the trainer
logs them: ``time/rollout`` = KV-cached group sampling, ``time/reward`` = parsing + bridge queries + rewards,
``time/update`` = reference scoring + the jit-compiled GRPO step), steps/s and sampled tokens/s.

``--hidden H --layers L`` swap in a larger random policy of the same family (a "real-shaped" text stack on a
GPU, e.g. ``--hidden 896 --layers 24``, Qwen2.5-0.5B's width and depth); ``--set`` overrides any config field.

    python benchmarks/bench_train.py [--config experiments/synthetic_cpu.py --warmup 3 --steps 10]
    python benchmarks/bench_train.py --hidden 896 --layers 24 --set data.batch_size=8   # on a GPU
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import tempfile
import time

import jax

from omnir1_jax.config import load_config
from omnir1_jax.learner import Learner, grpo_stage, sft_stage
from omnir1_jax.policy import build_policy, build_tokenizer
from omnir1_jax.runtime.bridge import open_bridge
from omnir1_jax.runtime.records import read_records
from omnir1_jax.tasks import make_task


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="experiments/synthetic_cpu.py")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--sft", type=int, default=150,
                    help="SFT warm-up steps first, so that answers parse and the bridge is queried as in a real run")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--hidden", type=int, help="random policy width (tiny preset override)")
    ap.add_argument("--layers", type=int, help="random policy depth (tiny preset override)")
    args = ap.parse_args(argv)

    cfg = load_config(args.config, args.set)
    overrides = dict(cfg.model.overrides)
    if args.hidden:
        overrides["hidden_size"] = args.hidden
    if args.layers:
        overrides["num_layers"] = args.layers
    with tempfile.TemporaryDirectory() as out:
        cfg = dataclasses.replace(
            cfg, model=dataclasses.replace(cfg.model, overrides=tuple(overrides.items())),
            run=dataclasses.replace(cfg.run, out_dir=out, resume=False, checkpoint_every=0))
        print(f"[bench] {platform.node() or 'host'} {platform.machine()}, {jax.device_count()} x "
              f"{jax.devices()[0].device_kind}; policy {cfg.model.preset} {overrides}; batch {cfg.data.batch_size}"
              f" x group {cfg.grpo.group_size}, {cfg.grpo.max_new_tokens} new tokens max", flush=True)
        bridge = open_bridge(cfg.bridge, out, data_roots=[cfg.data.root])
        tok = build_tokenizer(cfg.model)
        task = make_task(cfg, tok, bridge=lambda: bridge.client)
        records = read_records(cfg.data, cfg.data.split)
        policy = build_policy(cfg.model, seed=cfg.run.seed)
        if args.sft:
            sft = Learner(cfg, task, sft_stage(cfg).with_steps(args.sft), policy=policy,
                          tokenizer=tok, records=records)
            sft.train(progress=False)
            sft.close()
            policy = sft.policy
        tr = Learner(cfg, task, grpo_stage(cfg, export=False), policy=policy, tokenizer=tok, records=records)
        try:
            t0 = time.perf_counter()
            tr.train(args.warmup, progress=False)
            print(f"[bench] warm-up ({args.warmup} steps: compile + bridge start) {time.perf_counter() - t0:.1f} s",
                  flush=True)
            t0 = time.perf_counter()
            hist = [tr.train_step() for _ in range(args.steps)]
            wall = time.perf_counter() - t0
        finally:
            tr.close()
            bridge.close()
    med = {k: statistics.median(m[k] for m in hist)
           for k in ("time/rollout", "time/reward", "time/update", "time/step", "tokens_per_s", "response_length")}
    print(f"\n| phase | median s/step | share |\n| --- | --- | --- |")
    for k in ("time/rollout", "time/reward", "time/update"):
        print(f"| {k.split('/')[1]} | {med[k]:.3f} | {med[k] / med['time/step']:.0%} |")
    print(f"| step (incl. data) | {med['time/step']:.3f} | 100% |")
    print(f"\nsteps/s {args.steps / wall:.3f} ({args.steps} steps in {wall:.1f} s); sampled tokens/s "
          f"{med['tokens_per_s']:.0f} (median response {med['response_length']:.0f} tokens)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
