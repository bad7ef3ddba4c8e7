"""The server end to end: malformed messages, a worker SIGKILLed mid-request, deadlines, a dead local server,
round-robin over two servers, frame references."""

import os
import signal
import struct
import time

import numpy as np
import pytest
import zmq

from sam2_bridge.wire import protocol
from sam2_bridge.wire.client import BridgeClient
from sam2_bridge.wire.constants import BACKGROUND, PALETTE
from sam2_bridge.wire.pool import LocalServer
from sam2_bridge.wire.protocol import FrameRef, Keyframe

pytestmark = pytest.mark.torch  # the workers import torch (SAM2)
MAX_BYTES = 2 * 1024 * 1024


def _clip(t=6, h=72, w=96):
    rng = np.random.default_rng(0)
    frames = np.clip(np.asarray(BACKGROUND) + rng.integers(-6, 7, (t, h, w, 3)), 0, 255).astype(np.uint8)
    for i in range(t):
        frames[i, 20:44, 8 + 8 * i : 32 + 8 * i] = PALETTE["red"]
        frames[i, 46:68, 60:84] = PALETTE["blue"]
    return frames


ROLLOUTS = [
    [Keyframe(0, "the red square"), Keyframe(3, "blue square"), Keyframe(5, "red")],
    [Keyframe(5, "square on the right")],
    [],
    [Keyframe(2, "the green circle")],
]


def _server(tmp, name, *extra):
    address = f"ipc://{tmp}/{name}.sock"
    server = LocalServer(
        [
            "--address",
            address,
            "--workers",
            "1",
            "--device",
            "cpu",
            "--torch-threads",
            "1",
            "--max-message-bytes",
            str(MAX_BYTES),
            *extra,
        ],
        log_path=f"{tmp}/{name}.log",
    )
    return server.start()


