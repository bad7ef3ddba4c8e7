"""A pod that fails loudly: in a 2-process JAX run, SIGKILL one process; how long until the other exits naming it?

    .venv/bin/python benchmarks/pod_faults.py --tries 5 [--json runs/pod_faults.json]

Each try starts two processes of ``benchmarks/pod_faults.py worker`` on this machine (``jax.distributed`` over
loopback, 2 fake CPU devices each, gloo collectives), joined exactly as ``python -m omnir1_jax.train`` joins them
(:func:`omnir1_jax.runtime.distributed.initialize` with the config and code fingerprint, then
:func:`~omnir1_jax.runtime.distributed.guard`), that run cross-process all-gathers in a loop. Once both have
done a number of steps drawn from ``--seed``, the harness SIGKILLs one of them (process 1, then process 0 - the
coordinator -, alternately) and times how long the survivor takes to exit, with which status and which last line
on stderr. The check: every survivor exits with status 4 within 60 s, its last line naming the lost process.
``OMNIR1_POD_TIMEOUT_S`` (default 20 s) is the watch's timeout; ``--timeout-s`` sets it for the workers.

``worker`` mode (also used by ``tests/train/test_pod.py``): ``pod_faults.py worker --steps N [--set KEY=VALUE]``
joins the process group of the ``OMNIR1_*`` environment with the default experiment config plus the ``--set``
overrides, and runs N all-gathers (a config or code that differs from a peer's: one line, exit 2).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the workers import it via PYTHONPATH

LIMIT_S = 60.0


def worker(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="pod_faults.py worker")
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args(argv)
    # the worker only: the driver runs without jax
    from omnir1_jax.config import ConfigError, ExperimentConfig, apply_overrides
    from omnir1_jax.runtime import distributed, pod

    try:
        cfg = apply_overrides(ExperimentConfig(), args.set)
        distributed.initialize(distributed.resolve(), fingerprint=pod.fingerprint(cfg))
    except ConfigError as e:
        print(f"pod_faults.py worker: error: {e}", file=sys.stderr, flush=True)
        return 2
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    with distributed.guard():
        for step in range(args.steps):
            got = multihost_utils.process_allgather(np.asarray([step], np.int64))
            assert np.all(np.asarray(got) == step)
            print(f"[pod] process {jax.process_index()} step {step}", flush=True)
            time.sleep(0.02)
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(index: int, port: int, timeout_s: float | None = None, pythonpath: str = ROOT, devices: int = 2) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNIR1_", "JAX_", "SLURM_", "OMPI_"))}
    env.update(
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        JAX_PLATFORMS="cpu",
        OMNIR1_COORDINATOR=f"127.0.0.1:{port}",
        OMNIR1_NUM_PROCESSES="2",
        OMNIR1_PROCESS_ID=str(index),
        PYTHONPATH=pythonpath,
    )
    if timeout_s is not None:
        env["OMNIR1_POD_TIMEOUT_S"] = str(timeout_s)
    return env


class Proc:
    """A subprocess whose stdout / stderr lines are collected by threads."""

    def __init__(self, cmd: list[str], env: dict, cwd: str = ROOT):
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=lambda s=stream, k=sink: [k.append(x.rstrip("\n")) for x in s], daemon=True).start()

    def steps(self) -> int:
        return sum(x.startswith("[pod] process") for x in self.out)

    def last_err(self) -> str:
        lines = [x for x in self.err if x.strip()]
        return lines[-1] if lines else ""


def one_try(victim: int, after_steps: int, timeout_s: float | None) -> dict:
    """Start 2 workers, kill ``victim`` once both did ``after_steps`` steps, time the survivor's exit."""
    port = free_port()
    cmd = [sys.executable, os.path.abspath(__file__), "worker"]
    procs = [Proc(cmd, env_for(i, port, timeout_s)) for i in range(2)]
    survivor = procs[1 - victim]
    try:
        end = time.monotonic() + 300
        while min(p.steps() for p in procs) < after_steps:
            if time.monotonic() > end or any(p.proc.poll() is not None for p in procs):
                raise RuntimeError("the workers did not start: " + " | ".join(p.last_err() for p in procs))
            time.sleep(0.05)
        os.kill(procs[victim].proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        try:
            rc = survivor.proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            rc = None
        seconds = time.monotonic() - killed
        time.sleep(0.2)  # the reader threads catch the last lines
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.proc.kill()
            p.proc.wait()
    line = survivor.last_err()
    names = f"process {victim} of 2 is lost" in line
    return {
        "victim": victim,
        "after_steps": after_steps,
        "survivor_exit": rc,
        "seconds": round(seconds, 2),
        "line": line,
        "names_victim": names,
        "ok": rc == 4 and names and seconds <= LIMIT_S,
    }


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        return worker(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tries", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout-s", type=float, default=None, help="OMNIR1_POD_TIMEOUT_S for the workers")
    ap.add_argument("--json", help="also write the tries here")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    tries = []
    for i in range(args.tries):
        r = one_try(victim=1 - i % 2, after_steps=rng.randint(5, 60), timeout_s=args.timeout_s)
        tries.append(r)
        print(
            f"[pod] try {i + 1}: killed process {r['victim']} after {r['after_steps']} steps; the survivor exited "
            f"with {r['survivor_exit']} after {r['seconds']:.1f} s: {r['line']}",
            flush=True,
        )
    ok = all(t["ok"] for t in tries)
    times = [t["seconds"] for t in tries]
    print(
        f"pod: {len(tries)} tries on a {os.cpu_count()}-core {platform.machine()} CPU ({time.strftime('%Y-%m-%d')}): "
        f"lost process detected in {', '.join(f'{s:.1f}' for s in times)} s (max {max(times):.1f} s, limit "
        f"{LIMIT_S:.0f} s): {'OK' if ok else 'FAILED'}",
        flush=True,
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ok": ok, "tries": tries}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
