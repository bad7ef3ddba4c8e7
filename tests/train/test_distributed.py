"""Multi-process JAX on one machine: 2 processes x 4 fake CPU devices (gloo collectives) joined by
:mod:`omnir1_jax.runtime.distributed` train like one process of 8 devices (multi-host): two GRPO
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
from tests.train._tiny import TINY_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "tests", "train", "_dist_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNIR1_", "JAX_", "SLURM_", "OMPI_"))}
    flags = f"--xla_force_host_platform_device_count={devices} " + os.environ.get("XLA_FLAGS", "")
    env.update(XLA_FLAGS=flags, JAX_PLATFORMS="cpu", **extra)
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


def _two_and_one(tmp_path, **extra) -> tuple[list, dict]:
    """The worker as 2 processes x 4 devices and as 1 process x 8 devices on one synthetic world (``extra``: more
    environment for every process); (the two processes' JSON lines, the single process's)."""
    from omnir1_jax.data.synthetic import writer

    world = str(tmp_path / "world")
    writer.write_vos(world, 5, seed=0, height=56, width=84, min_frames=4, max_frames=12)
    port = _free_port()
    cmd = lambda out: [sys.executable, WORKER, world, str(tmp_path / out)]
    procs = [
        subprocess.Popen(
            cmd("two"),
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(
                4,
                OMNIR1_COORDINATOR=f"127.0.0.1:{port}",
                OMNIR1_NUM_PROCESSES="2",
                OMNIR1_PROCESS_ID=str(i),
                **extra,
            ),
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    single = subprocess.run(cmd("one"), cwd=ROOT, text=True, capture_output=True, env=_env(8, **extra), timeout=600)
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert single.returncode == 0, single.stderr[-3000:]
    res = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    return res, json.loads(single.stdout.strip().splitlines()[-1])


def test_two_processes_of_four_devices_with_fsdp_spanning_both_train_like_one_process_of_eight(tmp_path):
    res, one = _two_and_one(tmp_path)
    assert [r["process"] for r in res] == [0, 1] and [r["primary"] for r in res] == [True, False]
    # each process prepared only its own prompt, and the two shares differ in shape (clip length, tokens), so the
    # global prompt batch was padded and moved together from unequal blocks
    assert res[0]["prompt_frames"] != res[1]["prompt_frames"] and res[0]["prompt_tokens"] != res[1]["prompt_tokens"]
    assert sorted(res[0]["prompt_frames"] + res[1]["prompt_frames"]) == sorted(one["prompt_frames"])
    assert all(r["processes"] == 2 and r["devices"] == 8 and r["local_devices"] == 4 for r in res)
    assert one["processes"] == 1 and one["devices"] == 8 and not one["multi"]
    # two GRPO updates: each process's loss is the loss of the global batch, equal to the single process's
    assert res[0]["losses"][0] != res[0]["losses"][1]  # the first update changed the policy
    for r in res:
        np.testing.assert_allclose(r["losses"], one["losses"], rtol=0, atol=1e-5)
    # one global policy: both processes see the same parameters, equal to the single-process ones
    assert res[0]["checksum"] == pytest.approx(res[1]["checksum"], abs=1e-9)
    assert res[0]["checksum"] == pytest.approx(one["checksum"], rel=1e-6)
    # fsdp = 8 spans both processes: each holds half of every fsdp-sharded weight (no full replica)
    assert all(r["mesh"] == {"data": 1, "fsdp": 8, "tensor": 1} for r in res + [one])
    assert res[0]["fsdp_weights"] > 10 and res[0]["fsdp_weights"] == one["fsdp_weights"]
    assert res[0]["held"] == [0.5] and res[1]["held"] == [0.5] and one["held"] == [1.0]
    # the multi-process checkpoint (global arrays, each process its shards) restores on both
    for r in res + [one]:
        assert r["scrambled_differs"] and r["restored"] and r["restored_step"] == 2
        assert r["restored_checksum"] == r["checksum"]
    assert sorted(n for n in os.listdir(tmp_path / "two" / "checkpoints") if n.isdigit()) == ["2"]


@pytest.mark.slow
def test_two_processes_with_the_optimiser_split_over_data_train_like_one_process(tmp_path):
    """The same worker on a data 2 x fsdp 4 mesh with ``mesh.shard_optimizer``: the moments' jit move and every
    update run on global arrays of two processes; losses and parameters equal the single process's, and the
    checkpoint restores."""
    res, one = _two_and_one(tmp_path, ZERO_TEST="1")
    assert all(r["mesh"] == {"data": 2, "fsdp": 4, "tensor": 1} for r in res + [one])
    assert res[0]["losses"][0] != res[0]["losses"][1]
    for r in res:
        np.testing.assert_allclose(r["losses"], one["losses"], rtol=0, atol=1e-5)
    assert res[0]["checksum"] == pytest.approx(res[1]["checksum"], abs=1e-9)
    assert res[0]["checksum"] == pytest.approx(one["checksum"], rel=1e-6)
    for r in res + [one]:
        assert r["restored"] and r["restored_step"] == 2 and r["restored_checksum"] == r["checksum"]


TINY_EXPERIMENT = f"""
import os

