"""Bounded cost per request, against a live ``python -m sam2_bridge.serve`` (synthetic segmenter and
grounder): over-budget requests get ``too_large`` from the broker without reaching a worker, hostile
integers / paths / images get their proper codes, not ``internal``, and expired work is dropped before
it starts."""

import os
import signal
import struct
import time
import zlib

import msgpack
import numpy as np
import psutil
import pytest
import zmq
from PIL import Image

from sam2_bridge.wire import protocol
from sam2_bridge.wire.client import BridgeClient
from sam2_bridge.wire.pool import LocalServer

MAX_QUEUED = 250_000
MAX_REPLY = 100_000


def _png(path, width, height, rows=None):
    """A valid 1-bit PNG of any declared size, written by hand (``rows``: how many rows of data to store; a
    header-only file when 0): cheap to make, expensive to decode."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    rows = height if rows is None else rows
    raw = (b"\x00" + b"\x00" * ((width + 7) // 8)) * rows
    idat = chunk(b"IDAT", zlib.compress(raw, 9)) if rows else b""
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b""))


def _rss_mb(pid):
    return psutil.Process(pid).memory_info().rss / 2**20


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("budget")
    root = tmp / "root"
    vid = root / "JPEGImages" / "vid"
    os.makedirs(vid)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(vid / "small.png")
    _png(vid / "big.png", 12000, 12000)  # 144 Mpx: 432 MB as RGB, ~20 KB on disk
    _png(vid / "bomb.png", 30000, 30000, rows=0)  # 900 Mpx: over twice Pillow's own limit
    server = LocalServer(
        [
            "--address",
            f"ipc://{tmp}/b.sock",
            "--workers",
            "1",
            "--device",
            "cpu",
            "--segmenter",
            "synthetic",
            "--grounder",
            "synthetic",
            "--data-root",
            str(root),
            "--max-queued-bytes",
            str(MAX_QUEUED),
            "--max-reply-bytes",
            str(MAX_REPLY),
        ],
        log_path=f"{tmp}/b.log",
    ).start()
    client = BridgeClient(server.address, deadline_s=120)
    try:
        client.wait_ready(120)
        yield client, server, root
    finally:
        client.close()
        server.stop()


class Raw:
    """One DEALER socket: send requests, read replies (each a decoded map)."""

    def __init__(self, address):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(address)

    def send(self, payload):
        self.sock.send(payload)

    def recv(self, timeout_ms=120000):
        assert self.sock.poll(timeout_ms), "no reply"
        return protocol.decode_message(self.sock.recv(), 1 << 30)

    def ask(self, payload):
        self.send(payload)
        return self.recv()

    def close(self):
        self.sock.close()


def _worker(client):
    return client.health()["workers"][0]


def _clip(t=1, h=8, w=8):
    return np.zeros((t, h, w, 3), np.uint8)


def _segment(req_id, clip, rollouts, det_rollout=(), det_frame=(), boxes=None, **kw):
    d = len(det_rollout)
    body = {
        "clip": {"array": clip},
        "num_rollouts": rollouts,
        "det_rollout": np.asarray(det_rollout, np.int64),
        "det_frame": np.asarray(det_frame, np.int64),
        "det_boxes": np.asarray(boxes if boxes is not None else [[0, 0, 4, 4]] * d, np.float32).reshape(-1, 4),
    }
    return protocol.make_request(req_id, "segment", body, **kw)


def _ref(root, names):
    return {"ref": {"root": str(root), "video": "vid", "names": list(names)}}


def test_over_budget_requests_get_too_large_from_the_broker_and_cost_nothing_else(bridge):
    client, server, root = bridge
    raw = Raw(server.address)
    before = _worker(client)
    rss0 = _rss_mb(before["pid"])
    deep_maps = msgpack.packb({"id": "m2", "type": "segment", "body": {"x": [[{}] * 4000] * 500}})
    cases = {
        "rollouts": _segment("a", _clip(), 100_000),  # ~300 bytes asking for 100,000 masks
        "empty rollouts": protocol.make_request(
            "b", "ground_and_segment", {"clip": {"array": _clip()}, "rollouts": [[]] * 30_000}
        ),
        "rollouts > 64": protocol.make_request(
            "c", "ground_and_segment", {"clip": {"array": _clip()}, "rollouts": [[]] * 65}
        ),
        "3000 frame names": protocol.make_request(
            "d", "ground", {"frames": _ref(root, ["small.png"] * 3000), "keyframes": [[0, "x"]]}
        ),
        "2M empty maps": protocol.make_request("e", "segment", {"junk": [{}] * 2_000_000}),
        "nested maps": b"S2BR" + struct.pack("<HHQ", 1, 0, len(deep_maps)) + deep_maps,
        "keyframes": protocol.make_request(
            "g", "ground", {"frames": {"array": _clip()}, "keyframes": [[0, "x"]] * 600}
        ),
        "detections": _segment("h", _clip(), 1, [0] * 1100, [0] * 1100),
        "reply bytes": _segment("i", _clip(4, 64, 64), 64),  # 64 x 4 x 64 x 64 bits = 131 KB > 100 KB
        "queued bytes": _segment("j", _clip(1, 200, 500), 1),  # 300 KB > --max-queued-bytes
    }
    for name, payload in cases.items():
        reply = raw.ask(payload)
        assert reply["ok"] is False and reply["error"]["code"] == "too_large", (name, reply)
    after = _worker(client)
    assert after["served"] == before["served"] and after["pid"] == before["pid"]  # no worker saw any of them
    # a 12000 x 12000 PNG (432 MB as RGB) by reference: refused from its header, never decoded
    reply = raw.ask(protocol.make_request("k", "ground", {"frames": _ref(root, ["big.png"]), "keyframes": [[0, "x"]]}))
    assert reply["ok"] is False and reply["error"]["code"] == "too_large", reply
    assert "12000" in reply["error"]["message"]
    assert _rss_mb(before["pid"]) - rss0 < 100  # decoding it would have added >= 432 MB
    # within budget, the same server answers
    reply = raw.ask(_segment("ok", _clip(2), 2, [0, 1], [0, 1]))
    assert reply["ok"] is True and reply["body"]["masks"].shape == (2, 2, 8, 8)
    raw.close()


def test_queued_bytes_are_bounded(bridge):
    client, server, _ = bridge
    pid = _worker(client)["pid"]
    raw = Raw(server.address)
    clip = _clip(1, 200, 200)  # 120 KB per request
    os.kill(pid, signal.SIGSTOP)  # the worker holds the first request; the next ones wait in the broker
    try:
        for i in range(3):  # q0 goes to the worker, q1 and q2 wait: 240 KB queued <= 250 KB
            raw.send(_segment(f"q{i}", clip, 1))
        reply = raw.ask(_segment("q3", clip, 1))  # 360 KB would be queued: refused at once, retryable
        assert reply["id"] == "q3" and reply["error"]["code"] == "overloaded" and reply["error"]["retryable"]
        assert client.health()["queued_bytes"] == sum(len(_segment(f"q{i}", clip, 1)) for i in (1, 2))
        # a client told 'overloaded' pauses and re-sends instead of failing
        patient = BridgeClient(server.address, deadline_s=120, retries=5)
        future = patient.submit("segment", protocol.SegmentRequest(clip, 1, [], [], np.zeros((0, 4))).to_body())
        time.sleep(0.3)  # its first attempt is refused at once (the queue is full); its re-send waits 0.5 s
    finally:
        os.kill(pid, signal.SIGCONT)
    replies = {r["id"]: r for r in (raw.recv() for _ in range(3))}
    assert sorted(replies) == ["q0", "q1", "q2"] and all(r["ok"] for r in replies.values())
    assert protocol.SegmentReply.from_body(future.result()).masks.shape == (1, 1, 200, 200)
    assert future.attempts >= 2
    patient.close()
    raw.close()


def test_hostile_values_get_their_proper_codes(bridge):
    client, server, root = bridge
    raw = Raw(server.address)
    clip = _clip(2)
    cases = [
        (_segment("f", clip, 1, [0], [2**32 + 1]), "bad_field"),  # would wrap around to frame 1
        (_segment("r", clip, 1, [2**32], [0]), "bad_field"),  # would wrap around to rollout 0
        (_segment("n", clip, 2**62), "too_large"),
        (
            protocol.make_request("z", "ground", {"frames": _ref(root, ["small\0.png"]), "keyframes": [[0, "x"]]}),
            "bad_field",
        ),
        (
            protocol.make_request("b", "ground", {"frames": _ref(root, ["bomb.png"]), "keyframes": [[0, "x"]]}),
            "too_large",
        ),
    ]
    for payload, code in cases:
        reply = raw.ask(payload)
        assert reply["ok"] is False and reply["error"]["code"] == code, reply
    # in range, the same fields are served: frame 1 of 2, rollout 0 of 1
    reply = raw.ask(_segment("ok", clip, 1, [0], [1]))
    assert reply["ok"] is True and reply["body"]["masks"].shape == (1, 2, 8, 8)
    raw.close()


def test_expired_work_is_dropped_before_it_starts(bridge):
    client, server, _ = bridge
    w = _worker(client)
    raw = Raw(server.address)
    clip = _clip(2)
    os.kill(w["pid"], signal.SIGSTOP)
    try:
        raw.send(_segment("held", clip, 1))  # dispatched to the stopped worker, no deadline
        raw.send(_segment("late", clip, 1, deadline_s=0.3))  # waits in the broker past its deadline
        time.sleep(1.0)
    finally:
        os.kill(w["pid"], signal.SIGCONT)
    replies = {r["id"]: r for r in (raw.recv() for _ in range(2))}
    assert replies["held"]["ok"] is True
    assert replies["late"]["ok"] is False and replies["late"]["error"]["code"] == "expired", replies["late"]
    assert _worker(client)["served"] == w["served"] + 1  # only "held" reached the worker
    # expired while handed to a stopped worker: the worker drops it itself
    os.kill(w["pid"], signal.SIGSTOP)
    try:
        raw.send(_segment("late2", clip, 1, deadline_s=0.3))
        time.sleep(1.0)
    finally:
        os.kill(w["pid"], signal.SIGCONT)
    reply = raw.recv()
    assert reply["id"] == "late2" and reply["error"]["code"] == "expired", reply
    # with time left, the same request is served
    reply = raw.ask(_segment("fresh", clip, 1, deadline_s=60))
    assert reply["ok"] is True
    raw.close()