@pytest.fixture(scope="module")
def sam2_bridge(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bridge")
    server = _server(
        tmp,
        "sam2",
        "--segmenter",
        "sam2",
        "--sam2-config",
        "configs/sam2.1/sam2.1_hiera_t.yaml",
        "--sam2-image-size",
        "256",
        "--grounder",
        "synthetic",
    )
    client = BridgeClient(
        server.address, deadline_s=180, attempt_timeout_s=120, local_server=server, max_message_bytes=MAX_BYTES
    )
    try:
        client.wait_ready(180)
        yield client, server
    finally:
        client.close()
        server.stop()


def _raw_request(address, payload, timeout_ms=10000):
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    try:
        sock.send(payload)
        assert sock.poll(timeout_ms), "no reply"
        return protocol.decode_message(sock.recv(), 4 * MAX_BYTES)
    finally:
        sock.close()


def test_malformed_messages_get_error_replies_then_health_works(sam2_bridge, tmp_path):
    client, server = sam2_bridge
    good = protocol.make_request("abc", "health", {})
    huge = protocol.encode_message(
        {"id": "big", "type": "ground", "body": {"x": b"\0" * (MAX_BYTES + 10)}}, max_message_bytes=4 * MAX_BYTES
    )
    cases = [
        (good[:10], "truncated"),
        (good[:-3], "truncated"),
        (b"GET / HTTP/1.1\r\n\r\n", "bad_header"),
        (good[:4] + struct.pack("<H", 99) + good[6:], "bad_version"),
        (huge, "too_large"),
        (protocol.make_request("abc", "shutdown", {}), "bad_type"),
        (protocol.encode_message({"id": 5, "type": "health"}), "bad_field"),
        (b"S2BR" + struct.pack("<HHQ", 1, 0, 3) + b"\x93\x01\x02", "bad_body"),
        (
            protocol.make_request(
                "g1", "ground_and_segment", {"clip": {"array": np.zeros((2, 4, 4), np.uint8)}, "rollouts": []}
            ),
            "bad_field",
        ),
        (
            protocol.make_request(
                "g2",
                "ground",
                {"frames": {"ref": {"root": str(tmp_path), "video": "v", "names": ["0"]}}, "keyframes": [[0, "red"]]},
            ),
            "forbidden",
        ),
    ]  # this bridge has no --data-root: it reads no frame references
    for payload, code in cases:
        reply = _raw_request(server.address, payload)
        assert reply["ok"] is False and reply["error"]["code"] == code, (code, reply)
    info = client.health()
    assert info["version"] == protocol.PROTOCOL_VERSION and info["workers"][0]["ready"]


def test_sigkilled_worker_mid_request_is_retried_with_the_right_answer(sam2_bridge):
    client, server = sam2_bridge
    clip = _clip()
    first = client.submit_group(clip, ROLLOUTS).result()
    assert first.ok and first.attempts == 1, first.error
    assert first.n_detections == 4 and first.n_unparseable == 0
    assert not first.rollouts[2].masks.any() and not first.rollouts[3].masks.any()
    assert first.rollouts[0].masks.any()
    np.testing.assert_array_equal(first.rollouts[0].boxes[0], [[8, 20, 32, 44]])
    future = client.submit_group(clip, ROLLOUTS)
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and time.monotonic() < deadline:
        for w in client.health()["workers"]:
            if w["busy_with"]:
                os.kill(w["pid"], signal.SIGKILL)
                killed = w["pid"]
        time.sleep(0.01)
    assert killed is not None
    second = future.result()
    assert second.ok and second.attempts == 2, second.error
    for a, b in zip(first.rollouts, second.rollouts):
        np.testing.assert_array_equal(a.masks, b.masks)
        assert [x.tolist() for x in a.boxes] == [x.tolist() for x in b.boxes]
    info = client.health()
    assert info["workers"][0]["restarts"] == 1 and info["workers"][0]["pid"] != killed


def test_deadline_gives_an_explicit_timed_out_result(sam2_bridge):
    client, _ = sam2_bridge
    result = client.submit_group(_clip(), ROLLOUTS, deadline_s=0.05).result()
    assert result.status == "timed_out" and not result.ok and result.rollouts == ()
    with pytest.raises(Exception, match="timed_out"):
        result.raise_for_status()
    client.health()  # the late answer is dropped and the client keeps working


def test_segment_and_ground_by_frame_reference_match_in_process(tmp_path):
    from sam2_bridge.server.grounder import SyntheticBackend
    from sam2_bridge.server.sam2_reference import write_jpeg_clip
    from sam2_bridge.server.synthetic import SyntheticSegmenter

    os.makedirs(tmp_path / "JPEGImages" / "vid")
    frames = write_jpeg_clip(_clip(), str(tmp_path / "JPEGImages" / "vid"))
    ref = FrameRef(str(tmp_path), "vid", tuple(f"{i:05d}" for i in range(len(frames))))
    a = _server(tmp_path, "syn_a", "--segmenter", "synthetic", "--grounder", "synthetic", "--data-root", str(tmp_path))
    b = _server(tmp_path, "syn_b", "--segmenter", "synthetic", "--grounder", "synthetic", "--data-root", str(tmp_path))
    for s in (a, b):  # both ready before the pool's client sends: a server still starting is skipped
        with BridgeClient(s.address, deadline_s=60) as c:
            c.wait_ready(60)
    client = BridgeClient([a.address, b.address], deadline_s=60, attempt_timeout_s=30, local_server=a)
    try:
        client.wait_ready(60)
        end = time.monotonic() + 30  # round robin prefers connected bridges: wait until the client sees both
        while not all(client.pool.connected.values()) and time.monotonic() < end:
            time.sleep(0.05)
        assert all(client.pool.connected.values()), client.pool.connected
        kfs = [Keyframe(1, "red square"), Keyframe(4, "square")]
        got = client.ground(ref, kfs)
        expect = SyntheticBackend().ground([frames[1], frames[4]], ["red square", "square"])
        for g, e in zip(got.boxes, expect):
            np.testing.assert_array_equal(g, e.boxes)
        dets = ([0, 1, 1], [1, 4, 4], np.asarray(expect[0].boxes.tolist() + expect[1].boxes.tolist()))
        seg = client.segment(ref, 3, *dets)
        masks, _ = SyntheticSegmenter().segment(frames, 3, *dets)
        np.testing.assert_array_equal(seg.masks, masks)
        assert seg.obj_ids.tolist() == [0, 1, 2]
        # round robin: four more requests spread over both servers
        futures = [client.submit("segment", protocol.SegmentRequest(frames, 3, *dets).to_body()) for _ in range(4)]
        for f in futures:
            np.testing.assert_array_equal(protocol.SegmentReply.from_body(f.result()).masks, masks)
        served = []
        for s in (a, b):
            with BridgeClient(s.address, deadline_s=30) as c:
                served.append(c.health()["workers"][0]["served"])
        assert sorted(served) == [3, 3]
        # the local server dies: the client restarts it and answers
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        results = [client.submit("segment", protocol.SegmentRequest(frames, 3, *dets).to_body()) for _ in range(2)]
        for f in results:
            np.testing.assert_array_equal(protocol.SegmentReply.from_body(f.result()).masks, masks)
        assert a.restarts == 1 and a.alive()
    finally:
        client.close()
        a.stop()
        b.stop()
