"""The bridge half of the fuzz test: seeded random and mutated protocol messages through a live
``python -m sam2_bridge.serve`` (synthetic segmenter and grounder). Every message gets a reply that decodes and
is ``ok`` or a documented error code (never ``internal`` / ``worker_died``), no process crashes or restarts,
the server's memory (broker + worker RSS) grows by at most ``RSS_BOUND_MB``, and a valid request is served
correctly afterwards."""

import copy
import os

import msgpack
import numpy as np
import psutil
import pytest
import zmq
from PIL import Image

from sam2_bridge.server.synthetic import SyntheticSegmenter
from sam2_bridge.wire import protocol
from sam2_bridge.wire.client import BridgeClient
from sam2_bridge.wire.constants import BACKGROUND, PALETTE
from sam2_bridge.wire.pool import LocalServer

SEED = 14
N_MESSAGES = 240
RSS_BOUND_MB = 64  # broker + worker, after a warm-up of every request type; the fuzz messages are all < 64 KB

HOSTILE = [
    None,
    True,
    -1,
    0,
    2**31,
    2**32 + 1,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    1e308,
    float("nan"),
    float("inf"),
    "",
    "\0",
    "../../etc",
    "x" * 5000,
    b"\xff" * 100,
    [],
    {},
    [[]] * 50,
    {"a": {}},
    [[0, "x"]] * 3,
    np.asarray([2**40]),
    np.asarray([np.nan], np.float32),
    np.ones((3, 3), bool),
    np.zeros((0,), np.uint8),
    np.zeros((2, 0, 3), np.int32),
    np.zeros((1, 4, 4, 3), np.uint8),
    np.zeros((1, 4, 4, 4), np.uint8),
    np.asarray([-5], np.int16),
    np.zeros((2, 4), np.float64),
]


def _clip():
    clip = np.full((3, 24, 32, 3), BACKGROUND, np.uint8)
    clip[:, 4:12, 4:12] = PALETTE["red"]
    return clip


def _templates(root):
    clip = _clip()
    ref = {"ref": {"root": str(root), "video": "vid", "names": ["00000.png", "00001.png", "00002.png"]}}
    return [
        ("health", {}),
        ("ground", {"frames": {"array": clip}, "keyframes": [[0, "red square"], [2, "square"]]}),
        ("ground", {"frames": ref, "keyframes": [[1, "red"]]}),
        (
            "segment",
            {
                "clip": {"array": clip},
                "num_rollouts": 2,
                "det_rollout": np.asarray([0, 1], np.int32),
                "det_frame": np.asarray([0, 2], np.int32),
                "det_boxes": np.asarray([[4, 4, 12, 12], [0, 0, 8, 8]], np.float32),
            },
        ),
        ("ground_and_segment", {"clip": ref, "rollouts": [[[0, "red square"]], [], [[2, "blue circle"]]]}),
        ("judge", {"prompts": ["a", "b"], "max_new_tokens": 4}),
    ]


def _paths(obj, prefix=()):
    """Every (path) to a value inside nested maps / lists."""
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        out.append(prefix + (k,))
        out.extend(_paths(v, prefix + (k,)))
    return out


def _set(obj, path, value):
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value


def _random_value(rng, depth=0):
    kind = rng.integers(0, 7 if depth < 4 else 4)
    if kind == 0:
        return HOSTILE[rng.integers(len(HOSTILE))]
    if kind == 1:
        return int(rng.integers(-(2**62), 2**62))
    if kind == 2:
        return "".join(chr(c) for c in rng.integers(0, 0x3000, rng.integers(0, 20)))
    if kind == 3:
        return bytes(rng.integers(0, 256, rng.integers(0, 40), dtype=np.uint8))
    if kind == 4:
        return [_random_value(rng, depth + 1) for _ in range(rng.integers(0, 6))]
    if kind == 5:
        return {f"k{i}": _random_value(rng, depth + 1) for i in range(rng.integers(0, 6))}
    return msgpack.ExtType(int(rng.integers(0, 3)), bytes(rng.integers(0, 256, rng.integers(0, 30), dtype=np.uint8)))


def _pack(message, version=protocol.PROTOCOL_VERSION):
    return protocol.encode_message(message, version=version)


