"""The tiny run of ``test_system2_is_the_policy`` as an experiment file (for ``omnir1_jax.evaluate``): System 2 is
the policy (``bridge.grounder = "qwen2_5_omni:@policy"``); ``--policy`` and ``--set data.root`` fill in the rest."""

import dataclasses

from omnir1_jax.config import BridgeSpec


def get_config():
    from tests.train._tiny import tiny_config

    cfg = tiny_config("data/unused", "runs/unused", steps=1)
    return dataclasses.replace(
        cfg,
        bridge=BridgeSpec(start=True, grounder="qwen2_5_omni:@policy", segmenter="synthetic", workers=1, timeout_s=600),
    )
