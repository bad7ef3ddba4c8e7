"""``bridge.token_file``: the run's local bridge is started with the token and the run's client sends it; a
client without it is refused (``unauthorized``)."""

import os

import numpy as np
import pytest

from omnir1_jax.config import BridgeSpec
from omnir1_jax.runtime.bridge import open_bridge
from sam2_bridge.wire.client import BridgeClient, BridgeError
from sam2_bridge.wire.protocol import Keyframe

pytestmark = pytest.mark.torch  # the bridge subprocess runs PyTorch


def test_the_runs_bridge_uses_the_token_file(tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret-token-for-the-test\n")
    os.chmod(token, 0o600)
    spec = BridgeSpec(grounder="synthetic", segmenter="synthetic", workers=1, timeout_s=60, token_file=str(token))
    bridge = open_bridge(spec, str(tmp_path / "run"), wait_s=120)
    frames = np.zeros((2, 32, 48, 3), np.uint8)
    frames[:, 8:20, 10:30] = (255, 0, 0)  # a red rectangle the synthetic grounder can find
    try:
        reply = bridge.client.ground(frames, [Keyframe(0, "the red square")])
        assert len(reply.boxes) == 1  # served: the token was accepted
        stranger = BridgeClient(bridge.client.addresses, deadline_s=20, retries=0)
        try:
            with pytest.raises(BridgeError, match="unauthorized"):
                stranger.ground(frames, [Keyframe(0, "the red square")])
        finally:
            stranger.close()
    finally:
        bridge.close()
