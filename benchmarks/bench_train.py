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

``--overlap`` measures asynchronous rewards (``grpo.overlap``, omnir1_jax/overlap.py) against the synchronous
step in the same process: two GRPO learners start from the same SFT-warmed policy (one with ``overlap = "off"``,
one with ``"one_step"``, the same bridge), each is warmed up, then they run in alternating blocks of ``--block``
steps (``--steps`` blocks each), so that load from other jobs on the machine falls on both alike; the first step
of every block is not timed (the other learner's work, e.g. the overlapped learner's scoring of its batch in
flight, may still run during it). Prints the median step and phases of each and the ratio overlapped /
synchronous, and the CPU seconds each timed block cost the learner process and the bridge processes (psutil):
on a CPU-only machine the bridge and the learner share the cores, so the overlapped step cannot be shorter than
(learner + bridge CPU seconds per step) / cores, whatever the schedule; the script prints that bound as a ratio
to the synchronous step.

    python benchmarks/bench_train.py [--config experiments/synthetic_cpu.py --warmup 3 --steps 10]
    python benchmarks/bench_train.py --overlap [--steps 4 --block 6]
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
    ap.add_argument(
        "--sft",
        type=int,
        default=150,
        help="SFT warm-up steps first, so that answers parse and the bridge is queried as in a real run",
    )
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--hidden", type=int, help="random policy width (tiny preset override)")
    ap.add_argument("--layers", type=int, help="random policy depth (tiny preset override)")
    ap.add_argument(
        "--overlap",
        action="store_true",
        help="synchronous vs grpo.overlap=one_step, alternating blocks (--steps blocks of --block steps)",
    )
    ap.add_argument("--block", type=int, default=6, help="steps per block with --overlap (the first is not timed)")
    args = ap.parse_args(argv)

    cfg = load_config(args.config, args.set)
    overrides = dict(cfg.model.overrides)
    if args.hidden:
        overrides["hidden_size"] = args.hidden
    if args.layers:
        overrides["num_layers"] = args.layers
    with tempfile.TemporaryDirectory() as out:
        cfg = dataclasses.replace(
            cfg,
            model=dataclasses.replace(cfg.model, overrides=tuple(overrides.items())),
            run=dataclasses.replace(cfg.run, out_dir=out, resume=False, checkpoint_every=0),
        )
        print(
            f"[bench] {platform.node() or 'host'} {platform.machine()}, {jax.device_count()} x "
            f"{jax.devices()[0].device_kind}; policy {cfg.model.preset} {overrides}; batch {cfg.data.batch_size}"
            f" x group {cfg.grpo.group_size}, {cfg.grpo.max_new_tokens} new tokens max",
            flush=True,
        )
        bridge = open_bridge(cfg.bridge, out, data_roots=[cfg.data.root])
        tok = build_tokenizer(cfg.model)
        task = make_task(cfg, tok, bridge=lambda: bridge.client)
        records = read_records(cfg.data, cfg.data.split)
        policy = build_policy(cfg.model, seed=cfg.run.seed)
        if args.sft:
            sft = Learner(cfg, task, sft_stage(cfg).with_steps(args.sft), policy=policy, tokenizer=tok, records=records)
            sft.train(progress=False)
            sft.close()
            policy = sft.policy
        if args.overlap:
            try:
                return _overlap(args, cfg, task, policy, tok, records, out)
            finally:
                bridge.close()
        tr = Learner(cfg, task, grpo_stage(cfg, export=False), policy=policy, tokenizer=tok, records=records)
        try:
            t0 = time.perf_counter()
            tr.train(args.warmup, progress=False)
            print(
                f"[bench] warm-up ({args.warmup} steps: compile + bridge start) {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
            t0 = time.perf_counter()
            hist = [tr.train_step() for _ in range(args.steps)]
            wall = time.perf_counter() - t0
        finally:
            tr.close()
            bridge.close()
    med = {
        k: statistics.median(m[k] for m in hist)
        for k in ("time/rollout", "time/reward", "time/update", "time/step", "tokens_per_s", "response_length")
    }
    print("\n| phase | median s/step | share |\n| --- | --- | --- |")
    for k in ("time/rollout", "time/reward", "time/update"):
        print(f"| {k.split('/')[1]} | {med[k]:.3f} | {med[k] / med['time/step']:.0%} |")
    print(f"| step (incl. data) | {med['time/step']:.3f} | 100% |")
    print(
        f"\nsteps/s {args.steps / wall:.3f} ({args.steps} steps in {wall:.1f} s); sampled tokens/s "
        f"{med['tokens_per_s']:.0f} (median response {med['response_length']:.0f} tokens)"
    )
    return 0


def _overlap(args, cfg, task, policy, tok, records, out) -> int:
    """Synchronous and overlapped GRPO learners from the same policy, timed in alternating blocks."""
    import os

    import flax.nnx as nnx

    from omnir1_jax.learner import Learner, grpo_stage

    learners = {}
    for mode in ("off", "one_step"):
        c = dataclasses.replace(
            cfg,
            grpo=dataclasses.replace(cfg.grpo, overlap=mode),
            run=dataclasses.replace(cfg.run, out_dir=os.path.join(out, mode)),
        )
        learners[mode] = Learner(
            c, task, grpo_stage(c, export=False), policy=nnx.clone(policy), tokenizer=tok, records=records
        )
    steps = {mode: [] for mode in learners}
    wall = dict.fromkeys(learners, 0.0)
    cpu = {mode: [0.0, 0.0] for mode in learners}  # learner, bridge CPU seconds over the timed blocks
    try:
        for mode, tr in learners.items():
            t0 = time.perf_counter()
            for _ in range(args.warmup):
                tr.train_step()
            print(f"[bench] {mode}: warm-up ({args.warmup} steps) {time.perf_counter() - t0:.1f} s", flush=True)
        for b in range(args.steps):
            for mode, tr in learners.items():
                tr.train_step()  # not timed: the other learner's work may still be running
                c0, t0 = _cpu_seconds(), time.perf_counter()
                steps[mode] += [tr.train_step() for _ in range(args.block - 1)]
                wall[mode] += time.perf_counter() - t0
                cpu[mode] = [a + b - c for a, b, c in zip(cpu[mode], _cpu_seconds(), c0)]
            print(
                f"[bench] block {b + 1}/{args.steps}: median step off "
                f"{statistics.median(m['time/step'] for m in steps['off']):.3f} s, one_step "
                f"{statistics.median(m['time/step'] for m in steps['one_step']):.3f} s",
                flush=True,
            )
    finally:
        for tr in learners.values():
            tr.close()
    keys = (
        "time/step",
        "time/rollout",
        "time/reward",
        "time/reward_wait",
        "time/reward_idle",
        "time/update",
        "overlap/policy_lag",
    )
    med = {mode: {k: statistics.median(m.get(k, float("nan")) for m in ms) for k in keys} for mode, ms in steps.items()}
    n = len(steps["off"])
    print(f"\n{n} timed steps each ({args.steps} blocks of {args.block - 1}); medians in seconds")
    print(
        "| grpo.overlap | step | sample | reward (scoring side) | learner waits for rewards | scorer idle | update "
        "| policy lag | steps/s (wall) |\n|---|---|---|---|---|---|---|---|---|"
    )
    for mode, m in med.items():
        wait = m["time/reward"] if mode == "off" else m["time/reward_wait"]
        idle = m["time/step"] - m["time/reward"] if mode == "off" else m["time/reward_idle"]
        lag = 0.0 if mode == "off" else m["overlap/policy_lag"]
        print(
            f"| {mode} | {m['time/step']:.3f} | {m['time/rollout']:.3f} | {m['time/reward']:.3f} | {wait:.3f} | "
            f"{idle:.3f} | {m['time/update']:.3f} | {lag:.0f} | {n / wall[mode]:.3f} |"
        )
    ratio = med["one_step"]["time/step"] / med["off"]["time/step"]
    print(
        f"\nmedian step one_step / off = {med['one_step']['time/step']:.3f} / {med['off']['time/step']:.3f} = "
        f"{ratio:.3f} (wall: {wall['one_step'] / wall['off']:.3f})"
    )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    print(f"\nCPU seconds per timed step ({cores} cores)")
    print("| grpo.overlap | learner | bridge | cores busy |\n|---|---|---|---|")
    for mode, (own, bridge) in cpu.items():
        print(f"| {mode} | {own / n:.3f} | {bridge / n:.3f} | {(own + bridge) / wall[mode]:.2f} |")
    work = sum(cpu["off"]) / n
    print(
        f"lower bound on an overlapped step with the synchronous step's CPU work on {cores} cores: {work:.3f} / "
        f"{cores} = {work / cores:.3f} s, {work / cores / (wall['off'] / n):.3f} x the synchronous step (wall)"
    )
    return 0


def _cpu_seconds() -> tuple[float, float]:
    """(user + system CPU seconds of this process, of its live child processes: the bridge's server and workers)."""
    import contextlib

    import psutil

    me = psutil.Process()
    kids = 0.0
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):  # exited between the listing and the read
            kids += sum(child.cpu_times()[:2])
    return sum(me.cpu_times()[:2]), kids


if __name__ == "__main__":
    raise SystemExit(main())