from omnir1_jax.config import (BridgeSpec, DataSpec, ExperimentConfig, GRPOSpec, MeshSpec, ModelSpec, OptimSpec,
                               RunSpec, SFTSpec)
from omnir1_jax.rewards import RewardWeights


def get_config():
    return ExperimentConfig(
        name="tiny_mp", model=ModelSpec(overrides={TINY_MODEL!r}),
        data=DataSpec(root=os.path.join(ROOT, "world"), synthetic_videos=6, synthetic_size=(56, 84), batch_size=2,
                      min_frames=4, max_frames=4, s1_max_pixels=4 * 28 * 28, s1_min_pixels=4 * 28 * 28),
        bridge=BridgeSpec(grounder="synthetic", segmenter="synthetic", workers=1, timeout_s=120),
        grpo=GRPOSpec(group_size=2, max_new_tokens=24, rewards=RewardWeights(alpha_k=1.0, alpha_g=1.0)),
        optim=OptimSpec(lr=1e-3), sft=SFTSpec(steps=2, lr=1e-3, batch_size=2), mesh=MeshSpec(data=1, fsdp=2),
        run=RunSpec(out_dir=os.path.join(ROOT, "run"), steps=2, checkpoint_every=2, eval_split="valid",
                    eval_max_expressions=4),
    )
"""


@pytest.mark.slow
@pytest.mark.torch
def test_the_training_entry_point_runs_as_two_processes(tmp_path):
    """`python -m omnir1_jax.train` launched twice with OMNIR1_* (1 CPU device each, a mesh whose fsdp axis spans
    the two processes): SFT, evaluation, GRPO and a checkpoint complete in both processes; only process 0 writes
    the summary; the checkpoint is written once."""
    from omnir1_jax.data.synthetic import writer

    writer.write_vos(str(tmp_path / "world"), 6, seed=0, height=56, width=84, min_frames=24, max_frames=48)
    exp = tmp_path / "tiny_mp.py"
    exp.write_text(f"ROOT = {str(tmp_path)!r}\n" + TINY_EXPERIMENT)
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "omnir1_jax.train", "--config", str(exp)],
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=_env(1, OMNIR1_COORDINATOR=f"127.0.0.1:{port}", OMNIR1_NUM_PROCESSES="2", OMNIR1_PROCESS_ID=str(i)),
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    assert "[done]" in outs[0] and "[done]" not in outs[1]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["before"]["count"] == 4 and 0.0 <= summary["after"]["J&F"] <= 1.0
    assert sorted(n for n in os.listdir(tmp_path / "run" / "checkpoints") if n.isdigit()) == ["2"]
    assert sorted(n for n in os.listdir(tmp_path / "run") if n.startswith("bridge_p")) == [
        "bridge_p0.log",
        "bridge_p1.log",
    ]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2]  # written once, by process 0
