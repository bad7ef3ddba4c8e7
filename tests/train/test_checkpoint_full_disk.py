"""A checkpoint write that fails (BENCHMARKS.md "Reliability"): a file-size limit (``RLIMIT_FSIZE``) set in a
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


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    """Both modes, in one subprocess: ``(out_dir, {mode: [events]}, output)``."""
    out = str(tmp_path_factory.mktemp("full_disk"))
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "train", "_full_disk_worker.py"), out],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    events: dict[str, list[dict]] = {"stop": [], "continue": []}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            e = json.loads(line)
            events[e.pop("mode")].append(e)
    return out, events, proc.stdout + proc.stderr


def _restore_step(out: str) -> tuple[int, np.ndarray]:
    ckpt = RunCheckpointer(out)
    try:
        step, state, _ = ckpt.restore({"w": np.zeros(1000, np.float32)})
    finally:
        ckpt.close()
    return step, state["w"]


def test_a_failed_write_stops_the_run_and_leaves_the_previous_checkpoint_intact(disk):
    root, events, text = disk
    out = os.path.join(root, "stop")
    assert events["stop"][0] == {"saved": 1, "ok": True} and len(events["stop"]) == 2
    error = events["stop"][1]["error"]
    ckdir = os.path.join(out, "checkpoints")
    assert error.startswith("[checkpoint] step 2 was NOT saved: File too large (EFBIG): ValueError: ")
    assert f"the newest checkpoint, step 1, is intact ({ckdir}); stopping (run.on_checkpoint_error='stop'" in error
    assert sorted(os.listdir(ckdir)) == ["1"]  # no temporary directory of step 2 left behind
    step, w = _restore_step(out)
    assert step == 1 and np.array_equal(w, state_at(1)["w"])
    assert "Traceback" not in text  # orbax's per-thread tracebacks are not repeated


def test_continue_trains_on_and_saves_the_next_checkpoint(disk):
    root, events, text = disk
    assert events["continue"] == [{"saved": 1, "ok": True}, {"saved": 2, "ok": False}, {"saved": 3, "ok": True}]
    line = next(x for x in text.splitlines() if "was NOT saved" in x and "training goes on" in x)
    assert line.startswith("[checkpoint] step 2 was NOT saved: File too large (EFBIG)")
    assert "the newest checkpoint, step 1, is intact" in line
    assert sorted(os.listdir(os.path.join(root, "continue", "checkpoints"))) == ["1", "3"]


def test_the_option_is_validated_and_the_reason_is_read_from_the_error():
    with pytest.raises(ConfigError, match="run.on_checkpoint_error must be 'stop' or 'continue', got 'retry'"):
        RunSpec(on_checkpoint_error="retry")
    assert write_error_reason(OSError(28, "No space left on device")).startswith(
        "No space left on device (ENOSPC): OSError: "
    )
    assert (
        write_error_reason(ValueError("x [os_error_code='27']"))
        == "File too large (EFBIG): ValueError: x [os_error_code='27']"
    )
    assert write_error_reason(RuntimeError("disk gone")) == "RuntimeError: disk gone"


CONFIG = """
from tests.train._tiny import tiny_config


def get_config():
    return tiny_config({root!r}, {out!r}, steps=2, checkpoint_every=1, resume=True)
"""

# the trainer under a 150 kB file-size limit: its logs, metrics and configs fit, a checkpoint's array files do not
LIMITED = (
    "import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, resource.RLIM_INFINITY)); "
    "sys.argv = ['omnir1_jax.train'] + sys.argv[1:]; runpy.run_module('omnir1_jax.train', run_name='__main__', "
    "alter_sys=True)"
)


@pytest.mark.slow
@pytest.mark.torch  # the trainer's bridge
def test_the_trainer_stops_on_a_full_disk_with_one_line_and_resumes_from_the_intact_checkpoint(tmp_path):
    out = str(tmp_path / "run")
    cfg_file = tmp_path / "tiny_exp.py"
    cfg_file.write_text(CONFIG.format(root=str(tmp_path / "syn"), out=out))
    args = ["--config", str(cfg_file), "--no-eval"]
    first = subprocess.run(
        [sys.executable, "-m", "omnir1_jax.train", *args],
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    full = subprocess.run(
        [sys.executable, "-c", LIMITED, *args, "--set", "run.steps=4"],
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    ckdir = os.path.join(out, "checkpoints")
    assert full.returncode == 2, full.stdout[-3000:] + full.stderr[-3000:]
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "python -m omnir1_jax.train: error: [checkpoint] step 3 was NOT saved: File too large (EFBIG): ValueError: "
    )
    assert f"the newest checkpoint, step 2, is intact ({ckdir}); stopping (run.on_checkpoint_error='stop'" in last
    assert "Traceback" not in full.stderr and "] 3/4  ETA" in full.stdout and "] 4/4" not in full.stdout
    assert sorted(os.listdir(ckdir)) == ["1", "2"]  # nothing of step 3 left behind
    again = subprocess.run(
        [sys.executable, "-m", "omnir1_jax.train", *args, "--set", "run.steps=4"],
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[grpo] resumed from step 2" in again.stdout
    steps = [json.loads(x)["step"] for x in open(os.path.join(out, "metrics.jsonl"))]
    assert steps == [1, 2, 3, 4]  # step 3 of the stopped run was dropped and re-run
