"""Protocol: round trips of every message, and malformed input -> ProtocolError with the documented code."""

import os
import pickle
import struct
import subprocess
import sys

import msgpack
import numpy as np
import pytest

from sam2_bridge.wire import protocol


def _roundtrip(req_type, body):
    return protocol.decode_message(protocol.make_request("r1", req_type, body))


def test_array_codec_roundtrip_all_dtypes():
    rng = np.random.default_rng(0)
    values = {
        name: (rng.random((3, 5, 7)) * 100).astype(name)
        for name in ("uint8", "uint16", "int16", "int32", "int64", "float16", "float32", "float64")
    }
    values["bool"] = rng.random((2, 3, 17, 5)) > 0.5  # 510 bits: not a multiple of 8
    values["empty"] = np.zeros((0, 4), np.float32)
    values["scalar"] = np.float32(2.5)
    out = _roundtrip("health", {"nested": [values, {"x": values["bool"]}]})["body"]["nested"]
    for name, arr in values.items():
        if name == "scalar":
            assert out[0][name] == 2.5
            continue
        assert out[0][name].dtype == arr.dtype and out[0][name].shape == arr.shape
        np.testing.assert_array_equal(out[0][name], arr)
    np.testing.assert_array_equal(out[1]["x"], values["bool"])


def test_bool_masks_travel_as_bits():
    masks = np.ones((8, 16, 64, 64), bool)
    assert len(protocol.encode_message({"m": masks})) < masks.size // 8 + 200


def test_group_request_and_reply_roundtrip():
    clip = np.random.default_rng(1).integers(0, 255, (5, 12, 16, 3), dtype=np.uint8)
    rollouts = [
        [protocol.Keyframe(0, "the red circle"), protocol.Keyframe(4, "blue square")],
        [],
        [protocol.Keyframe(2, "x")],
    ]
    req = protocol.GroupRequest(clip, rollouts)
    back = protocol.GroupRequest.from_body(_roundtrip(req.TYPE, req.to_body())["body"])
    np.testing.assert_array_equal(back.clip, clip)
    assert back.rollouts == req.rollouts
    masks = np.random.default_rng(2).random((3, 5, 12, 16)) > 0.5
    boxes = ((np.array([[1, 2, 3, 4.5]], np.float32), np.zeros((0, 4), np.float32)), (), (np.ones((2, 4), np.float32),))
    reply = protocol.GroupReply(boxes, masks, 1, 3, {"segment_s": 0.5})
    got = protocol.GroupReply.from_body(
        protocol.decode_message(protocol.make_reply("r1", req.TYPE, reply.to_body()))["body"]
    )
    np.testing.assert_array_equal(got.masks, masks)
    assert [[b.tolist() for b in r] for r in got.boxes] == [[b.tolist() for b in r] for r in boxes]
    assert (got.n_unparseable, got.n_detections, got.timings) == (1, 3, {"segment_s": 0.5})


def test_frame_ref_and_segment_request_roundtrip():
    ref = protocol.FrameRef("data/revos", "vid1", ("00000", "00005.jpg"))
    req = protocol.SegmentRequest(ref, 2, [0, 1, 1], [0, 1, 1], [[0, 0, 4, 4], [1, 1, 3, 3], [1, 1, 3, 3]])
    back = protocol.SegmentRequest.from_body(_roundtrip(req.TYPE, req.to_body())["body"])
    assert back.clip == ref
    np.testing.assert_array_equal(back.det_boxes, req.det_boxes)
    assert back.det_rollout.dtype == np.int32


@pytest.mark.parametrize(
    "bad",
    [
        dict(names=("../../outside/secret.jpg",)),
        dict(video=os.path.join(os.sep, "abs")),
        dict(video="a/../../b"),
        dict(names=()),
    ],
)
def test_frame_ref_cannot_leave_root(bad):
    kw = dict(root="data", video="v", names=("0",)) | bad
    with pytest.raises(protocol.ProtocolError) as e:
        protocol.FrameRef(**kw)
    assert e.value.code == "bad_field"


def test_malformed_messages_get_their_codes():
    good = protocol.make_request("abc", "health", {})
    cases = {
        "truncated": [good[:5], good[:-1]],
        "bad_header": [b"XXXX" + good[4:], good + b"\x00"],
        "bad_version": [good[:4] + struct.pack("<H", 99) + good[6:]],
        "too_large": [good[:8] + struct.pack("<Q", 1 << 40) + good[16:]],
    }
    for code, payloads in cases.items():
        for payload in payloads:
            with pytest.raises(protocol.ProtocolError) as e:
                protocol.decode_message(payload)
            assert e.value.code == code, (code, payload[:20])
    with pytest.raises(protocol.ProtocolError) as e:
        protocol.decode_message(protocol.encode_message({"x": "y" * 2000}), max_message_bytes=1000)
    assert e.value.code == "too_large"


def _framed(body: bytes) -> bytes:
    return b"S2BR" + struct.pack("<HHQ", protocol.PROTOCOL_VERSION, 0, len(body)) + body


