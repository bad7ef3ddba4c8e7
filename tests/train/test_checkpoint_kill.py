"""SIGKILL during a checkpoint save: the restart resumes from the last complete checkpoint.

The save is held open before Orbax commits it by the test hook ``OMNIR1_TEST_CHECKPOINT_DELAY_S`` (see
``omnir1_jax/runtime/checkpoint.py``); the process is killed while its partial step directory exists.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from omnir1_jax.runtime.checkpoint import DELAY_ENV, DELAY_STEP_ENV, RunCheckpointer, key_to_data
from tests.train._ckpt_worker import state_at

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _env(**extra) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", **extra)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run_until(cmd, env, marker: str, timeout_s: float = 300.0) -> tuple[subprocess.Popen, list[str]]:
    """Start ``cmd`` and read its output until a line contains ``marker``; returns the live process."""
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, end = [], time.monotonic() + timeout_s
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            return proc, lines
        if time.monotonic() > end:
            break
    proc.kill()
    proc.wait()
    raise AssertionError(f"never saw {marker!r}; output:\n{''.join(lines)[-4000:]}")


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


def test_kill_during_save_restores_last_complete_checkpoint(tmp_path):
    out = str(tmp_path / "run")
    worker = os.path.join(ROOT, "tests", "train", "_ckpt_worker.py")
    proc, lines = _run_until(
        [sys.executable, worker, out], _env(**{DELAY_ENV: "600", DELAY_STEP_ENV: "2"}), "[checkpoint] test delay"
    )
    ckdir = os.path.join(out, "checkpoints")
    names = sorted(os.listdir(ckdir))
    partial = [n for n in names if n.startswith("2") and n != "2"]
    assert "1" in names and "2" not in names and partial, names  # step 2 exists only as an uncommitted tmp dir
    _kill(proc)
    assert any("[worker] saved 1" in x for x in lines) and not any("saved 2" in x for x in lines)

    ckpt = RunCheckpointer(out, keep=5)
    try:
        assert ckpt.latest_step() == 1
        template = {
            "w": np.zeros((64, 1024), np.float32),
            "b": np.zeros((7,), np.int32),
            "key": key_to_data(jax.random.key(0)),
        }
        step, state, meta = ckpt.restore(template)
        assert step == 1 and meta["step"] == 1 and meta["data_state"] == b"\x00iter\x01"
        jax.tree.map(np.testing.assert_array_equal, state, state_at(1))
        ckpt.save(2, state_at(2), {"step": 2})  # the run goes on: step 2 is written again, completely
        assert ckpt.latest_step() == 2
        _, state, _ = ckpt.restore(template)
        jax.tree.map(np.testing.assert_array_equal, state, state_at(2))
    finally:
        ckpt.close()
    assert sorted(os.listdir(ckdir)) == ["1", "2"]  # the partial directory was cleaned up


CONFIG = """
from tests.train._tiny import tiny_config


def get_config():
    return tiny_config({root!r}, {out!r}, steps=3, checkpoint_every=1, resume=True)
"""


@pytest.mark.slow
@pytest.mark.torch
def test_trainer_killed_during_save_resumes_from_last_complete_checkpoint(tmp_path):
    """The real entry point (``python -m omnir1_jax.train``) killed while saving step 2, then restarted."""
    out = str(tmp_path / "run")
    cfg_file = tmp_path / "tiny_exp.py"
    cfg_file.write_text(CONFIG.format(root=str(tmp_path / "syn"), out=out))
    cmd = [sys.executable, "-m", "omnir1_jax.train", "--config", str(cfg_file), "--no-eval"]
    proc, lines = _run_until(
        cmd, _env(**{DELAY_ENV: "600", DELAY_STEP_ENV: "2"}), "[checkpoint] test delay", timeout_s=900
    )
    _kill(proc)
    text = "".join(lines)
    assert "] 1/3  ETA" in text and "] 2/3  ETA" in text and "] 3/3  ETA" not in text
    names = sorted(os.listdir(os.path.join(out, "checkpoints")))
    assert "1" in names and "2" not in names
    again = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "[grpo] resumed from step 1" in again.stdout
    assert "] 2/3  ETA" in again.stdout and "] 3/3  ETA" in again.stdout
    assert "] 1/3  ETA" not in again.stdout  # nothing before the checkpoint is redone
    assert sorted(n for n in os.listdir(os.path.join(out, "checkpoints")) if n.isdigit()) == ["1", "2", "3"]
