"""System 1's rationale in System 2's grounding prompt (protocol version 3, ``contexts``; docs/design.md §8.5).

Protocol round trips and validation, the grounding prompt, the config fields, and a live bridge (synthetic
segmenter and grounder) that serves version-1, -2 and -3 requests side by side and answers a malformed
``contexts`` field with an error reply while it stays up. That the context reaches a real model's prompt is
tested with the tiny Qwen grounder (tests/bridge/test_grounder_qwen.py) and through a live bridge with a plug-in
grounder (tests/bridge/test_grounder_plugin.py)."""

import numpy as np
import pytest
import zmq

from sam2_bridge.server.grounder import CONTEXT_PROMPT, GROUNDING_PROMPT, grounding_prompt
from sam2_bridge.wire import protocol
from sam2_bridge.wire.client import BridgeClient
from sam2_bridge.wire.constants import BACKGROUND, PALETTE
from sam2_bridge.wire.pool import LocalServer
from sam2_bridge.wire.protocol import Keyframe

RED_BOX = (10, 6, 26, 22)  # x1, y1, x2, y2 (exclusive) of the red square drawn on every frame
BLUE_BOX = (40, 30, 56, 46)


def _clip(t=4, h=56, w=72):
    frames = np.full((t, h, w, 3), BACKGROUND, np.uint8)
    for box, colour in ((RED_BOX, "red"), (BLUE_BOX, "blue")):
        x1, y1, x2, y2 = box
        frames[:, y1:y2, x1:x2] = PALETTE[colour]
    return frames


def _ground_body(contexts="absent"):
    body = {"frames": {"array": _clip()}, "keyframes": [[0, "the red square"], [2, "blue square"]]}
    if contexts != "absent":
        body["contexts"] = contexts
    return body


# ----------------------------------------------------------------------------------------------- protocol


def test_contexts_round_trip_in_version_3_and_requests_without_them_stay_version_2():
    clip = _clip()
    rollouts = [[Keyframe(0, "the red square")], [], [Keyframe(1, "x"), Keyframe(3, "y")]]
    req = protocol.GroupRequest(clip, rollouts, ("the red one moves left", None, ""))
    body = req.to_body()
    assert protocol.request_version(body) == 3
    message = protocol.make_request("r", req.TYPE, body, version=protocol.request_version(body))
    assert message[4:6] == b"\x03\x00"  # the header's u16 LE version
    back = protocol.GroupRequest.from_body(protocol.decode_message(message)["body"])
    assert back.contexts == ("the red one moves left", None, "") and back.rollouts == req.rollouts
    assert back.rollout_contexts() == ("the red one moves left", None, "")

    g = protocol.GroundRequest(clip, (Keyframe(0, "a"), Keyframe(2, "b")), ["first", None])
    back = protocol.GroundRequest.from_body(
        protocol.decode_message(protocol.make_request("g", "ground", g.to_body()))["body"]
    )
    assert back.contexts == ("first", None) and back.keyframe_contexts() == ("first", None)

    # without contexts the body is byte-for-byte what a version-2 client sends (an old bridge reads it as before)
    plain = protocol.GroupRequest(clip, rollouts).to_body()
    assert "contexts" not in plain and protocol.request_version(plain) == 2
    assert protocol.GroupRequest.from_body(plain).rollout_contexts() == (None, None, None)


@pytest.mark.parametrize(
    "contexts, needle",
    [
        ("one rationale for all", "must be a list"),  # a str, not a list
        (["only one"], "holds 1 entries for 2 keyframes"),  # wrong length
        ([1, None], "must be a str"),  # not a str
        ([b"bytes", None], "must be a str"),
        (["x" * (protocol.MAX_CONTEXT_CHARS + 1), None], f"<= {protocol.MAX_CONTEXT_CHARS} chars"),
        ({"0": "map"}, "must be a list"),
    ],
)
def test_malformed_contexts_are_bad_field(contexts, needle):
    with pytest.raises(protocol.ProtocolError) as e:
        protocol.GroundRequest.from_body(_ground_body(contexts))
    assert e.value.code == "bad_field" and needle in e.value.message
    # the longest allowed context is accepted
    ok = protocol.GroundRequest.from_body(_ground_body(["x" * protocol.MAX_CONTEXT_CHARS, None]))
    assert len(ok.contexts[0]) == protocol.MAX_CONTEXT_CHARS


def test_contexts_in_an_older_version_are_refused():
    for version in (1, 2):
        with pytest.raises(protocol.ProtocolError) as e:
            protocol.check_request_version(_ground_body(["why", None]), version)
        assert e.value.code == "bad_field" and "version 3" in e.value.message
        protocol.check_request_version(_ground_body(), version)  # no contexts: fine
    protocol.check_request_version(_ground_body(["why", None]), 3)
    with pytest.raises(protocol.ProtocolError) as e:
        protocol.make_request("x", "health", {}, version=4)
    assert e.value.code == "bad_version"