def test_bodies_that_are_not_plain_maps_are_rejected_without_executing_anything(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bodies = [
        pickle.dumps(Evil()),  # a pickle is just undecodable bytes here
        msgpack.packb([1, 2, 3]),  # not a map
        msgpack.packb({1: 2}),  # non-string key
        msgpack.packb({"a": msgpack.ExtType(7, b"xx")}),  # unknown extension
        msgpack.packb({"a": msgpack.ExtType(1, bytes([0, 1]) + struct.pack("<Q", 100) + b"\x00")}),  # short data
        msgpack.packb({"a": msgpack.ExtType(1, bytes([99, 1]) + struct.pack("<Q", 1) + b"\x00")}),  # bad dtype
        b"\x91" * 100000,  # nesting far too deep
        b"\xc1",  # reserved byte
    ]
    for body in bodies:
        with pytest.raises(protocol.ProtocolError) as e:
            protocol.decode_message(_framed(body))
        assert e.value.code == "bad_body"
    assert not marker.exists()


def test_envelope_and_field_validation():
    with pytest.raises(protocol.ProtocolError) as e:
        protocol.peek_envelope({"id": "a", "type": "exec"})
    assert e.value.code == "bad_type"
    with pytest.raises(protocol.ProtocolError) as e:
        protocol.peek_envelope({"id": "", "type": "health"})
    assert e.value.code == "bad_field"
    clip = np.zeros((3, 4, 4, 3), np.uint8)
    bad_bodies = [
        {"clip": {"array": clip.astype(np.float32)}, "rollouts": []},  # wrong dtype
        {"clip": {"array": clip}, "rollouts": [[[3, "x"]]]},  # frame outside the clip
        {"clip": {"array": clip}, "rollouts": [[["0", "x"]]]},  # wrong type
        {"clip": {"array": clip, "ref": {}}, "rollouts": []},  # two sources
        {"clip": {"array": clip}},  # missing field
    ]
    for body in bad_bodies:
        with pytest.raises(protocol.ProtocolError) as e:
            protocol.GroupRequest.from_body(body)
        assert e.value.code == "bad_field", body
    with pytest.raises(protocol.ProtocolError):
        protocol.SegmentRequest(clip, 1, [0, 1], [0, 0], [[0, 0, 1, 1]] * 2)  # rollout 1 of 1
    with pytest.raises(protocol.ProtocolError):
        protocol.SegmentRequest(clip, 1, [0], [0], [[0, 0, np.nan, 1]])


def test_the_wire_side_and_the_light_server_modules_import_neither_torch_nor_jax():
    """The wire side is what the trainer imports; the broker, the synthetic models and the grounder module load
    torch only when a model backend is built (tests/test_layering.py checks the wire side on its own)."""
    code = (
        "import sys, sam2_bridge.wire.protocol, sam2_bridge.wire.client, sam2_bridge.wire.frames; "
        "import sam2_bridge.server.objects, sam2_bridge.server.synthetic, sam2_bridge.server.grounder, "
        "sam2_bridge.server.broker; "
        "bad = [m for m in ('torch', 'jax', 'jaxlib', 'transformers') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.torch
def test_bridge_never_imports_jax():
    code = (
        "import sys, sam2_bridge.server.segmenter, sam2_bridge.server.handler, "
        "sam2_bridge.server.sam2_reference, sam2_bridge.server.worker, sam2_bridge.serve; "
        "assert 'jax' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_envelope_is_read_without_decoding_the_body_and_limits_give_too_large():
    evil = msgpack.packb(
        {"id": "e", "type": "segment", "token": "t", "deadline_s": 2.5, "body": {"x": msgpack.ExtType(7, b"zz")}}
    )
    env = protocol.read_envelope(_framed(evil))
    assert (env.id, env.type, env.token, env.deadline_s) == ("e", "segment", "t", 2.5)
    with pytest.raises(protocol.ProtocolError) as e:  # decoding the body is a separate, later step
        protocol.decode_body(env)
    assert e.value.code == "bad_body"
    # "body" before the other keys: still found, and the keys after it still read
    env = protocol.read_envelope(_framed(msgpack.packb({"body": {"a": 1}, "id": "x", "type": "health"})))
    assert env.id == "x" and protocol.decode_body(env) == {"a": 1}
    limits = protocol.DecodeLimits(max_container_len=10, max_items=50, max_bool_elements=100)
    cases = [{"l": list(range(11))}, {"l": [[0] * 10] * 6}, {"m": np.zeros(101, bool)}]
    for body in cases:
        with pytest.raises(protocol.ProtocolError) as e:
            protocol.decode_message(protocol.encode_message(body), limits)
        assert e.value.code == "too_large", body
    assert protocol.decode_message(protocol.encode_message({"l": [[0] * 9] * 4}), limits)["l"] == [[0] * 9] * 4
    # version-1 requests are still read; replies go back in the request's version
    v1 = protocol.encode_message({"id": "old", "type": "health", "body": {}}, version=1)
    assert protocol.read_envelope(v1).version == 1
    assert protocol.make_error("old", "health", "x", "y", version=1)[4:6] == b"\x01\x00"


def test_integer_fields_are_range_checked_before_the_cast():
    clip = np.zeros((2, 4, 4, 3), np.uint8)
    for rollout, frame in (([0], [2**32 + 1]), ([2**32], [0]), ([-(2**40)], [0])):
        body = {
            "clip": {"array": clip},
            "num_rollouts": 1,
            "det_rollout": np.asarray(rollout, np.int64),
            "det_frame": np.asarray(frame, np.int64),
            "det_boxes": np.zeros((1, 4), np.float32),
        }
        with pytest.raises(protocol.ProtocolError) as e:
            protocol.SegmentRequest.from_body(body)
        assert e.value.code == "bad_field"
    with pytest.raises(protocol.ProtocolError) as e:
        protocol.FrameRef("data", "v", ("a\0b",))
    assert e.value.code == "bad_field"
