"""Seed-parallel against one seed: the same experiment run once with ``run.seed = 0`` and once with ``run.seeds``
= the first N seeds, in the same invocation on the same machine, each a fresh process (its own compiles).

    python benchmarks/bench_seeds.py [--config experiments/synthetic_cpu.py] [--seeds 5] [--set key=value ...]

Prints, for both: the whole run's wall time (world generation excluded: it is made before either starts), the
median GRPO and SFT step times (``time/step`` of ``metrics.jsonl``, the first steps' compiles excluded), and the
ratios N seeds / 1 seed. The goal (BENCHMARKS.md "Seeds"): 5 seeds of the CPU demo in <= 2x the wall time of
one. ``--set`` shortens a run for a quick look (e.g. ``--set run.steps=20 --set sft.steps=50``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _median_step(path: str, skip: int = 2) -> float | None:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    vals = [r["time/step"] for r in rows[skip:] if "time/step" in r]
    return float(np.median(vals)) if vals else None


def _run(args: list[str], log: str) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(
            [sys.executable, "-m", "omnir1_jax.train", *args], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT
        )
    if proc.returncode:
        raise SystemExit(f"run failed (exit {proc.returncode}); see {log}")
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="experiments/synthetic_cpu.py")
    ap.add_argument("--seeds", type=int, default=5, help="N: seeds 0 .. N-1 in the seed-parallel run")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default=None, help="run directory (default: a temporary one, removed)")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="bench_seeds_")
    sets = [a for s in args.set for a in ("--set", s)]
    sys.path.insert(0, ROOT)
    # after the sys.path line above
    from omnir1_jax.config import load_config
    from omnir1_jax.runtime.records import read_records

    cfg = load_config(os.path.join(ROOT, args.config), args.set)
    read_records(cfg.data, cfg.data.split)  # the synthetic world, made before either timed run
    one_dir, many_dir = os.path.join(out, "one"), os.path.join(out, "many")
    common = ["--config", args.config, *sets, "--set", "run.resume=False"]
    t_one = _run([*common, "--set", "run.seed=0", "--set", f"run.out_dir={one_dir!r}"], os.path.join(out, "one.log"))
    t_many = _run(
        [*common, "--seeds", f"0-{args.seeds - 1}", "--set", f"run.out_dir={many_dir!r}"], os.path.join(out, "many.log")
    )
    res = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "config": args.config,
        "sets": args.set,
        "seeds": args.seeds,
        "wall_one_s": t_one,
        "wall_many_s": t_many,
        "ratio": t_many / t_one,
        "grpo_step_one_s": _median_step(os.path.join(one_dir, "metrics.jsonl")),
        "grpo_step_many_s": _median_step(os.path.join(many_dir, "seed0", "metrics.jsonl")),
        "sft_step_one_s": _median_step(os.path.join(one_dir, "sft", "metrics.jsonl")),
        "sft_step_many_s": _median_step(os.path.join(many_dir, "seed0", "sft", "metrics.jsonl")),
    }
    print(
        f"1 seed: {t_one / 60:.1f} min; {args.seeds} seeds in one program: {t_many / 60:.1f} min; ratio "
        f"{res['ratio']:.2f} (goal <= 2.0)"
    )
    for stage in ("grpo", "sft"):
        a, b = res[f"{stage}_step_one_s"], res[f"{stage}_step_many_s"]
        if a and b:
            print(f"median {stage} step: 1 seed {a:.2f} s, {args.seeds} seeds {b:.2f} s (ratio {b / a:.2f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
