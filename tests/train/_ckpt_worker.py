"""Subprocess of test_checkpoint_kill.py: saves checkpoints 1..3 of a small state with RunCheckpointer.

Usage: python _ckpt_worker.py OUT_DIR   (the parent SIGKILLs it while a save is delayed by the test hook)
"""

import sys

import jax
import numpy as np

from omnir1_jax.runtime.checkpoint import RunCheckpointer, key_to_data


def state_at(step: int) -> dict:
    """The state checkpointed at ``step`` (a function of the step, so the parent can check what it restored)."""
    return {
        "w": np.arange(64 * 1024, dtype=np.float32).reshape(64, 1024) * step,
        "b": np.full((7,), step, np.int32),
        "key": key_to_data(jax.random.key(step)),
    }


def main(out_dir: str) -> None:
    ckpt = RunCheckpointer(out_dir, keep=5)
    for step in (1, 2, 3):
        ckpt.save(step, state_at(step), {"step": step, "data_state": b"\x00iter" + bytes([step])})
        print(f"[worker] saved {step}", flush=True)
    ckpt.close()


if __name__ == "__main__":
    main(sys.argv[1])
