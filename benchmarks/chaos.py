"""Chaos soak: a tiny GRPO run SIGKILLed many times changes nothing (BENCHMARKS.md "Reliability").

    .venv/bin/python benchmarks/chaos.py --steps 200 --kills 30 --seed 0 [--workdir runs/chaos] [--json PATH]

Runs ``python -m omnir1_jax.train`` on the CPU demo (``experiments/synthetic_cpu.py``) shrunk to a few minutes
(one layer of width 64, one prompt per step, groups of 4, a 6-video 56x84 world, a 100-step SFT warm-up so the
rewards are not all zero, a checkpoint after every step, no evaluation) twice, in ``<workdir>/faultfree`` and
``<workdir>/chaos``. The second run is driven by ``benchmarks/chaos_harness.py``: at ``--kills`` GRPO steps
drawn from ``--seed``, it SIGKILLs a bridge worker, the bridge server (broker) or the trainer itself, also while
a worker holds a reply and while the trainer writes a checkpoint, and restarts the trainer it killed (the
bridge is restarted by the trainer). Both runs share a JAX compilation cache (``<workdir>/jax_cache``), so a
restarted trainer does not recompile.

What a resumed step means: a trainer killed at any point resumes from its newest checkpoint, which holds the
parameters, the optimiser, the frozen reference, the PRNG key and the data iterator's position, and re-runs
every step after it, from the same prompts with the same sampling keys; records of those steps already in
``metrics.jsonl`` are dropped on resume (``MetricsWriter.rewind``), so the re-run writes each exactly once. A
re-run step is therefore the same computation as the first time, and the run ends where the fault-free run ends.

The check, printed at the end (exit status 0 when it passes):

- the final checkpoints of both runs (parameters, optimiser state, reference, key: every array) are equal bit
  for bit;
- ``metrics.jsonl`` of the chaos run has every step 1..N exactly once, and every value but the timings equals
  the fault-free run's;
- every directory under ``checkpoints/`` is a committed step (``commit_success.txt``): nothing half-written, and
  nothing was set aside as corrupt.

The report also gives the kills by kind, the longest recovery (SIGKILL until the run completes a step it had not
completed before) and the wall time of both runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT]

from chaos_harness import KINDS, ChaosError, Event, Harness, Trainer  # noqa: E402

from omnir1_jax.runtime.metrics import read_jsonl  # noqa: E402

TIMING = ("time", "time/", "tokens_per_s")


def overrides(workdir: str, run: str, steps: int, sft_steps: int) -> list[str]:
    """``--set`` values of the shrunk CPU demo."""
    sets = {
        "model.overrides": '(("hidden_size", 64), ("num_layers", 1), ("tie_word_embeddings", True))',
        "data.root": os.path.join(workdir, "world"),
        "data.synthetic_videos": "6",
        "data.synthetic_size": "(56, 84)",
        "data.batch_size": "1",
        "data.min_frames": "4",
        "data.max_frames": "4",
        "data.s1_max_pixels": "3136",
        "data.s1_min_pixels": "3136",
        "grpo.group_size": "4",
        "sft.steps": str(sft_steps),
        "sft.batch_size": "4",
        "run.steps": str(steps),
        "run.checkpoint_every": "1",
        "run.eval_every": "0",
        "run.out_dir": os.path.join(workdir, run),
        "bridge.timeout_s": "300",
    }
    return [x for k, v in sets.items() for x in ("--set", f"{k}={v}")]


def command(workdir: str, run: str, steps: int, sft_steps: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "omnir1_jax.train",
        "--config",
        os.path.join(ROOT, "experiments", "synthetic_cpu.py"),
        "--no-eval",
        *overrides(workdir, run, steps, sft_steps),
    ]


def environment(workdir: str, hold_file: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNIR1_", "SAM2_BRIDGE_TEST_"))}
    env.update(
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=os.path.join(workdir, "jax_cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    env["PYTHONPATH"] = os.pathsep.join(p for p in [ROOT, env.get("PYTHONPATH", "")] if p)
    if hold_file:  # inert until the harness creates the file (sam2_bridge.server.worker)
        env.update(SAM2_BRIDGE_TEST_REPLY_DELAY_S="600", SAM2_BRIDGE_TEST_REPLY_HOLD_FILE=hold_file)
    return env


def plan(steps: int, kills: int, seed: int) -> list[Event]:
    """``kills`` distinct trigger steps in 1..steps-1 and kinds (every kind in turn, shuffled), from ``seed``."""
    if not 1 <= kills <= steps - 1:
        raise ValueError(f"--kills must be in 1..{steps - 1} (one per step before the last), got {kills}")
    rng = random.Random(seed)
    at = sorted(rng.sample(range(1, steps), kills))
    kinds = [KINDS[i % len(KINDS)] for i in range(kills)]
    rng.shuffle(kinds)
    return [Event(s, k, round(rng.uniform(0.0, 0.6), 3)) for s, k in zip(at, kinds)]


# ------------------------------------------------------------------------------------------------- checks
def final_state(out_dir: str, step: int) -> dict:
    import jax
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as c:
        tree = c.restore(os.path.join(out_dir, "checkpoints", str(step), "state"))
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(tree)}


def compare_states(a: dict, b: dict) -> dict:
    differ, max_abs = [], 0.0
    for k in sorted(set(a) | set(b)):
        if k not in a or k not in b or a[k].shape != b[k].shape or a[k].dtype != b[k].dtype:
            differ.append(k)
            continue
        if a[k].tobytes() != b[k].tobytes():
            differ.append(k)
            if np.issubdtype(a[k].dtype, np.floating):
                max_abs = max(max_abs, float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))))
    return {"arrays": len(a), "differ": differ, "max_abs_diff": max_abs}


def compare_metrics(ref_path: str, path: str, steps: int) -> dict:
    ref, rows = read_jsonl(ref_path), read_jsonl(path)
    seen = [r["step"] for r in rows]
    by_step = {r["step"]: r for r in ref}
    values = differ = 0
    for r in rows:
        for k, v in r.items():
            if k == "step" or k.startswith(TIMING):
                continue
            values += 1
            differ += int(by_step.get(r["step"], {}).get(k) != v)
    return {
        "rows": len(rows),
        "lost": sorted(set(range(1, steps + 1)) - set(seen)),
        "duplicated": sorted({s for s in seen if seen.count(s) > 1}),
        "in_order": seen == sorted(seen),
        "values": values,
        "values_differ": differ,
    }


def check_checkpoints(out_dir: str) -> dict:
    ckdir = os.path.join(out_dir, "checkpoints")
    names = sorted(os.listdir(ckdir))
    complete = [n for n in names if n.isdigit() and os.path.exists(os.path.join(ckdir, n, "commit_success.txt"))]
    return {"complete": complete, "half_written": [n for n in names if n not in complete]}


# ------------------------------------------------------------------------------------------------- report
def report(events, states, metrics, ckpts, times, args) -> tuple[str, bool]:
    by_kind = {k: sum(e.kind == k for e in events) for k in KINDS}
    fired = [e for e in events if e.killed_at]
    worst = max((e for e in fired if e.recovery_s is not None), key=lambda e: e.recovery_s, default=None)
    ok = (
        len(fired) == args.kills
        and not states["differ"]
        and not metrics["lost"]
        and not metrics["duplicated"]
        and metrics["in_order"]
        and metrics["rows"] == args.steps
        and not metrics["values_differ"]
        and not ckpts["half_written"]
        and all(e.recovery_s is not None for e in fired)
    )
    lines = [
        f"chaos soak: {args.steps} GRPO steps, {len(fired)} kills (seed {args.seed}), "
        f"{os.cpu_count()}-core {platform.machine()} CPU, {time.strftime('%Y-%m-%d')}",
        "kills by kind: " + ", ".join(f"{k} {n}" for k, n in by_kind.items()),
        (
            f"longest recovery: {worst.recovery_s:.1f} s ({worst.kind} at step {worst.step}); mean "
            f"{np.mean([e.recovery_s for e in fired]):.1f} s"
            if worst
            else "longest recovery: -"
        ),
        f"final parameters, optimiser, reference, key: {len(states['differ'])} of {states['arrays']} arrays differ "
        f"from the fault-free run (max |diff| {states['max_abs_diff']:g})"
        + ("; equal bit for bit" if not states["differ"] else ""),
        f"metrics.jsonl: {metrics['rows']} rows for {args.steps} steps, {len(metrics['lost'])} lost, "
        f"{len(metrics['duplicated'])} duplicated; {metrics['values_differ']} of {metrics['values']} values differ "
        "from the fault-free run (timings excluded)",
        f"checkpoints: {len(ckpts['complete'])} committed ({', '.join(ckpts['complete'])}), "
        f"{len(ckpts['half_written'])} half-written {ckpts['half_written'] or ''}".rstrip(),
        f"wall time: fault-free {times['faultfree']:.0f} s, chaos {times['chaos']:.0f} s "
        f"(trainer started {times['starts']} times)",
        f"CHECK: {'PASS' if ok else 'FAIL'}",
    ]
    return "\n".join(lines), ok


def run_faultfree(args, cmd, env) -> float:
    t0 = time.monotonic()
    t = Trainer(cmd, env, ROOT, os.path.join(args.workdir, "faultfree.log"))
    while t.lines.get() is not None:
        pass
    if t.proc.wait() != 0:
        raise ChaosError(f"the fault-free run failed; its last lines:\n{''.join(t.tail)}")
    return time.monotonic() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sft-steps", type=int, default=100, help="format warm-up before GRPO (non-zero rewards)")
    ap.add_argument("--workdir", default=os.path.join(ROOT, "runs", "chaos"))
    ap.add_argument("--json", help="also write the report's numbers here")
    args = ap.parse_args(argv)
    try:
        events = plan(args.steps, args.kills, args.seed)
    except ValueError as e:
        ap.error(str(e))
    args.workdir = os.path.abspath(args.workdir)
    for run in ("faultfree", "chaos"):  # the world and the compilation cache are kept between invocations
        shutil.rmtree(os.path.join(args.workdir, run), ignore_errors=True)
        for log in (f"{run}.log",):
            if os.path.exists(os.path.join(args.workdir, log)):
                os.remove(os.path.join(args.workdir, log))
    os.makedirs(args.workdir, exist_ok=True)
    print(f"[chaos] plan: {', '.join(f'{e.kind}@{e.step}' for e in events)}", flush=True)
    times = {
        "faultfree": run_faultfree(
            args, command(args.workdir, "faultfree", args.steps, args.sft_steps), environment(args.workdir, None)
        )
    }
    print(f"[chaos] fault-free run done in {times['faultfree']:.0f} s", flush=True)
    hold = os.path.join(args.workdir, "hold")
    harness = Harness(
        command(args.workdir, "chaos", args.steps, args.sft_steps),
        environment(args.workdir, hold),
        ROOT,
        os.path.join(args.workdir, "chaos"),
        hold,
        events,
        os.path.join(args.workdir, "chaos.log"),
    )
    t0 = time.monotonic()
    harness.run()
    times.update(chaos=time.monotonic() - t0, starts=harness.starts)
    for e in events:
        print(f"[chaos] step {e.step:4d} {e.kind:23s} recovered in {e.recovery_s or float('nan'):6.1f} s  {e.note}")
    states = compare_states(
        final_state(os.path.join(args.workdir, "faultfree"), args.steps),
        final_state(os.path.join(args.workdir, "chaos"), args.steps),
    )
    metrics = compare_metrics(
        os.path.join(args.workdir, "faultfree", "metrics.jsonl"),
        os.path.join(args.workdir, "chaos", "metrics.jsonl"),
        args.steps,
    )
    ckpts = check_checkpoints(os.path.join(args.workdir, "chaos"))
    text, ok = report(events, states, metrics, ckpts, times, args)
    print(text, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "ok": ok,
                    "report": text,
                    "states": states,
                    "metrics": metrics,
                    "checkpoints": ckpts,
                    "times": times,
                    "events": [vars(e) for e in events],
                },
                f,
                indent=1,
            )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
