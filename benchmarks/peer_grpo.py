"""Side by side with tunix and TRL: one GRPO task, one set of weights, learning curves and step time.

The task (``benchmarks/peer_task.py``): "answer with the colour named in the prompt", reward ``accuracy + 0.5 *
format``, a tiny Qwen2.5-architecture model created once with transformers and saved as a Hugging Face
directory, and one set of settings (group 8, 4 prompts per step, 16 new tokens, temperature 1, AdamW lr 1e-2
with 3 linear warm-up steps then constant, grad clip 1, beta 0.04 with the k3 estimator, clip 0.2,
seq-mean-token-mean, 60 steps). Three stacks train it, each in its own subprocess, seed after seed
(interleaved, so a change of machine load hits every stack alike):

- ``ours``: the one learner with a text-only task plug-in, our Thinker loaded from the Qwen2 directory
  (``benchmarks/peer_ours.py``, run with ``--ours-python``, default ``.venv/bin/python``);
- ``tunix``: ``GRPOLearner`` with tunix's Qwen2 (``peer_tunix.py``, ``--peers-python``, default this interpreter);
- ``trl``: ``GRPOTrainer`` on the CPU (``peer_trl.py``, ``--peers-python``).

Each writes per-step JSON (``peer_common``); this script aggregates them: reward curves (seeds thin, mean with
a 95 % bootstrap band) in ``peer_grpo.png``, final reward (mean of each seed's last 10 steps) with 95 % CIs and
pairwise probability of improvement (``scipy.stats.bootstrap``), median step / update time, sampling tokens/s
and peak RSS as ratios to ours. A stack that fails is reported with its error and left out of the comparison.

    bash scripts/install_peers.sh
    .venv-peers/bin/python benchmarks/peer_grpo.py --seeds 0-4            # all three, ~30 min on 2 cores
    .venv-peers/bin/python benchmarks/peer_grpo.py --seeds 0-4 --aggregate-only   # re-read runs/peers/*.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import peer_stats  # noqa: E402
import peer_task  # noqa: E402

STACKS = ("ours", "tunix", "trl")
SCRIPTS = {"ours": "peer_ours.py", "tunix": "peer_tunix.py", "trl": "peer_trl.py"}


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,2,5"`` -> [0, 2, 5]."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
        except ValueError:
            raise ValueError(f"--seeds: {text!r} is not a list like 0-4 or 0,2,5") from None
    if not seeds:
        raise ValueError(f"--seeds: {text!r} names no seed")
    return seeds


def run_one(stack: str, python: str, model: str, seed: int, steps: int, out_dir: str) -> dict:
    """Run one stack for one seed in a subprocess; its JSON, or ``{"error": ...}`` with the stderr tail."""
    out = os.path.join(out_dir, f"{stack}_{seed}.json")
    log = os.path.join(out_dir, f"{stack}_{seed}.log")
    cmd = [
        python,
        os.path.join(HERE, SCRIPTS[stack]),
        "--model",
        model,
        "--seed",
        str(seed),
        "--steps",
        str(steps),
        "--out",
        out,
    ]
    env = dict(os.environ, PYTHONPATH=ROOT, TOKENIZERS_PARALLELISM="false")
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    wall = time.perf_counter() - t0
    if rc != 0 or not os.path.isfile(out):
        with open(log) as f:
            tail = f.read().strip().splitlines()[-15:]
        print(f"[peers] {stack} seed {seed} FAILED (exit {rc}); see {log}:\n  " + "\n  ".join(tail), flush=True)
        return {"stack": stack, "seed": seed, "error": "\n".join(tail), "exit": rc}
    print(f"[peers] {stack} seed {seed} done in {wall:.0f} s", flush=True)
    with open(out) as f:
        res = json.load(f)
    res["wall_s"] = wall
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    return res


def load(out_dir: str, stacks, seeds) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {s: [] for s in stacks}
    for stack in stacks:
        for seed in seeds:
            path = os.path.join(out_dir, f"{stack}_{seed}.json")
            if os.path.isfile(path):
                with open(path) as f:
                    runs[stack].append(json.load(f))
    return runs


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:  # the CPU's model name (util-linux lscpu), where the machine has it
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        names = [ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")]
        cpu = names[0] if names else cpu
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--stacks", default=",".join(STACKS), help="comma-separated subset of ours,tunix,trl")
    ap.add_argument("--steps", type=int, default=peer_task.SETTINGS["steps"])
    ap.add_argument("--out", default=os.path.join(ROOT, "runs", "peers"), help="run directory")
    ap.add_argument("--ours-python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    ap.add_argument("--peers-python", default=sys.executable)
    ap.add_argument("--aggregate-only", action="store_true", help="only aggregate the JSON already in --out")
    args = ap.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as e:
        ap.error(str(e))
    stacks = [s.strip() for s in args.stacks.split(",") if s.strip()]
    bad = [s for s in stacks if s not in STACKS]
    if bad:
        ap.error(f"--stacks: unknown {bad}; choose from {list(STACKS)}")
    for stack in stacks:
        python = args.ours_python if stack == "ours" else args.peers_python
        if not args.aggregate_only and not os.access(python, os.X_OK):
            flag = "--ours-python" if stack == "ours" else "--peers-python"
            ap.error(
                f"{flag}: {python} is not an executable interpreter (ours needs the project's .venv: "
                "bash scripts/install.sh; the peers .venv-peers: bash scripts/install_peers.sh)"
            )
    os.makedirs(args.out, exist_ok=True)
    model = os.path.join(args.out, "model")
    failures: dict[str, str] = {}
    started = datetime.datetime.now(datetime.UTC)
    if not args.aggregate_only:
        if not os.path.isfile(os.path.join(model, "config.json")):
            peer_task.write_model(model)
            print(f"[peers] wrote the task's model to {model}", flush=True)
        for seed in seeds:
            for stack in stacks:
                python = args.ours_python if stack == "ours" else args.peers_python
                res = run_one(stack, python, model, seed, args.steps, args.out)
                if "error" in res:
                    failures.setdefault(stack, res["error"])
    runs = load(args.out, stacks, seeds)
    summary = peer_stats.summarise(runs, reference="ours")
    summary.update(
        machine=machine(),
        date=started.strftime("%Y-%m-%d %H:%M UTC"),
        seeds=seeds,
        settings=peer_task.SETTINGS,
        failures=failures,
    )
    peer_stats.plot(runs, os.path.join(args.out, "peer_grpo.png"))
    table = peer_stats.table(summary)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, default=float)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(table + "\n")
    print(f"\nMachine: {summary['machine']}; date {summary['date']}; seeds {seeds}\n")
    print(table)
    for stack, err in failures.items():
        print(f"\n{stack} failed:\n{err}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
