"""A checkpoint write that fails (issue 27 item 4, "full disk"): a file-size limit (``RLIMIT_FSIZE``) set in a
subprocess makes the write fail with EFBIG, as a full disk fails with ENOSPC. The failed step leaves nothing
behind, the previous checkpoint stays intact and restorable, the line names the step and why; then the run
stops (``run.on_checkpoint_error = "stop"``, the default: one line, exit status 2) or goes on (``"continue"``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from omnir1_jax.config import ConfigError, RunSpec
from omnir1_jax.runtime.checkpoint import RunCheckpointer, write_error_reason

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "train"))

from _full_disk_worker import state_at  # noqa: E402


def _env() -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _worker(out: str, mode: str) -> tuple[list[dict], str]:
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "train", "_full_disk_worker.py"), out, mode],
                          capture_output=True, text=True, timeout=300, env=_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    events = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    return events, proc.stdout + proc.stderr


def _restore_step(out: str) -> tuple[int, np.ndarray]:
    ckpt = RunCheckpointer(out)
    try:
        step, state, _ = ckpt.restore({"w": np.zeros(1000, np.float32)})
    finally:
        ckpt.close()
    return step, state["w"]


def test_a_failed_write_stops_the_run_and_leaves_the_previous_checkpoint_intact(tmp_path):
    out = str(tmp_path / "stop")
    events, text = _worker(out, "stop")
    assert events[0] == {"saved": 1, "ok": True} and len(events) == 2
    error = events[1]["error"]
    ckdir = os.path.join(out, "checkpoints")
    assert error.startswith("[checkpoint] step 2 was NOT saved: File too large (EFBIG): ValueError: ")
    assert f"the newest checkpoint, step 1, is intact ({ckdir}); stopping (run.on_checkpoint_error='stop'" in error
    assert sorted(os.listdir(ckdir)) == ["1"]  # no temporary directory of step 2 left behind
    step, w = _restore_step(out)
    assert step == 1 and np.array_equal(w, state_at(1)["w"])
    assert "Traceback" not in text  # orbax's per-thread tracebacks are not repeated


def test_continue_trains_on_and_saves_the_next_checkpoint(tmp_path):
    out = str(tmp_path / "continue")
    events, text = _worker(out, "continue")
    assert events == [{"saved": 1, "ok": True}, {"saved": 2, "ok": False}, {"saved": 3, "ok": True}]
    line = next(x for x in text.splitlines() if "was NOT saved" in x)
    assert line.startswith("[checkpoint] step 2 was NOT saved: File too large (EFBIG)")
    assert "the newest checkpoint, step 1, is intact" in line and "training goes on" in line
    assert sorted(os.listdir(os.path.join(out, "checkpoints"))) == ["1", "3"]


def test_the_option_is_validated_and_the_reason_is_read_from_the_error():
    with pytest.raises(ConfigError, match="run.on_checkpoint_error must be 'stop' or 'continue', got 'retry'"):
        RunSpec(on_checkpoint_error="retry")
    assert write_error_reason(OSError(28, "No space left on device")).startswith(
        "No space left on device (ENOSPC): OSError: ")
    assert write_error_reason(ValueError("x [os_error_code='27']")) == \
        "File too large (EFBIG): ValueError: x [os_error_code='27']"
    assert write_error_reason(RuntimeError("disk gone")) == "RuntimeError: disk gone"
