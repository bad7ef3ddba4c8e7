"""The chaos soak, short: ``benchmarks/chaos.py --steps 20 --kills 5`` SIGKILLs the trainer
(also in the middle of writing a checkpoint), the bridge server and its worker (also while a reply is held)
during a 20-step GRPO run, restarting what it killed; the run ends with the final state of the fault-free run bit
for bit, each step logged once, and no checkpoint half-written. A few minutes of CPU: ``slow``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
@pytest.mark.torch  # nothing imports torch, but the bridge subprocesses are part of the run
def test_short_chaos_soak_changes_nothing(tmp_path):
    out = tmp_path / "chaos.json"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "chaos.py"),
            "--steps",
            "20",
            "--kills",
            "5",
            "--seed",
            "0",
            "--workdir",
            str(tmp_path / "work"),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=3000,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    r = json.loads(out.read_text())
    assert r["ok"] and "CHECK: PASS" in proc.stdout
    kinds = sorted(e["kind"] for e in r["events"])
    assert kinds == ["broker", "broker_mid_reply", "learner", "learner_mid_checkpoint", "worker_mid_reply"]
    assert all(e["killed_at"] > 0 and e["recovery_s"] is not None for e in r["events"])
    mid_ckpt = next(e for e in r["events"] if e["kind"] == "learner_mid_checkpoint")
    assert mid_ckpt["note"] == f"uncommitted {mid_ckpt['step']}.orbax-checkpoint-tmp"  # killed inside the save
    assert r["states"]["differ"] == [] and r["states"]["arrays"] > 100  # every array of the state, bit for bit
    m = r["metrics"]
    assert m["rows"] == 20 and m["lost"] == [] and m["duplicated"] == [] and m["in_order"]
    assert m["values"] > 500 and m["values_differ"] == 0
    assert r["checkpoints"]["half_written"] == [] and r["checkpoints"]["complete"] == ["18", "19", "20"]
    assert r["times"]["starts"] == 3  # the first start and one restart per trainer kill
    assert "[grpo] resumed from step" in (tmp_path / "work" / "chaos.log").read_text()