def test_grounding_prompt_with_and_without_context():
    plain = (
        'Locate every object that matches the description "the red circle" in the image and output the bbox '
        "coordinates in JSON format."
    )
    assert grounding_prompt("the red circle") == plain == GROUNDING_PROMPT.format(description="the red circle")
    assert grounding_prompt("the red circle", "   ") == plain  # a blank context is no context
    got = grounding_prompt("the red circle", "  It appears second {and} moves left.  ")
    assert got == (
        'A model that watched the whole video reasoned about it as follows: "It appears second {and} '
        'moves left."\nUse this reasoning to decide which object the description refers to. ' + plain
    )
    assert got.startswith(CONTEXT_PROMPT.format(context="It appears second {and} moves left."))


def test_bridge_config_fields():
    from omnir1_jax.config import BridgeSpec, ConfigError

    spec = BridgeSpec()
    assert spec.s2_context is False and spec.s2_context_chars == 1024
    assert BridgeSpec(s2_context=True, s2_context_chars=protocol.MAX_CONTEXT_CHARS).s2_context_chars == 4096
    for bad in (
        dict(s2_context_chars=0),
        dict(s2_context_chars=protocol.MAX_CONTEXT_CHARS + 1),
        dict(s2_context="yes"),
        dict(s2_context_chars=1.5),
    ):
        with pytest.raises(ConfigError, match="bridge.s2_context"):
            BridgeSpec(**bad)


# ------------------------------------------------------------------------------------------- live bridge


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ctx")
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
        ],
        log_path=f"{tmp}/b.log",
    ).start()
    client = BridgeClient(server.address, deadline_s=120, local_server=server)
    try:
        client.wait_ready(120)
        yield client, server
    finally:
        client.close()
        server.stop()


def _raw(address, payload, timeout_ms=60000):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    try:
        sock.send(payload)
        assert sock.poll(timeout_ms), "no reply"
        data = sock.recv()
        return int.from_bytes(data[4:6], "little"), protocol.decode_message(data)
    finally:
        sock.close()


def test_old_and_new_clients_are_served_and_malformed_contexts_get_error_replies(bridge):
    client, server = bridge
    expected = [[list(RED_BOX)], [list(BLUE_BOX)]]  # the drawn squares, exclusive ends
    for version, body in (
        (1, _ground_body()),
        (2, _ground_body()),
        (3, _ground_body()),
        (3, _ground_body(["the red square is the one on the left", None])),
    ):
        got_version, reply = _raw(server.address, protocol.make_request(f"v{version}", "ground", body, version=version))
        assert got_version == version and reply["ok"] is True, reply  # answered in the request's version
        assert [b.tolist() for b in reply["body"]["boxes"]] == expected
    bad = [
        (2, _ground_body(["a context in version 2", None]), "needs protocol version 3"),
        (3, _ground_body(["too few"]), "holds 1 entries"),
        (3, _ground_body([7, None]), "must be a str"),
        (3, {"clip": {"array": _clip()}, "rollouts": [[[0, "red"]]], "contexts": "not a list"}, "must be a list"),
    ]
    for version, body, needle in bad:
        req_type = "ground_and_segment" if "clip" in body else "ground"
        got_version, reply = _raw(server.address, protocol.make_request("bad", req_type, body, version=version))
        assert got_version == version and reply["ok"] is False
        assert reply["error"]["code"] == "bad_field" and needle in reply["error"]["message"], reply
    assert client.health()["workers"][0]["ready"]  # still up
    # the client API: contexts per rollout; the synthetic grounder ignores them, so the masks are unchanged
    rollouts = [[Keyframe(0, "the red square")], [Keyframe(1, "blue square")]]
    plain = client.submit_group(_clip(), rollouts).result().raise_for_status()
    ctx = client.submit_group(_clip(), rollouts, contexts=["red one, it stays put", None]).result()
    assert ctx.ok and ctx.n_detections == plain.n_detections == 2
    for a, b in zip(plain.rollouts, ctx.rollouts):
        np.testing.assert_array_equal(a.masks, b.masks)
    x1, y1, x2, y2 = RED_BOX
    assert ctx.rollouts[0].masks[:, y1:y2, x1:x2].all() and ctx.rollouts[0].masks.sum() == 4 * 16 * 16
    reply = client.ground(_clip(), [Keyframe(0, "the red square")], contexts=["why"])
    assert reply.boxes[0].tolist() == [list(RED_BOX)]