def _messages(rng, root):
    templates = _templates(root)
    for i in range(N_MESSAGES):
        req_type, body = templates[rng.integers(len(templates))]
        message = {"id": f"f{i}", "type": req_type, "body": copy.deepcopy(body)}
        if rng.random() < 0.3:
            message["deadline_s"] = HOSTILE[rng.integers(len(HOSTILE))] if rng.random() < 0.5 else 30.0
        mode = i % 5
        if mode in (0, 1):  # one field anywhere (envelope included) replaced by a hostile / random value
            path = _paths(message)[rng.integers(len(_paths(message)))]
            _set(message, path, _random_value(rng))
            yield _pack(message)
        elif mode == 2:  # bytes flipped / cut / added in a valid message
            data = bytearray(_pack(message, version=int(rng.choice(protocol.SUPPORTED_VERSIONS))))
            for _ in range(rng.integers(1, 8)):
                data[rng.integers(len(data))] = rng.integers(256)
            if rng.random() < 0.3:
                data = data[: rng.integers(len(data))]
            if rng.random() < 0.2:
                data += bytes(rng.integers(0, 256, 10, dtype=np.uint8))
            yield bytes(data)
        elif mode == 3:  # a random body, or a random envelope around a random body
            if rng.random() < 0.5:
                yield _pack({"id": f"f{i}", "type": req_type, "body": _random_value(rng)})
            else:
                yield _pack({f"k{j}": _random_value(rng) for j in range(rng.integers(0, 5))} | {"id": f"f{i}"})
        else:  # a valid request (the server must still answer them right in between)
            yield _pack(message)


def _rss_mb(pid):
    return psutil.Process(pid).memory_info().rss / 2**20


@pytest.fixture()
def world(tmp_path):
    root = tmp_path / "root"
    os.makedirs(root / "JPEGImages" / "vid")
    for t, frame in enumerate(_clip()):
        Image.fromarray(frame).save(root / "JPEGImages" / "vid" / f"{t:05d}.png")
    return tmp_path, root


def test_fuzzed_protocol_messages_get_valid_replies_and_the_server_survives(world):
    tmp, root = world
    server = LocalServer(
        [
            "--address",
            f"ipc://{tmp}/fuzz.sock",
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
        ],
        log_path=f"{tmp}/fuzz.log",
    ).start()
    sock = None
    try:
        with BridgeClient(server.address, deadline_s=60) as client:
            worker = client.wait_ready(120)["workers"][0]
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(server.address)

        def ask(payload):
            sock.send(payload)
            assert sock.poll(60000), "no reply"
            return protocol.decode_message(sock.recv(), 1 << 28)

        for req_type, body in _templates(root) * 3:  # warm-up: every code path once, before measuring
            ask(protocol.make_request("warm", req_type, body))
        rss0 = _rss_mb(server.proc.pid) + _rss_mb(worker["pid"])
        codes: dict[str, int] = {}
        for payload in _messages(np.random.default_rng(SEED), root):
            reply = ask(payload)
            assert isinstance(reply.get("ok"), bool), reply
            code = "ok" if reply["ok"] else reply["error"]["code"]
            codes[code] = codes.get(code, 0) + 1
            if reply["ok"]:
                assert isinstance(reply["body"], dict)
            else:
                assert code in protocol.ERROR_CODES and code not in ("internal", "worker_died"), reply
                assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
        assert sum(codes.values()) == N_MESSAGES
        assert codes.get("ok", 0) >= N_MESSAGES // 5 and len(codes) >= 6, codes  # varied, not all one answer
        growth = _rss_mb(server.proc.pid) + _rss_mb(worker["pid"]) - rss0
        assert growth <= RSS_BOUND_MB, (growth, codes)
        # still alive, same worker, and right: a valid request against the in-process synthetic segmenter
        with BridgeClient(server.address, deadline_s=60) as client:
            info = client.health()
            assert info["workers"][0]["pid"] == worker["pid"] and info["workers"][0]["restarts"] == 0
            dets = ([0, 1], [0, 2], [[4, 4, 12, 12], [4, 4, 12, 12]])
            got = client.segment(_clip(), 2, *dets)
            expect, _ = SyntheticSegmenter().segment(_clip(), 2, *dets)
            np.testing.assert_array_equal(got.masks, expect)
            assert expect.any()
        assert server.alive()
    finally:
        if sock is not None:
            sock.close()
        server.stop()
