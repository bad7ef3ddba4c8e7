"""A remote bridge pool that loses no reply: N requests over two tcp bridges, one SIGKILLed mid-request.

    .venv/bin/python benchmarks/pool_faults.py --requests 100 [--json runs/pool_faults.json]

Two ``python -m sam2_bridge.serve --address tcp://127.0.0.1:PORT --allow-remote --token-file F`` processes with
the synthetic segmenter (on this machine's loopback, as a pool on other machines would be reached) and one
:class:`~sam2_bridge.wire.client.BridgeClient` over both. Every request is a ``segment`` of its own clip (a red
square at a position given by the request's index), so each reply can be checked against its own request. At
most ``--window`` requests are in flight. Halfway, bridge A is told (its worker's test hook,
``SAM2_BRIDGE_TEST_REPLY_HOLD_FILE``, see ``sam2_bridge.server.worker``) to hold its next reply; while it holds it,
A's server is SIGKILLed. The client notices the dropped connection and re-sends what A held to B.

Prints (and writes with ``--json``): requests answered, failed, answered with another request's masks
(``mismatched``), request ids answered more than once (``duplicates``), the answers per bridge, which bridge
answered the held request, the seconds from the kill to that answer, and the client's counters.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sam2_bridge.server.worker import REPLY_DELAY_ENV, REPLY_HOLD_ENV  # noqa: E402
from sam2_bridge.wire import protocol  # noqa: E402
from sam2_bridge.wire.client import BridgeClient  # noqa: E402
from sam2_bridge.wire.constants import BACKGROUND, PALETTE  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_bridge(address: str, token_file: str, log_path: str, **env_extra: str) -> subprocess.Popen:
    """``python -m sam2_bridge.serve`` on ``address`` (remote-capable, token auth, synthetic models)."""
    env = dict(os.environ, **env_extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [ROOT, env.get("PYTHONPATH", "")] if p)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sam2_bridge.serve",
                "--address",
                address,
                "--allow-remote",
                "--token-file",
                token_file,
                "--workers",
                "1",
                "--device",
                "cpu",
                "--segmenter",
                "synthetic",
                "--grounder",
                "synthetic",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )


def write_token(path: str, token: str) -> str:
    with open(path, "w") as f:
        f.write(token)
    os.chmod(path, 0o600)
    return path


def request_for(i: int) -> tuple[dict, np.ndarray]:
    """The ``segment`` body of request ``i`` and the masks it must get back: a 4x4 red square at a position
    that only request ``i`` uses, on both frames of a 2-frame 16x16 clip."""
    y, x = divmod(i % 144, 12)
    clip = np.full((2, 16, 16, 3), BACKGROUND, np.uint8)
    clip[:, y : y + 4, x : x + 4] = PALETTE["red"]
    expect = np.zeros((1, 2, 16, 16), bool)
    expect[:, :, y : y + 4, x : x + 4] = True
    body = protocol.SegmentRequest(clip, 1, [0], [0], [[x, y, x + 4, y + 4]]).to_body()
    return body, expect


def wait_ready(address: str, token_file: str, timeout_s: float = 120.0) -> None:
    with BridgeClient(address, deadline_s=timeout_s, token_file=token_file) as c:
        c.wait_ready(timeout_s)


def run(requests: int = 100, window: int = 8, workdir: str | None = None) -> dict:
    """The scenario of the module docstring; returns the report."""
    workdir = workdir or tempfile.mkdtemp(prefix="pool_faults_")
    token = write_token(os.path.join(workdir, "bridge.token"), "pool-" + os.urandom(12).hex())
    hold = os.path.join(workdir, "hold")
    a_addr, b_addr = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    a = start_bridge(a_addr, token, os.path.join(workdir, "a.log"), **{REPLY_DELAY_ENV: "120", REPLY_HOLD_ENV: hold})
    b = start_bridge(b_addr, token, os.path.join(workdir, "b.log"))
    killed: dict = {}

    def killer() -> None:  # SIGKILL A's server while its worker holds a reply
        end = time.monotonic() + 120
        while not os.path.exists(hold + ".held") and time.monotonic() < end:
            time.sleep(0.01)
        if os.path.exists(hold + ".held"):
            pid, req_id = open(hold + ".held").read().split()
            killed.update(worker=int(pid), req_id=req_id)
        os.kill(a.pid, signal.SIGKILL)
        killed["at"] = time.monotonic()

    client = None
    try:
        wait_ready(a_addr, token)
        wait_ready(b_addr, token)
        client = BridgeClient([a_addr, b_addr], deadline_s=120, attempt_timeout_s=60, token_file=token)
        thread = threading.Thread(target=killer, daemon=True)
        futures: dict[int, concurrent.futures.Future] = {}
        answered_at: dict[str, float] = {}
        expected: dict[int, np.ndarray] = {}
        for i in range(requests):
            if i == requests // 2:
                open(hold, "w").close()  # arm: A's next reply is held, then A is killed
                thread.start()
            while sum(not f.done() for f in futures.values()) >= window:
                concurrent.futures.wait(
                    [f for f in futures.values() if not f.done()], return_when=concurrent.futures.FIRST_COMPLETED
                )
            body, expected[i] = request_for(i)
            futures[i] = client.submit("segment", body)
            futures[i].add_done_callback(lambda f: answered_at.setdefault(f.req_id, time.monotonic()))
        concurrent.futures.wait(list(futures.values()), timeout=300)
        thread.join(timeout=130)
        report = _report(futures, expected, a_addr, b_addr, killed, answered_at, client.stats)
    finally:
        if client is not None:
            client.close()
        for proc in (a, b):
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=30)
        if killed.get("worker"):  # the orphaned worker of A, still holding its reply
            with contextlib.suppress(ProcessLookupError):
                os.kill(killed["worker"], signal.SIGKILL)
    return report


def _report(futures, expected, a_addr, b_addr, killed, answered_at, stats) -> dict:
    answered, failed, mismatched, by_bridge, ids = 0, [], 0, {a_addr: 0, b_addr: 0}, []
    held_by = None
    for i, f in futures.items():
        if f.exception() is not None:
            failed.append(f"{i}: {f.exception()}")
            continue
        answered += 1
        ids.append(f.req_id)
        by_bridge[f.address] += 1
        masks = protocol.SegmentReply.from_body(f.result()).masks
        mismatched += int(not np.array_equal(masks, expected[i]))
        if f.req_id == killed.get("req_id"):
            held_by = f.address
    recovery = None
    if killed.get("req_id") in answered_at and "at" in killed:
        recovery = answered_at[killed["req_id"]] - killed["at"]
    return {
        "requests": len(futures),
        "answered": answered,
        "failed": failed,
        "mismatched": mismatched,
        "duplicates": len(ids) - len(set(ids)),
        "by_bridge": {"A (killed)": by_bridge[a_addr], "B": by_bridge[b_addr]},
        "held_request": killed.get("req_id"),
        "held_request_answered_by": "B" if held_by == b_addr else ("A" if held_by == a_addr else None),
        "kill_to_answer_s": recovery,
        "client_stats": stats,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--window", type=int, default=8, help="most requests in flight")
    ap.add_argument("--json", help="also write the report here")
    args = ap.parse_args(argv)
    if args.requests < 2 or args.window < 1:
        ap.error("--requests must be >= 2 and --window >= 1")
    t0 = time.monotonic()
    report = run(args.requests, args.window)
    report["seconds"] = round(time.monotonic() - t0, 2)
    print(json.dumps(report, indent=1))
    ok = (
        report["answered"] == report["requests"]
        and not report["mismatched"]
        and not report["duplicates"]
        and report["held_request_answered_by"] == "B"
    )
    print(
        f"pool: {report['answered']}/{report['requests']} answered, {report['duplicates']} duplicates, "
        f"{report['mismatched']} mismatched; held request answered by {report['held_request_answered_by']} "
        f"{report['kill_to_answer_s'] or float('nan'):.2f} s after the kill: {'OK' if ok else 'FAILED'}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
