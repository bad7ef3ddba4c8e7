"""A pod that fails loudly: 2 JAX processes on this machine (gloo collectives over loopback).

- a SIGKILLed process is named by the other, which exits with status 4 and that one line within the watch's
  timeout instead of hanging in a collective (``benchmarks/pod_faults.py`` runs the same with the default 20 s
  timeout over 5 tries: BENCHMARKS.md "Reliability");
- processes started with a different config or different code exit with status 2 and one line naming the
  difference (``slow``; the comparison itself is in the default suite);
- ``slow``: the real trainer, 2 processes: one killed mid-run, the other exits naming it; both restarted, the run
  resumes from its last checkpoint and logs every step once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from omnir1_jax.config import ConfigError
from omnir1_jax.runtime import pod
from tests.train._tiny import TINY_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import pod_faults  # noqa: E402


@pytest.mark.parametrize("victim", [1, pytest.param(0, marks=pytest.mark.slow)])
def test_a_killed_process_is_named_by_the_survivor_which_exits(victim):
    r = pod_faults.one_try(victim=victim, after_steps=3, timeout_s=3)
    assert r["survivor_exit"] == pod.EXIT_LOST_PROCESS, r
    assert r["line"].startswith(f"pod_faults.py: error: process {victim} of 2 is lost ("), r
    assert r["line"].endswith(
        f"process {1 - victim} stops. Restart every process with the same command: the run "
        "resumes from its last checkpoint"
    )
    # the survivor's watch needs its timeout (3 s) to call a silent peer lost; a lost coordinator is seen at once
    assert r["seconds"] < 30


@pytest.mark.slow  # ~10 s: two JAX processes; the comparison itself is checked below in the default suite
def test_processes_with_another_config_or_code_refuse_to_run_together(tmp_path):
    copy = tmp_path / "other_code"
    for pkg in ("omnir1_jax", "sam2_bridge"):
        shutil.copytree(os.path.join(ROOT, pkg), copy / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "omnir1_jax" / "rl" / "loss.py", "a") as f:
        f.write("\n# a local edit on one host\n")
    port = pod_faults.free_port()
    worker = [sys.executable, os.path.join(ROOT, "benchmarks", "pod_faults.py"), "worker", "--steps", "3"]
    procs = [
        subprocess.Popen(
            worker, env=pod_faults.env_for(0, port), cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ),
        subprocess.Popen(
            worker + ["--set", "grpo.beta=0.001"],
            env=pod_faults.env_for(1, port, pythonpath=str(copy)),
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ),
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [2, 2], outs
    last = [err.strip().splitlines()[-1] for _, err in outs]
    assert last[1] == (
        "pod_faults.py worker: error: process 1 differs from process 0: config grpo.beta = 0.001 "
        "here, 0.04 there; code file omnir1_jax/rl/loss.py differs; start every process of a run "
        "with the same config and the same code"
    )
    assert last[0].startswith(
        "pod_faults.py worker: error: process 0 differs from process 1: config grpo.beta = "
        "0.04 here, 0.001 there; code file omnir1_jax/rl/loss.py differs"
    )
    assert all("[pod] process" not in out for out, _ in outs)  # no step ran


def test_fingerprint_differences_and_the_timeout_setting(monkeypatch):
    a = {"config": {"run": {"seed": 0}, "grpo": {"beta": 0.04}}, "versions": {"jax": "0.10.2"}, "code": {"x.py": "1"}}
    b = {"config": {"run": {"seed": 1}, "grpo": {"beta": 0.04}}, "versions": {"jax": "0.10.3"}, "code": {"y.py": "2"}}
    assert pod.differences(a, a) == []
    assert pod.differences(a, b) == [
        "config run.seed = 0 here, 1 there",
        "jax version 0.10.2 here, 0.10.3 there",
        "code file x.py only here",
        "code file y.py only there",
    ]
    assert set(pod.code_hashes()) >= {"omnir1_jax/runtime/pod.py", "sam2_bridge/wire/client.py"}
    monkeypatch.setenv(pod.TIMEOUT_ENV, "soon")
    with pytest.raises(ConfigError, match="OMNIR1_POD_TIMEOUT_S='soon' is not a number of seconds"):
        pod.timeout_from_env()
    monkeypatch.delenv(pod.TIMEOUT_ENV)
    assert pod.timeout_from_env() == pod.DEFAULT_TIMEOUT_S == 20.0


TINY = f"""
import os

from omnir1_jax.config import (BridgeSpec, DataSpec, ExperimentConfig, GRPOSpec, MeshSpec, ModelSpec, OptimSpec,
                               RunSpec, SFTSpec)
from omnir1_jax.rewards import RewardWeights


def get_config():
    return ExperimentConfig(
        name="tiny_pod", model=ModelSpec(overrides={TINY_MODEL!r}),
        data=DataSpec(root=os.path.join(ROOT, "world"), synthetic_videos=6, synthetic_size=(56, 84), batch_size=2,
                      min_frames=4, max_frames=4, s1_max_pixels=4 * 28 * 28, s1_min_pixels=4 * 28 * 28),
        bridge=BridgeSpec(grounder="synthetic", segmenter="synthetic", workers=1, timeout_s=120),
        grpo=GRPOSpec(group_size=2, max_new_tokens=24, rewards=RewardWeights(alpha_k=1.0, alpha_g=1.0)),
        optim=OptimSpec(lr=1e-3), sft=SFTSpec(steps=0), mesh=MeshSpec(data=1, fsdp=2),
        run=RunSpec(out_dir=os.path.join(ROOT, "run"), steps=6, checkpoint_every=1),
    )
"""


@pytest.mark.slow
@pytest.mark.torch  # the trainers' bridges
def test_the_trainer_pod_loses_a_process_fails_loudly_and_resumes_when_restarted(tmp_path):
    from omnir1_jax.data.synthetic import writer

    writer.write_vos(str(tmp_path / "world"), 6, seed=0, height=56, width=84, min_frames=24, max_frames=48)
    exp = tmp_path / "tiny_pod.py"
    exp.write_text(f"ROOT = {str(tmp_path)!r}\n" + TINY)
    cmd = [sys.executable, "-m", "omnir1_jax.train", "--config", str(exp), "--no-eval"]

    def start(port):
        return [pod_faults.Proc(cmd, pod_faults.env_for(i, port, devices=1)) for i in range(2)]

    first = start(pod_faults.free_port())
    end = time.monotonic() + 900
    while not any("] 3/6  ETA" in x for x in first[0].out):
        assert time.monotonic() < end and first[0].proc.poll() is None, first[0].err[-40:]
        time.sleep(0.1)
    os.kill(first[1].proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    rc = first[0].proc.wait(timeout=120)
    took = time.monotonic() - killed
    time.sleep(0.3)
    assert rc == pod.EXIT_LOST_PROCESS and took <= 60, (rc, took, first[0].err[-20:])
    assert first[0].last_err().startswith("python -m omnir1_jax.train: error: process 1 of 2 is lost (no heartbeat")
    saved = sorted(int(n) for n in os.listdir(tmp_path / "run" / "checkpoints") if n.isdigit())
    assert saved and saved[-1] >= 2

    again = start(pod_faults.free_port())
    rcs = [p.proc.wait(timeout=900) for p in again]
    time.sleep(0.3)
    assert rcs == [0, 0], again[0].err[-30:] + again[1].err[-30:]
    assert f"[grpo] resumed from step {saved[-1]} " in "\n".join(again[0].out)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # each step once, across the loss and the restart
