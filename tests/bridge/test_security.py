"""Security, against live ``python -m sam2_bridge.serve`` servers (synthetic segmenter and grounder):
frame references only under ``--data-root`` with errors that do not tell what exists outside it, no
symlink race out of the root, the shared token checked before the body is decoded."""

import os
import struct
import subprocess
import sys

import msgpack
import numpy as np
import pytest
import zmq
from PIL import Image

from sam2_bridge.wire import protocol
from sam2_bridge.wire.client import BridgeClient, BridgeError
from sam2_bridge.wire.constants import BACKGROUND, PALETTE
from sam2_bridge.wire.pool import LocalServer

INSIDE_BOX = [4, 6, 20, 22]  # x1, y1, x2, y2 of the red square drawn inside the root
OUTSIDE_BOX = [30, 2, 46, 18]  # where the outside image has its square


def _image(path, box, colour="red", size=(32, 48)):
    arr = np.full((*size, 3), BACKGROUND, np.uint8)
    x1, y1, x2, y2 = box
    arr[y1:y2, x1:x2] = PALETTE[colour]
    Image.fromarray(arr).save(path)
    return arr


def _start(tmp, name, *extra):
    server = LocalServer(
        [
            "--address",
            f"ipc://{tmp}/{name}.sock",
            "--workers",
            "1",
            "--device",
            "cpu",
            "--segmenter",
            "synthetic",
            "--grounder",
            "synthetic",
            *extra,
        ],
        log_path=f"{tmp}/{name}.log",
    ).start()
    return server


def _raw(address, payload, timeout_ms=60000):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    try:
        sock.send(payload)
        assert sock.poll(timeout_ms), "no reply"
        return protocol.decode_message(sock.recv())
    finally:
        sock.close()


