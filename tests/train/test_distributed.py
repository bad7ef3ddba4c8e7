"""Multi-process JAX on one machine: 2 processes x 4 fake CPU devices (gloo collectives) joined by
:mod:`omnir1_jax.runtime.distributed` train like one process of 8 devices (issue 6, multi-host): two GRPO
updates of the real trainer on the same global batch give the same losses (<= 1e-5) and parameters."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from omnir1_jax.config import ConfigError
from omnir1_jax.runtime.distributed import DistributedSpec, resolve

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "tests", "train", "_dist_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNIR1_", "JAX_", "SLURM_", "OMPI_"))}
    env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu", **extra)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_resolve_order_and_validation():
    env = {"OMNIR1_COORDINATOR": "10.0.0.1:7777", "OMNIR1_NUM_PROCESSES": "4", "OMNIR1_PROCESS_ID": "3"}
    assert resolve(env=env) == DistributedSpec("10.0.0.1:7777", 4, 3)
    assert resolve(process_id=1, env=env) == DistributedSpec("10.0.0.1:7777", 4, 1)  # flags win
    legacy = {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}
    assert resolve(env=legacy) == DistributedSpec("h:1", 2, 1)
    assert resolve(env={}) == DistributedSpec() and not DistributedSpec().multi_process
    assert resolve(env={"SLURM_JOB_ID": "9", "SLURM_NTASKS": "2"}).auto
    assert not resolve(env={"SLURM_JOB_ID": "9", "SLURM_NTASKS": "1"}).auto
    with pytest.raises(ConfigError, match="process_id"):
        resolve(env=dict(env, OMNIR1_PROCESS_ID="4"))
    with pytest.raises(ConfigError, match="OMNIR1_NUM_PROCESSES='two'"):
        resolve(env=dict(env, OMNIR1_NUM_PROCESSES="two"))
    with pytest.raises(ConfigError, match="coordinator"):
        resolve(num_processes=2, env={})


def test_two_processes_of_four_devices_train_like_one_process_of_eight(tmp_path):
    from omnir1_jax.data.synthetic import writer

    world = str(tmp_path / "world")
    writer.write_vos(world, 5, seed=0, height=56, width=84, min_frames=4, max_frames=4)
    port = _free_port()
    cmd = lambda out: [sys.executable, WORKER, world, str(tmp_path / out)]  # noqa: E731
    procs = [subprocess.Popen(cmd("two"), cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=_env(4, OMNIR1_COORDINATOR=f"127.0.0.1:{port}", OMNIR1_NUM_PROCESSES="2",
                                       OMNIR1_PROCESS_ID=str(i)))
             for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    single = subprocess.run(cmd("one"), cwd=ROOT, text=True, capture_output=True, env=_env(8), timeout=600)
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert single.returncode == 0, single.stderr[-3000:]
    res = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    one = json.loads(single.stdout.strip().splitlines()[-1])
    assert [r["process"] for r in res] == [0, 1] and [r["primary"] for r in res] == [True, False]
    assert all(r["processes"] == 2 and r["devices"] == 8 and r["local_devices"] == 4 for r in res)
    assert one["processes"] == 1 and one["devices"] == 8 and not one["multi"]
    # two GRPO updates: each process's loss is the loss of the global batch, equal to the single process's
    assert res[0]["losses"][0] != res[0]["losses"][1]  # the first update changed the policy
    for r in res:
        np.testing.assert_allclose(r["losses"], one["losses"], rtol=0, atol=1e-5)
    # the replicas stay equal to each other and to the single-process policy
    assert res[0]["checksum"] == pytest.approx(res[1]["checksum"], abs=1e-9)
    assert res[0]["checksum"] == pytest.approx(one["checksum"], rel=1e-6)
    # the multi-process checkpoint (global arrays, written once) restores every replica
    for r in res + [one]:
        assert r["scrambled_differs"] and r["restored"] and r["restored_step"] == 2
        assert r["restored_checksum"] == r["checksum"]
    assert sorted(n for n in os.listdir(tmp_path / "two" / "checkpoints") if n.isdigit()) == ["2"]
