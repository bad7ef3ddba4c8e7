"""Subprocess of test_checkpoint_full_disk.py: checkpoint writes under a file-size limit (``RLIMIT_FSIZE``).

For each ``on_error`` mode (``stop``, then ``continue``, in ``OUT_DIR/<mode>``): saves step 1, then lowers this
process's file-size limit below the size of the next checkpoint's array file (Python ignores SIGXFSZ, so the
write fails with EFBIG instead of killing the process) and saves step 2; then lifts the limit and saves step 3.
Prints one JSON line per event (with its mode).

Usage: python _full_disk_worker.py OUT_DIR
"""

import json
import os
import resource
import sys

import numpy as np

from omnir1_jax.runtime.checkpoint import CheckpointWriteError, RunCheckpointer

LIMIT = 100_000  # bytes: step 2's array file (800 kB of noise, incompressible) does not fit


def state_at(step: int) -> dict:
    n = 1000 if step == 1 else 200_000
    return {"w": np.random.default_rng(step).standard_normal(n).astype(np.float32)}


def run(out_dir: str, mode: str) -> None:
    def say(**event) -> None:
        print(json.dumps(dict(event, mode=mode)), flush=True)

    ckpt = RunCheckpointer(out_dir, keep=5, on_error=mode)
    say(saved=1, ok=ckpt.save(1, state_at(1), {"step": 1}))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, hard))
    try:
        say(saved=2, ok=ckpt.save(2, state_at(2), {"step": 2}))
    except CheckpointWriteError as e:
        say(saved=2, error=str(e))
        ckpt.close()
        return
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    say(saved=3, ok=ckpt.save(3, state_at(3), {"step": 3}))
    ckpt.close()


if __name__ == "__main__":
    for m in ("stop", "continue"):
        run(os.path.join(sys.argv[1], m), m)