def _ground_ref(req_id, root, video, name, **kw):
    body = {"frames": {"ref": {"root": str(root), "video": video, "names": [name]}}, "keyframes": [[0, "square"]]}
    return protocol.make_request(req_id, "ground", body, **kw)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A data root with one good frame, a missing one, a non-image and a symlink out; an image outside it."""
    base = tmp_path_factory.mktemp("sec")
    root, outside = base / "root", base / "outside"
    vid = root / "JPEGImages" / "vid"
    os.makedirs(vid)
    os.makedirs(outside / "JPEGImages" / "vid")
    _image(vid / "00000.png", INSIDE_BOX)
    (vid / "junk.png").write_bytes(b"not an image at all")
    _image(outside / "JPEGImages" / "vid" / "00000.png", OUTSIDE_BOX, "blue")
    _image(outside / "secret.png", OUTSIDE_BOX, "blue")
    os.symlink(outside / "secret.png", vid / "link_out.png")
    return base, root, outside


def _wait(client):
    client.wait_ready(120)
    return client


def test_frame_refs_need_a_data_root_and_errors_do_not_tell_what_exists_outside(world):
    base, root, outside = world
    bare = _start(base, "bare")
    rooted = _start(base, "rooted", "--data-root", str(root))
    try:
        for s in (bare, rooted):
            with BridgeClient(s.address, deadline_s=60) as c:
                _wait(c)
        # no --data-root: every reference is refused, even one to a readable image
        reply = _raw(bare.address, _ground_ref("r0", root, "vid", "00000.png"))
        assert reply["ok"] is False and reply["error"]["code"] == "forbidden", reply
        # with a root: the image inside is served (the red square where it was drawn)
        reply = _raw(rooted.address, _ground_ref("r1", root, "vid", "00000.png"))
        assert reply["ok"] is True, reply
        np.testing.assert_array_equal(reply["body"]["boxes"][0], [INSIDE_BOX])
        # missing inside / not an image inside / existing outside / missing outside / a symlink out: one answer
        probes = [
            (root, "vid", "missing.png"),
            (root, "vid", "junk.png"),
            (outside, "vid", "00000.png"),
            (outside, "vid", "nothing_here.png"),
            (root, "vid", "link_out.png"),
            (base / "no_such_dir", "vid", "00000.png"),
        ]
        replies = [_raw(rooted.address, _ground_ref(f"p{i}", *p)) for i, p in enumerate(probes)]
        codes = {r["error"]["code"] for r in replies if not r["ok"]}
        messages = {r["error"]["message"] for r in replies if not r["ok"]}
        assert all(not r["ok"] for r in replies), replies
        assert codes == {"bad_frames"} and len(messages) == 1, replies
        assert str(outside) not in messages.pop()
    finally:
        bare.stop()
        rooted.stop()


N_BATCHES, BATCH = 20, 50


def test_a_symlink_flipped_during_requests_never_yields_the_outside_image(world):
    """A process flips ``vid/flip.png`` between a file inside the root and one outside it while the server is
    queried (N_BATCHES x BATCH requests): the race between the path check and the open must never return the
    outside image."""
    base, root, outside = world
    inside_target = root / "JPEGImages" / "vid" / "00000.png"
    link = root / "JPEGImages" / "vid" / "flip.png"
    tmp_link = root / "JPEGImages" / "vid" / "flip.tmp"
    os.symlink(inside_target, link)
    server = _start(base, "race", "--data-root", str(root))
    # the flipper is its own process, so it flips at full speed whatever this process does
    flipper = (
        f"import os\ntargets = [{str(outside / 'secret.png')!r}, {str(inside_target)!r}]\ni = 0\n"
        f"while True:\n    tmp = {str(tmp_link)!r}\n    if os.path.lexists(tmp):\n        os.unlink(tmp)\n"
        f"    os.symlink(targets[i % 2], tmp)\n    os.replace(tmp, {str(link)!r})\n    i += 1\n"
    )
    counts = {"inside": 0, "outside": 0, "refused": 0}
    try:
        with BridgeClient(server.address, deadline_s=60) as c:
            _wait(c)
        flip = subprocess.Popen([sys.executable, "-c", flipper])
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(server.address)
        for batch in range(N_BATCHES):  # pipelined: the worker reads frames back to back while links flip
            for i in range(BATCH):
                body = {
                    "frames": {"ref": {"root": str(root), "video": "vid", "names": ["flip.png"]}},
                    "keyframes": [[0, "square"]],
                }
                sock.send(protocol.make_request(f"q{batch}-{i}", "ground", body))
            for _ in range(BATCH):
                assert sock.poll(60000), "no reply"
                reply = protocol.decode_message(sock.recv())
                if not reply["ok"]:
                    assert reply["error"]["code"] == "bad_frames", reply
                    counts["refused"] += 1
                elif reply["body"]["boxes"][0].tolist() == [OUTSIDE_BOX]:
                    counts["outside"] += 1
                else:
                    assert reply["body"]["boxes"][0].tolist() == [INSIDE_BOX], reply
                    counts["inside"] += 1
        sock.close()
    finally:
        if flip is not None:
            flip.kill()
            flip.wait()
        server.stop()
    assert counts["outside"] == 0, counts
    assert counts["inside"] > 0 and counts["refused"] > 0, counts  # both link states were really exercised


def test_token_is_required_and_checked_before_the_body_is_decoded(world, tmp_path):
    base, root, _ = world
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    server = _start(base, "token", "--token-file", str(token_file), "--data-root", str(root))
    try:
        with BridgeClient(server.address, deadline_s=60, token_file=str(token_file)) as c:
            _wait(c)
            got = c.ground(protocol.FrameRef(str(root), "vid", ("00000.png",)), [protocol.Keyframe(0, "square")])
            np.testing.assert_array_equal(got.boxes[0], [INSIDE_BOX])
        # a body that would not decode (unknown extension type 7): with a wrong token it is never looked at
        evil = msgpack.packb(
            {"id": "e1", "type": "segment", "token": "wrong", "body": {"clip": msgpack.ExtType(7, b"\x00" * 64)}},
            use_bin_type=True,
        )
        framed = b"S2BR" + struct.pack("<HHQ", protocol.PROTOCOL_VERSION, 0, len(evil)) + evil
        cases = [
            protocol.make_request("n1", "health", {}),  # no token
            protocol.make_request("w1", "health", {}, token="s3cret-tokeN"),  # wrong token
            protocol.make_request("w2", "health", {}, token="s3cret-token\n"),  # not stripped: not the token
            framed,
        ]
        for payload in cases:
            reply = _raw(server.address, payload)
            assert reply["ok"] is False and reply["error"]["code"] == "unauthorized", reply
            assert reply["id"] in ("n1", "w1", "w2", "e1")  # the client can match the refusal
        # the right token and the same undecodable body: now it is decoded, and refused as such
        good = msgpack.packb(
            {
                "id": "e2",
                "type": "segment",
                "token": "s3cret-token",
                "body": {"clip": msgpack.ExtType(7, b"\x00" * 64)},
            },
            use_bin_type=True,
        )
        reply = _raw(server.address, b"S2BR" + struct.pack("<HHQ", protocol.PROTOCOL_VERSION, 0, len(good)) + good)
        assert reply["error"]["code"] == "bad_body", reply
        # a client without the token gets a clear error, not a timeout
        with BridgeClient(server.address, deadline_s=30) as c:
            with pytest.raises(BridgeError) as e:
                c.health()
            assert e.value.code == "unauthorized"
    finally:
        server.stop()
