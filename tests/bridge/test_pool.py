"""A remote bridge pool: live ``python -m sam2_bridge.serve --address tcp://127.0.0.1:PORT
--allow-remote --token-file F`` processes on this machine's loopback, with the synthetic segmenter (no torch).

- one bridge SIGKILLed while it holds a reply: every request is answered once, with its own masks, and the held
  one by the other bridge (``benchmarks/pool_faults.py``, the figure of BENCHMARKS.md "Reliability");
- a bridge with another token, one speaking another protocol version, and a slow one are dropped from the pool
  with a warning naming each, and every request is answered by the good one; a slow bridge's late reply is
  discarded, never used; a pool of bad bridges only fails with ``no_bridge`` naming each.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq

from omnir1_jax.runtime.bridge import open_bridge
from sam2_bridge.server.worker import REPLY_DELAY_ENV
from sam2_bridge.wire import protocol
from sam2_bridge.wire.client import BridgeClient, BridgeError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import pool_faults  # noqa: E402


def test_a_bridge_killed_mid_request_loses_no_reply_and_answers_none_twice(tmp_path):
    out = tmp_path / "pool.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "pool_faults.py"), "--requests", "100", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["requests"] == 100 and r["answered"] == 100 and r["failed"] == []
    assert r["mismatched"] == 0 and r["duplicates"] == 0  # each request got its own masks, each id once
    assert r["held_request"] and r["held_request_answered_by"] == "B"  # the request A held went to B
    assert r["by_bridge"]["A (killed)"] >= 1 and r["by_bridge"]["B"] >= 50
    assert r["by_bridge"]["A (killed)"] + r["by_bridge"]["B"] == 100
    assert r["client_stats"]["resent"] >= 1 and r["client_stats"]["dropped"] == 0  # killed is not dropped


class _OtherVersionBridge:
    """A fake bridge that answers every request with a reply framed as protocol version 99."""

    def __init__(self, address: str):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(address)
        self.answered = 0
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop:
            if not self.sock.poll(50):
                continue
            client, payload = self.sock.recv_multipart()
            env = protocol.read_envelope(payload)
            self.sock.send_multipart(
                [client, protocol.encode_message({"id": env.id, "type": env.type, "ok": True, "body": {}}, version=99)]
            )
            self.answered += 1

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        self.sock.close()
        self.ctx.term()


@pytest.fixture(scope="module")
def bridges(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("pool")
    token = pool_faults.write_token(str(tmp_path / "good.token"), "the-pool-token")
    other = pool_faults.write_token(str(tmp_path / "other.token"), "another-token")
    good, wrong, slow, fake = (f"tcp://127.0.0.1:{pool_faults.free_port()}" for _ in range(4))
    procs = [
        pool_faults.start_bridge(good, token, str(tmp_path / "good.log")),
        pool_faults.start_bridge(wrong, other, str(tmp_path / "wrong.log")),
        pool_faults.start_bridge(slow, token, str(tmp_path / "slow.log"), **{REPLY_DELAY_ENV: "3"}),
    ]
    fake_bridge = _OtherVersionBridge(fake)
    try:
        pool_faults.wait_ready(good, token)
        pool_faults.wait_ready(wrong, other)
        pool_faults.wait_ready(slow, token)
        yield {"good": good, "wrong": wrong, "slow": slow, "fake": fake, "token": token, "fake_bridge": fake_bridge}
    finally:
        fake_bridge.close()
        for p in procs:
            p.terminate()
            p.wait(timeout=30)


def test_wrong_token_other_version_and_slow_bridges_are_dropped_and_the_run_goes_on(bridges, caplog):
    order = [bridges[k] for k in ("wrong", "fake", "slow", "good")]
    caplog.set_level(logging.WARNING, logger="sam2_bridge.wire.client")
    client = BridgeClient(order, deadline_s=60, attempt_timeout_s=1.0, token_file=bridges["token"])
    try:
        futures, expect = [], []
        for i in range(12):
            body, masks = pool_faults.request_for(i)
            futures.append(client.submit("segment", body))
            expect.append(masks)
        for f, masks in zip(futures, expect):
            np.testing.assert_array_equal(protocol.SegmentReply.from_body(f.result(timeout=60)).masks, masks)
        assert {f.address for f in futures} == {bridges["good"]}
        assert len({f.req_id for f in futures}) == 12
        dropped = client.pool.dropped
        assert set(dropped) == {bridges["wrong"], bridges["fake"], bridges["slow"]}
        assert dropped[bridges["wrong"]] == "wrong token (unauthorized)"
        assert dropped[bridges["fake"]].startswith("wrong protocol version (protocol version 99")
        assert dropped[bridges["slow"]] == "slow: no answer within attempt_timeout_s = 1 s"
        warned = [r.getMessage() for r in caplog.records if "dropped from the pool" in r.getMessage()]
        assert len(warned) == 3 and all(any(a in w for w in warned) for a in dropped)
        assert warned[-1].endswith(f"1 of 4 bridge(s) left ({bridges['good']})")
        # the slow bridge answers its held request ~3 s after it got it: discarded, never used
        end = time.monotonic() + 30
        while client.stats["discarded_from_dropped"] < 1 and time.monotonic() < end:
            time.sleep(0.05)
        assert client.stats["discarded_from_dropped"] >= 1 and client.stats["dropped"] == 3
        assert bridges["fake_bridge"].answered >= 1
        later = client.submit("segment", pool_faults.request_for(20)[0]).result(timeout=60)  # the pool still serves
        assert protocol.SegmentReply.from_body(later).masks.any()
    finally:
        client.close()


def test_a_pool_of_only_bad_bridges_fails_with_no_bridge_naming_each(bridges):
    client = BridgeClient(
        [bridges["wrong"], bridges["fake"]], deadline_s=30, attempt_timeout_s=5, token_file=bridges["token"]
    )
    try:
        with pytest.raises(BridgeError) as err:
            client.submit("segment", pool_faults.request_for(0)[0]).result(timeout=60)
    finally:
        client.close()
    assert err.value.code == "no_bridge"
    msg = str(err.value)
    assert f"{bridges['wrong']} (wrong token (unauthorized))" in msg and bridges["fake"] in msg


@pytest.mark.slow
def test_a_single_bridge_is_never_dropped_for_slowness(bridges, tmp_path):
    """One address: nothing to fail over to, so an attempt timeout re-sends to it, as before pools existed (a
    bridge of its own: the pool's slow bridge still works off what the other tests sent it)."""
    address = f"tcp://127.0.0.1:{pool_faults.free_port()}"
    slow = pool_faults.start_bridge(address, bridges["token"], str(tmp_path / "slow1.log"), **{REPLY_DELAY_ENV: "3"})
    try:
        pool_faults.wait_ready(address, bridges["token"])
        client = BridgeClient(address, deadline_s=30, attempt_timeout_s=1.0, retries=5, token_file=bridges["token"])
        try:
            body, masks = pool_faults.request_for(3)
            reply = client.submit("segment", body).result(timeout=60)
        finally:
            client.close()
    finally:
        slow.terminate()
        slow.wait(timeout=30)
    np.testing.assert_array_equal(protocol.SegmentReply.from_body(reply).masks, masks)
    assert client.pool.dropped == {} and client.stats["resent"] >= 1


def test_the_runs_pool_drops_a_slow_bridge_after_bridge_attempt_timeout_s(bridges, tmp_path):
    """``bridge.attempt_timeout_s`` reaches the run's client (``runtime.bridge.open_bridge``): the pool drops the
    slow bridge after one attempt and the run's queries are answered by the other, long before ``timeout_s``."""
    from omnir1_jax.config import BridgeSpec

    spec = BridgeSpec(
        start=False,
        addresses=(bridges["slow"], bridges["good"]),
        token_file=bridges["token"],
        timeout_s=60.0,
        attempt_timeout_s=1.0,
    )
    bridge = open_bridge(spec, str(tmp_path), wait_s=60)
    try:
        assert bridge.client.attempt_timeout_s == 1.0
        futures = [bridge.client.submit("segment", pool_faults.request_for(i)[0]) for i in range(4)]
        assert {f.result(timeout=30) is not None and f.address for f in futures} == {bridges["good"]}
        assert list(bridge.client.pool.dropped) == [bridges["slow"]]
    finally:
        bridge.close()
