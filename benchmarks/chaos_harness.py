"""The fault injector of ``benchmarks/chaos.py``: runs the trainer as a subprocess, SIGKILLs what a plan says
when the plan says it, restarts what it killed, and records every kill and how long the run took to recover.

What it kills (each by pid, with SIGKILL):

- ``worker``: the bridge's worker process (the broker restarts it; a request it held is answered
  ``worker_died`` and re-sent by the client);
- ``broker``: the bridge server process started by the trainer (the trainer's client restarts it and re-sends);
- ``learner``: the trainer itself (restarted by this harness; it resumes from its newest checkpoint);
- ``worker_mid_reply`` / ``broker_mid_reply``: the same, while the worker holds a computed reply before
  sending it (the worker's test hook, ``SAM2_BRIDGE_TEST_REPLY_HOLD_FILE``, see ``sam2_bridge.server.worker``);
- ``learner_mid_checkpoint``: the trainer while it writes a checkpoint, between its files and Orbax's commit
  (the test hook ``OMNIR1_TEST_CHECKPOINT_DELAY_STEP``, see ``omnir1_jax/runtime/checkpoint.py``).

An event at step ``s`` fires once the trainer has printed its progress line for GRPO step ``s`` (a
``learner_mid_checkpoint`` event: once it holds the save of step ``s``). A kill's recovery time runs from the
SIGKILL until the run completes a step it had not completed before the kill (for a trainer kill: the restart,
the resume and the steps redone).

Processes are found through psutil (parent pids and command lines) and the bridge's log (the pid of the
worker that reported ready); this is Linux-only, like the trainer's bridge supervision.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import re
import signal
import subprocess
import threading
import time

import psutil

PROGRESS = re.compile(r"^\[grpo\] \[[#-]+\] (\d+)/(\d+)")
CKPT_HOLD = "[checkpoint] test delay"
KINDS = ("learner_mid_checkpoint", "broker_mid_reply", "worker_mid_reply", "learner", "broker", "worker")


@dataclasses.dataclass
class Event:
    step: int
    kind: str
    delay_s: float  # pause between the trigger and the kill (the random-time kinds)
    killed_at: float = 0.0
    done_before: int = 0  # the last step completed before the kill
    recovery_s: float | None = None
    note: str = ""


class ChaosError(RuntimeError):
    """The run under faults failed in a way the harness did not cause (message: what and the log's tail)."""


def children(pid: int, needle: str) -> list[int]:
    """Live children of ``pid`` whose command line contains ``needle``."""
    try:
        kids = psutil.Process(pid).children()
    except psutil.Error:
        return []
    out = []
    for child in kids:
        with contextlib.suppress(psutil.Error):  # exited since the listing
            if child.status() != psutil.STATUS_ZOMBIE and needle in " ".join(child.cmdline()):
                out.append(child.pid)
    return out


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_gone(pids, timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while any(alive(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.05)


def kill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


class Trainer:
    """One trainer process: its output lines on a queue (and appended to ``log_path``)."""

    def __init__(self, cmd: list[str], env: dict, cwd: str, log_path: str):
        self.log = open(log_path, "a", buffering=1)
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        self.lines: queue.Queue = queue.Queue()
        self.tail: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.log.write(line)
            self.tail = (self.tail + [line])[-60:]
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def broker(self) -> int | None:
        found = children(self.proc.pid, "sam2_bridge.serve")
        return found[0] if found else None

    def kill_all(self) -> None:
        """SIGKILL the trainer's whole process group (cleanup when the harness itself stops)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


class Harness:
    """Runs ``cmd`` to completion under the faults of ``plan`` (events sorted by step)."""

    def __init__(
        self,
        cmd: list[str],
        env: dict,
        cwd: str,
        out_dir: str,
        hold_file: str,
        plan: list[Event],
        log_path: str,
        hold_timeout_s: float = 120.0,
    ):
        self.cmd, self.env, self.cwd, self.out_dir = cmd, env, cwd, out_dir
        self.hold_file, self.plan, self.log_path = hold_file, list(plan), log_path
        self.hold_timeout_s = hold_timeout_s
        self.pending = list(plan)
        self.done = 0  # the highest GRPO step completed by any incarnation of the trainer
        self.recovering: list[Event] = []
        self.starts = 0

    # ---------------------------------------------------------------------------------------- trainer
    def _start(self) -> Trainer:
        env = dict(self.env)
        nxt = next((e for e in self.pending if e.kind == "learner_mid_checkpoint"), None)
        if nxt is not None:  # this incarnation holds the save of that step open, to be killed in it
            env.update(OMNIR1_TEST_CHECKPOINT_DELAY_S="600", OMNIR1_TEST_CHECKPOINT_DELAY_STEP=str(nxt.step))
        self.starts += 1
        return Trainer(self.cmd, env, self.cwd, self.log_path)

    def _worker_pid(self, broker: int, timeout_s: float = 60.0) -> int | None:
        """The broker's worker that reported ready (its pid from the bridge log), once there is one."""
        log = os.path.join(self.out_dir, "bridge.log")
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            try:
                with open(log, errors="replace") as f:
                    ready = re.findall(r"worker \d+ ready \(pid (\d+)", f.read())
            except OSError:
                ready = []
            if ready and int(ready[-1]) in children(broker, "sam2_bridge.server.worker"):
                return int(ready[-1])
            time.sleep(0.05)
        return None

    def _broker_pid(self, t: Trainer, timeout_s: float = 60.0) -> int | None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            pid = t.broker()
            if pid is not None:
                return pid
            time.sleep(0.05)
        return None

    # ------------------------------------------------------------------------------------------ kills
    def _kill_trainer(self, t: Trainer, e: Event) -> Trainer:
        family = [p for p in [t.broker()] if p] + [
            w for b in [t.broker()] if b for w in children(b, "sam2_bridge.server.worker")
        ]
        e.killed_at = time.monotonic()
        kill(t.proc.pid)
        t.proc.wait()
        end = time.monotonic() + 30
        while time.monotonic() < end:  # drain what it printed before it died
            try:
                if t.lines.get(timeout=1.0) is None:
                    break
            except queue.Empty:
                continue
        wait_gone(family)  # its bridge gets SIGTERM with it (PR_SET_PDEATHSIG) and stops its workers
        return self._start()

    def _hold_reply(self) -> tuple[int, str] | None:
        """Arm the worker's hold hook and wait until a worker holds a reply: (worker pid, request id)."""
        held = self.hold_file + ".held"
        if os.path.exists(held):
            os.remove(held)
        open(self.hold_file, "w").close()
        end = time.monotonic() + self.hold_timeout_s
        while not os.path.exists(held) and time.monotonic() < end:
            time.sleep(0.005)
        if not os.path.exists(held):
            if os.path.exists(self.hold_file):
                os.remove(self.hold_file)
            return None
        pid, req_id = open(held).read().split()
        os.remove(held)
        return int(pid), req_id

    def _fire(self, t: Trainer, e: Event) -> Trainer:
        e.done_before = self.done
        if e.kind == "learner":
            time.sleep(e.delay_s)
            return self._kill_trainer(t, e)
        if e.kind in ("worker", "broker"):
            time.sleep(e.delay_s)
            broker = self._broker_pid(t)
            target = broker if e.kind == "broker" or broker is None else self._worker_pid(broker)
            if target is None:
                raise ChaosError(f"no bridge {e.kind} to kill at step {e.step}")
            e.killed_at = time.monotonic()
            kill(target)
            e.note = f"pid {target}"
            return t
        held = self._hold_reply()  # worker_mid_reply, broker_mid_reply
        if held is None:
            raise ChaosError(f"no bridge reply was held within {self.hold_timeout_s} s at step {e.step}")
        worker, req_id = held
        e.note = f"request {req_id}"
        e.killed_at = time.monotonic()
        if e.kind == "worker_mid_reply":
            kill(worker)
        else:
            broker = self._broker_pid(t)
            kill(broker)
            kill(worker)  # the orphan would sleep out its hold; it dies with its server
        return t

    # ------------------------------------------------------------------------------------------- loop
    def run(self, timeout_s: float = 7200.0) -> list[Event]:
        """Run to the trainer's ``[done]``; returns the plan with kill times and recoveries filled in."""
        t = self._start()
        end = time.monotonic() + timeout_s
        try:
            while True:
                if time.monotonic() > end:
                    raise ChaosError(f"the run did not finish within {timeout_s} s")
                try:
                    line = t.lines.get(timeout=1.0)
                except queue.Empty:
                    continue
                if line is None:  # the trainer exited by itself
                    rc = t.proc.wait()
                    if rc == 0 and not self.pending:
                        return self.plan
                    raise ChaosError(
                        f"the trainer exited with {rc} ({len(self.pending)} kill(s) still planned); "
                        f"its last lines:\n{''.join(t.tail)}"
                    )
                m = PROGRESS.match(line)
                if m:
                    step = int(m.group(1))
                    self._progress(step)
                    if (
                        self.pending
                        and self.pending[0].kind != "learner_mid_checkpoint"
                        and step >= self.pending[0].step
                    ):
                        t = self._fire(t, self.pending.pop(0))
                elif CKPT_HOLD in line and self.pending and self.pending[0].kind == "learner_mid_checkpoint":
                    e = self.pending.pop(0)
                    e.done_before = self.done
                    partial = [
                        n
                        for n in os.listdir(os.path.join(self.out_dir, "checkpoints"))
                        if n.startswith(f"{e.step}.orbax-checkpoint-tmp")
                    ]
                    e.note = f"uncommitted {partial[0]}" if partial else "no partial directory seen"
                    t = self._kill_trainer(t, e)
        finally:
            if t.proc.poll() is None:
                t.kill_all()
            for p in (self.hold_file, self.hold_file + ".held"):
                if os.path.exists(p):
                    os.remove(p)

    def _progress(self, step: int) -> None:
        if step > self.done:
            self.done = step
            now = time.monotonic()
            for e in self.plan:
                if e.killed_at and e.recovery_s is None and step > e.done_before:
                    e.recovery_s = now - e.killed_at
