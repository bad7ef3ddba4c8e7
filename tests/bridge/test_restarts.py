"""Restarts, with live ``python -m sam2_bridge.serve`` processes: a worker that cannot start is
retried with backoff and the server then exits non-zero with the worker's first error; a client
notices a SIGKILLed server restarted on the same address and re-sends what it held."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from sam2_bridge.server.synthetic import SyntheticSegmenter
from sam2_bridge.wire import protocol
from sam2_bridge.wire.client import BridgeClient, BridgeError
from sam2_bridge.wire.constants import BACKGROUND, PALETTE
from sam2_bridge.wire.pool import LocalServer

pytestmark = pytest.mark.torch  # the failing worker imports torch and sam2 before it fails


def test_a_worker_that_cannot_start_is_retried_with_backoff_then_the_server_exits(tmp_path):
    argv = [
        sys.executable,
        "-m",
        "sam2_bridge.serve",
        "--address",
        f"ipc://{tmp_path}/x.sock",
        "--workers",
        "1",
        "--device",
        "cpu",
        "--segmenter",
        "sam2",
        "--sam2-config",
        "configs/nope.yaml",
        "--worker-start-attempts",
        "3",
        "--worker-start-backoff-s",
        "0.2",
    ]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert r.returncode == 3, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: worker 0 (cpu) failed to start 3 times in a row; its first error: ")
    assert "nope.yaml" in last  # the worker's own error, not just an exit status
    assert r.stderr.count("failed to start:") == 3  # exactly 3 starts, each reported once
    assert "restarting in 0.2 s" in r.stderr and "restarting in 0.4 s" in r.stderr  # the pause doubles


def test_a_local_server_whose_workers_cannot_start_fails_fast_instead_of_restarting(tmp_path):
    server = LocalServer(
        [
            "--address",
            f"ipc://{tmp_path}/y.sock",
            "--workers",
            "1",
            "--device",
            "cpu",
            "--segmenter",
            "sam2",
            "--sam2-config",
            "configs/nope.yaml",
            "--worker-start-attempts",
            "1",
        ],
        log_path=f"{tmp_path}/y.log",
    ).start()
    client = BridgeClient(server.address, deadline_s=600, local_server=server)
    try:
        with pytest.raises(BridgeError) as e:
            client.wait_ready(600)
        assert e.value.code == "server_failed"
        assert server.restarts == 0
    finally:
        client.close()
        server.stop()


def _serve(address, log):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sam2_bridge.serve",
            "--address",
            address,
            "--workers",
            "1",
            "--device",
            "cpu",
            "--segmenter",
            "synthetic",
            "--grounder",
            "synthetic",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def test_client_notices_a_sigkilled_server_restarted_on_the_same_address(tmp_path):
    """Requests held by an external server (its worker stopped, so none can finish) when the server is
    SIGKILLed are re-sent to the new server on the same address, long before their deadline (120 s)."""
    address = f"ipc://{tmp_path}/ext.sock"
    log = open(tmp_path / "ext.log", "ab")
    first = _serve(address, log)
    second = None
    clip = np.full((2, 16, 16, 3), BACKGROUND, np.uint8)
    clip[:, 2:8, 2:8] = PALETTE["red"]
    clip[:, 9:15, 8:14] = PALETTE["blue"]
    dets = ([0, 1], [0, 1], [[2, 2, 8, 8], [8, 9, 14, 15]])
    expect, _ = SyntheticSegmenter().segment(clip, 2, *dets)
    assert expect[0].any() and expect[1].any() and not (expect[0] & expect[1]).any()
    body = protocol.SegmentRequest(clip, 2, *dets).to_body()
    client = BridgeClient(address, deadline_s=120, attempt_timeout_s=120, retries=2)
    try:
        worker = client.wait_ready(120)["workers"][0]["pid"]
        os.kill(worker, signal.SIGSTOP)
        futures = [client.submit("segment", body) for _ in range(6)]
        for _ in range(1000):  # until one is at the stopped worker and five wait in the broker
            if client.health()["queued"] == 5:
                break
        first.kill()
        first.wait()
        os.kill(worker, signal.SIGKILL)
        second = _serve(address, log)
        replies = [protocol.SegmentReply.from_body(f.result()) for f in futures]  # BridgeTimeout after 120 s without
        for f, r in zip(futures, replies):
            assert f.attempts == 2  # the first went down with the server, the second was answered
            np.testing.assert_array_equal(r.masks, expect)
    finally:
        client.close()
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(30)
        log.close()
