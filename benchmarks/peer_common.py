"""Helpers shared by the peer benchmark's runners (``peer_ours.py``, ``peer_trl.py``, ``peer_tunix.py``):
peak RSS, progress lines, and the per-step JSON they write. Pure standard library.

Per-step record (one dict per GRPO step, in order)::

    step, reward, accuracy, format   mean over the step's completions (peer_task's reward)
    t_step     seconds of the whole step: prompts -> sampling -> reward -> reference log-probs -> update
    t_sample   seconds of sampling the step's completions (the stack's generate call)
    t_reward   seconds of the reward function
    tokens     completion tokens sampled in the step (EOS included where the stack counts it)
    kl         the stack's logged mean per-token KL to the reference (NaN where it logs none)

The update time is ``t_step - t_sample - t_reward``: reference scoring, loss, backward and optimiser step.
"""

from __future__ import annotations

import json
import os
import resource
import sys


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (``getrusage``; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def progress(stack: str, seed: int, row: dict) -> None:
    print(
        f"[{stack} seed {seed}] step {row['step']:3d} reward {row['reward']:.3f} acc {row['accuracy']:.3f} "
        f"fmt {row['format']:.3f} step {row['t_step']:.3f}s sample {row['t_sample']:.3f}s",
        file=sys.stderr,
        flush=True,
    )


def write_json(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=1)
    os.replace(tmp, path)
